"""Bounded retries with exponential backoff, for streams that a restarting API server refuses for a while.

Pure apart from the ``sleep`` and ``clock`` it is given, so tests run it on fake time.

Example:
    >>> policy = Reconnect(first_delay=0.5, max_delay=2.0, budget=10.0)
    >>> list(policy.delays())
    [0.5, 1.0, 2.0, 2.0, 2.0, 2.0]
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class GaveUp(ConnectionError):
    """Every attempt within the budget failed; the message names the last cause and the attempts."""


@dataclass(frozen=True)
class Reconnect:
    """How long a new connection waits for the API server: ``first_delay`` doubling up to ``max_delay``
    between attempts, and no attempt started after ``budget`` seconds. The default budget stays below
    Dask's 30 s connect timeout, so Dask sees the connection either succeed or close in time."""

    first_delay: float = 0.25
    max_delay: float = 2.0
    budget: float = 20.0

    def delays(self) -> Iterator[float]:
        """The waits between attempts while their sum stays within the budget."""
        delay, spent = self.first_delay, 0.0
        while spent + delay <= self.budget:
            yield delay
            spent += delay
            delay = min(delay * 2, self.max_delay)


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    policy: Reconnect,
    retryable: Callable[[BaseException], bool],
    describe: Callable[[BaseException], str] = str,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``await attempt()`` until it succeeds; retry the errors ``retryable`` accepts, with backoff.

    Raises:
        GaveUp: a retryable error persisted past the budget (chained to the last error).
        Exception: the first error that is not retryable, unchanged.
    """
    started = clock()
    delays = policy.delays()
    attempts = 0
    while True:
        attempts += 1
        try:
            return await attempt()
        except Exception as error:
            if not retryable(error):
                raise
            delay = next(delays, None)
            if delay is None or clock() - started + delay > policy.budget:
                raise GaveUp(f"{describe(error)} (gave up after {attempts} attempts in "
                             f"{clock() - started:.1f} s)") from error
            await sleep(delay)

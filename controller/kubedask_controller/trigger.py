"""A driver's wake-ups, coalesced: any number of :meth:`Trigger.pull` calls before the driver gets round
to it make one pass, and passes are at least ``debounce`` apart, so a burst of pulls (1000 pods starting)
makes a pass at its start and one per ``debounce`` after. A pull after a quiet spell (a new request, a
``kubectl patch``) is acted on at once: the debounce only holds back a pass that would follow another."""

from __future__ import annotations

import asyncio
import contextlib


class Trigger:
    def __init__(self, debounce: float) -> None:
        self.debounce = debounce
        self._pulled = asyncio.Event()
        self._pulled.set()  # the first pass runs at once
        self._woke_at = float("-inf")

    def pull(self) -> None:
        self._pulled.set()

    @property
    def pulled(self) -> bool:
        return self._pulled.is_set()

    async def wait(self, timeout: float | None) -> None:
        """Until pulled, or ``timeout`` seconds have passed (None: no timer); never sooner than ``debounce``
        after the previous wake-up."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._pulled.wait(), None if timeout is None else max(timeout, 0.0))
        loop = asyncio.get_running_loop()
        hold = self._woke_at + self.debounce - loop.time()
        if hold > 0:
            await asyncio.sleep(hold)
        self._pulled.clear()
        self._woke_at = loop.time()

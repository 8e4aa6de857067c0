"""A driver's wake-ups, coalesced: any number of :meth:`Trigger.pull` calls before the driver gets round
to it make one pass, and a burst of them (1000 pods starting) is absorbed by the debounce."""

from __future__ import annotations

import asyncio
import contextlib


class Trigger:
    def __init__(self, debounce: float) -> None:
        self.debounce = debounce
        self._pulled = asyncio.Event()
        self._pulled.set()  # the first pass runs at once

    def pull(self) -> None:
        self._pulled.set()

    @property
    def pulled(self) -> bool:
        return self._pulled.is_set()

    async def wait(self, timeout: float | None) -> None:
        """Until pulled (then the debounce), or ``timeout`` seconds have passed (None: no timer)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._pulled.wait(), None if timeout is None else max(timeout, 0.0))
        await asyncio.sleep(self.debounce)
        self._pulled.clear()

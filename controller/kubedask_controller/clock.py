"""The controller's one source of time, injected wherever time is read.

``monotonic()`` is the running event loop's clock, so timeouts, deadlines and ``asyncio.sleep`` agree,
and tests that run the loop on fake time (looptime) move all of them together. ``wall()`` is seconds
since the epoch, only for what is compared with timestamps other machines wrote (heartbeats, the
scheduler's idle-since) and for timestamps the controller writes.
"""

from __future__ import annotations

import asyncio
import time


class Clock:
    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    def wall(self) -> float:
        return time.time()

"""A request driver's passes over time: one whenever its :class:`Trigger` is pulled or the delay the last
pass asked for has run out; none while this replica does not lead (the elector pulls every trigger when
it starts leading); a failed pass is retried with an exponential backoff up to a minute."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from . import metrics
from .clock import Clock
from .fence import LostLease
from .trigger import Trigger

logger = logging.getLogger(__name__)


async def run_passes(trigger: Trigger, is_leader: Callable[[], bool], one_pass: Callable[[], Awaitable[float | None]],
                     clock: Clock, who: str) -> None:
    """Until cancelled. ``one_pass`` returns the seconds until the next timed pass (None: only when pulled)."""
    delay: float | None = 0.0
    error_streak = 0
    while True:
        await trigger.wait(delay)
        if not is_leader():
            delay = None  # pulled again when this replica becomes the leader
            continue
        started = clock.monotonic()
        try:
            delay = await one_pass()
            error_streak = 0
        except LostLease as exc:
            logger.info("%s: pass stopped: %s", who, exc)
            delay = None  # pulled again when this replica leads again
        except Exception as exc:
            error_streak += 1
            delay = min(60.0, 2.0 ** error_streak)
            metrics.ERRORS.inc()
            metrics.RECONCILES.labels(result="error").inc()
            logger.warning("reconcile %s failed (retry in %.0f s): %s", who, delay, exc,
                           exc_info=logger.isEnabledFor(logging.DEBUG))
        finally:
            metrics.LATENCY.observe(clock.monotonic() - started)

"""What a request's driver learns from its cluster's scheduler between passes.

The adaptive target and the idle time are each asked at their own pace (``adapt.interval``, the idle
poll interval), not on every pass. When the scheduler cannot be asked the cluster falls back: adapt holds
its current target, and the idle time becomes unknown (an unreachable scheduler must never get a busy
cluster reaped as idle). Whether the last question was answered is shown as the SchedulerAPI condition.
"""

from __future__ import annotations

import logging

from kubedask.spec import DEFAULT_GROUP, ClusterRequest, Condition

from . import reconcile, status
from .api import SchedulerApi
from .clock import Clock
from .scheduler import SchedulerUnavailable

logger = logging.getLogger(__name__)


class SchedulerPolls:
    def __init__(self, clock: Clock, idle_poll_interval: float, adapt_max_step: int) -> None:
        self.clock = clock
        self.idle_poll_interval = idle_poll_interval
        self.adapt_max_step = adapt_max_step
        self.adapt_state: reconcile.AdaptState | None = None
        self.idle_since: float | None = None  # wall seconds, from the scheduler; None: busy or unknown
        self._next_adapt_poll = float("-inf")
        self._next_idle_poll = float("-inf")
        self._asked = False
        self._error: str | None = None

    @property
    def condition(self) -> Condition | None:
        """The SchedulerAPI condition, once the scheduler has been asked anything."""
        return status.scheduler_api_condition(self._error) if self._asked else None

    def _answered(self, error: SchedulerUnavailable | None) -> None:
        if error is not None and str(error) != self._error:
            logger.info("scheduler unanswered: %s", error)
        self._asked, self._error = True, None if error is None else str(error)

    async def poll_idle(self, request: ClusterRequest, scheduler: SchedulerApi | None) -> float | None:
        """Since when (wall seconds) the scheduler has been idle, None if busy or unknown."""
        if not request.idle_timeout or scheduler is None or self.clock.monotonic() < self._next_idle_poll:
            return self.idle_since
        self._next_idle_poll = self.clock.monotonic() + min(self.idle_poll_interval, request.idle_timeout / 4)
        try:
            self.idle_since = await scheduler.idle_since()
        except SchedulerUnavailable as exc:
            self.idle_since = None
            self._answered(exc)
        else:
            self._answered(None)
        return self.idle_since

    async def desired_workers(self, request: ClusterRequest, observed: reconcile.Observed,
                              scheduler: SchedulerApi | None) -> int:
        if request.adapt is None:
            self.adapt_state = None
            return request.workers
        if self.adapt_state is None:
            self.adapt_state = reconcile.AdaptState(target=len(observed.active_in(DEFAULT_GROUP)) or request.workers)
        target = None
        asked = False
        if scheduler and self.clock.monotonic() >= self._next_adapt_poll:
            self._next_adapt_poll = self.clock.monotonic() + request.adapt.interval
            asked = True
            try:
                target = await scheduler.adaptive_target()
            except SchedulerUnavailable as exc:
                self._answered(exc)
            else:
                self._answered(None)
        bounds = request.adapt
        if asked or not bounds.minimum <= self.adapt_state.target <= bounds.maximum:
            self.adapt_state = reconcile.adapt_step(bounds, self.adapt_state, target, self.clock.monotonic(),
                                                    self.adapt_max_step)
        return self.adapt_state.target

"""What a request's driver learns from its cluster's scheduler between passes.

The adaptive target and the idle time are each asked at their own pace (``adapt.interval``, the shortest
of every adaptive group's; the idle poll interval), not on every pass. The scheduler's one target is shared
among the adaptive groups by :func:`decisions.share_target`; each group then moves towards its share within
its own bounds, step and cooldown (:func:`decisions.adapt_step`). When the scheduler cannot be asked the
cluster falls back: adapt holds its current targets, and the idle time becomes unknown (an unreachable
scheduler must never get a busy cluster reaped as idle). Whether the last question was answered is shown as
the SchedulerAPI condition.
"""

from __future__ import annotations

import logging

from kubedask.spec import DEFAULT_GROUP, ClusterRequest, Condition

from . import decisions, reconcile, status
from .api import SchedulerApi
from .clock import Clock
from .scheduler import SchedulerUnavailable

logger = logging.getLogger(__name__)


class SchedulerPolls:
    def __init__(self, clock: Clock, idle_poll_interval: float, adapt_max_step: int) -> None:
        self.clock = clock
        self.idle_poll_interval = idle_poll_interval
        self.adapt_max_step = adapt_max_step
        #: Per adaptive group (``default`` for ``adapt``), what the adaptive loop remembers.
        self.adapt_states: dict[str, decisions.AdaptState] = {}
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
        """The default group's desired workers; while a named group has ``adapt.GROUP``, a
        :class:`decisions.Desired` that also carries every adaptive named group's target."""
        adaptive = dict(decisions.adaptive_groups(request))
        self.adapt_states = {g: state for g, state in self.adapt_states.items() if g in adaptive}
        if not adaptive:
            return request.workers
        counts = {DEFAULT_GROUP: request.workers, **{g.name: g.workers for g in request.worker_groups}}
        for group in adaptive:
            if group not in self.adapt_states:
                self.adapt_states[group] = decisions.AdaptState(target=len(observed.active_in(group)) or counts[group])
        target = None
        asked = False
        if scheduler and self.clock.monotonic() >= self._next_adapt_poll:
            self._next_adapt_poll = self.clock.monotonic() + min(b.interval for b in adaptive.values())
            asked = True
            try:
                target = await scheduler.adaptive_target()
            except SchedulerUnavailable as exc:
                self._answered(exc)
            else:
                self._answered(None)
        shares = decisions.share_target(request, target) if target is not None else {}
        for group, bounds in adaptive.items():
            state = self.adapt_states[group]
            if asked or not bounds.minimum <= state.target <= bounds.maximum:
                self.adapt_states[group] = decisions.adapt_step(
                    bounds, state, shares.get(group), self.clock.monotonic(), self.adapt_max_step)
        default = self.adapt_states[DEFAULT_GROUP].target if DEFAULT_GROUP in adaptive else request.workers
        named = {g: state.target for g, state in self.adapt_states.items() if g != DEFAULT_GROUP}
        return decisions.Desired(default, named) if named else default

"""The knobs of the request drivers, with the values the controller runs with."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from .api import SchedulerApi
from .policy import Policy
from .scheduler import SchedulerClient


@dataclasses.dataclass
class Settings:
    policy: Policy = dataclasses.field(default_factory=Policy)
    #: A pass with nothing else to trigger it (reads only, writes only if something drifted).
    resync_interval: float = 300.0
    #: Re-check soon after acting, in case a watch event is missed.
    settle_delay: float = 2.0
    #: Coalesce bursts of pod events (1000 pods starting) into one pass.
    debounce: float = 0.2
    #: Slow start for creates: this many first, then the rest with ``max_in_flight`` at a time.
    first_batch: int = 16
    max_in_flight: int = 64
    #: Seconds between status writes that only show progress (counts, messages) while a cluster scales;
    #: phase and condition changes are written at once.
    status_interval: float = 1.0
    #: How long an unseen create / delete is trusted before the LIST is believed instead.
    expectation_timeout: float = 60.0
    idle_poll_interval: float = 15.0
    adapt_max_step: int = 100
    #: Seconds between attempts while the API server refuses what a request asks for.
    rejected_retry: float = 60.0
    #: Seconds between looks while an object that is not the request's holds one of its names.
    name_taken_retry: float = 10.0
    #: How long the scheduler may take to retire workers before the scale-down falls back to deleting.
    retire_timeout: float = 120.0
    #: How the driver talks to a cluster's scheduler, given the scheduler pod's IP.
    scheduler_client: Callable[[str], SchedulerApi] = SchedulerClient
    #: Each request's view of its objects is kept by the watch and read only when it cannot be trusted
    #: (:mod:`observer`); the controller process sets it (handlers.py). Off, every pass reads: the unit
    #: tests change their API fakes directly, with no watch to tell.
    watched_views: bool = False

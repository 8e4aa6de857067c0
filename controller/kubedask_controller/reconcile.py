"""Desired vs observed -> a plan of actions. Pure: no I/O, no clocks except the ``now`` passed in.

The controller is level-triggered: every pass lists what exists (by label) and asks :func:`plan` what to
do about the difference. The result is the same whether the pass was triggered by a change, a watch
event replayed after a restart, or a periodic resync, which is what makes the controller safe to kill at
any instant.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from typing import Any

from kubedask.spec import DEFAULT_GROUP, ClusterRequest

from . import builders
from .decisions import AdaptState as AdaptState
from .decisions import Desired as Desired
from .decisions import adapt_step as adapt_step
from .decisions import adaptive_groups
from .decisions import shutdown_reason as shutdown_reason
from .workload import DONE_PHASES as DONE_PHASES
from .workload import Observed as Observed
from .workload import PodInfo as PodInfo

# --- actions -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CreateSchedulerPod:
    pass


@dataclasses.dataclass(frozen=True)
class CreateService:
    pass


@dataclasses.dataclass(frozen=True)
class CreatePdb:
    pass


@dataclasses.dataclass(frozen=True)
class PatchService:
    """Give the Service the type (and ``scheduler-service-template`` fields) the request asks for, live."""

    type: str
    #: The merge patch; empty: only the type.
    patch: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class CreateJobPod:
    """Start the batch job (``job-template``): the scheduler is ready."""


@dataclasses.dataclass(frozen=True)
class DeleteService:
    """The job ended: the scheduler's Service goes (only the one with ``uid``)."""

    uid: str | None = None


@dataclasses.dataclass(frozen=True)
class DeletePdb:
    """The job ended: the scheduler's PodDisruptionBudget goes (only the one with ``uid``)."""

    uid: str | None = None


@dataclasses.dataclass(frozen=True)
class CreateWorkers:
    count: int
    group: str = DEFAULT_GROUP


class DeleteCause(enum.Enum):
    """Why a pod is deleted; the driver paces its next pass by it (a worker that keeps exiting is
    replaced with exponential backoff, not in a hot loop)."""

    WORKER_EXITED = "worker exited"  # restartPolicy Never: a finished worker is replaced by a new pod
    SCHEDULER_EXITED = "scheduler exited"  # deleted so that the next pass recreates it
    SCALE_DOWN = "scale down"
    RETIRED = "retired"  # the scheduler retired it: its data moved, it is not replaced
    JOB_ENDED = "job ended"  # the batch job ended: its cluster goes
    OUTDATED = "outdated"  # a rolling update: replaced by a worker made from the current template


@dataclasses.dataclass(frozen=True)
class DeletePod:
    name: str
    cause: DeleteCause
    #: For people: the Event that reports the delete.
    reason: str
    #: The delete's precondition: only this pod, never a newer one that took its name.
    uid: str | None = None


@dataclasses.dataclass(frozen=True)
class RetireWorkers:
    """Ask the scheduler to retire ``count`` of ``candidates`` (their data moves to the other workers), then
    delete their pods. ``candidates`` are running worker pods in the order they should go, the ones deleted
    when the scheduler cannot be asked."""

    count: int
    candidates: tuple[str, ...]
    group: str = DEFAULT_GROUP
    #: True: the scheduler picks ``count`` workers (the group is the only one running, so whichever it picks
    #: is a candidate). False: other workers run too (other groups, or a rolling update's new ones), so the
    #: first ``count`` candidates the scheduler knows are retired, by address.
    scheduler_chooses: bool = True


Action = (CreateSchedulerPod | CreateService | PatchService | CreatePdb | CreateWorkers | DeletePod | RetireWorkers
          | CreateJobPod | DeleteService | DeletePdb)


@dataclasses.dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    desired_workers: int

    @property
    def idle(self) -> bool:
        return not self.actions

    @property
    def replaces_workers(self) -> bool:
        """Whether workers that exited are replaced (the driver backs off while that keeps happening)."""
        return any(isinstance(a, DeletePod) and a.cause is DeleteCause.WORKER_EXITED for a in self.actions)


def group_targets(request: ClusterRequest, observed: Observed, desired_workers: int) -> dict[str, int]:
    """Workers wanted per group: ``desired_workers`` for the default group, each named group's count (its
    adaptive target instead when ``desired_workers`` is a :class:`Desired` that has one), and 0 for a group
    that has workers but is no longer in the request (its keys were removed)."""
    adapted = desired_workers.groups if isinstance(desired_workers, Desired) else {}
    targets = {DEFAULT_GROUP: int(desired_workers),
               **{g.name: adapted.get(g.name, g.workers) for g in request.worker_groups}}
    for worker in observed.workers:
        targets.setdefault(worker.group, 0)
    return targets


def plan(request: ClusterRequest, observed: Observed, desired_workers: int, service_type: str | None = None,
         service: Mapping[str, Any] | None = None) -> Plan:
    """The actions that move ``observed`` towards ``request`` with ``desired_workers`` workers in the default
    group (and each named group's count in it); ``service_type`` is the type of the request's Service as it
    exists (patched when it differs), or ``service`` the whole Service as read (then the template's labels,
    annotations and spec fields are compared too)."""
    actions: list[Action] = []
    if request.deploy_mode == "remote":
        scheduler = observed.scheduler
        if scheduler is None:
            actions.append(CreateSchedulerPod())
        elif scheduler.done and not scheduler.deleting:
            # A scheduler that exited is gone for good (restartPolicy Never): delete it so the next
            # pass recreates it.
            actions.append(DeletePod(scheduler.name, DeleteCause.SCHEDULER_EXITED, f"scheduler pod {scheduler.phase}",
                                     scheduler.uid))
        patch = builders.service_patch(request, service) if observed.service and service is not None else None
        if not observed.service:
            actions.append(CreateService())
        elif patch:
            actions.append(PatchService(request.scheduler_service_type, patch))
        elif service is None and service_type is not None and service_type != request.scheduler_service_type:
            actions.append(PatchService(request.scheduler_service_type))
        if not observed.pdb:
            actions.append(CreatePdb())
        if (request.job_template is not None and observed.job is None and scheduler is not None and scheduler.ready
                and not scheduler.deleting):
            actions.append(CreateJobPod())

    for worker in observed.workers:
        if worker.deleting:
            continue
        if worker.retired:
            actions.append(DeletePod(worker.name, DeleteCause.RETIRED, "retired by the scheduler", worker.uid))
        elif worker.done:
            actions.append(DeletePod(worker.name, DeleteCause.WORKER_EXITED,
                                     f"worker pod {worker.phase}; it will be replaced", worker.uid))

    targets = group_targets(request, observed, desired_workers)
    running_groups = {w.group for w in observed.active_workers if w.phase == "Running"}
    for group, wanted in targets.items():
        rolling = request.update_strategy == "rolling" and _has_template(request, group)
        step = _roll(observed, group, wanted, request.max_surge, builders.template_hash(
            request.group_template(group))) if rolling else None
        actions += step if step is not None else _scale_group(observed, group, wanted, alone=running_groups <= {group})
    return Plan(tuple(actions), sum(targets.values()))


def _has_template(request: ClusterRequest, group: str) -> bool:
    return group == DEFAULT_GROUP or any(g.name == group for g in request.worker_groups)


def outdated(workers: Iterable[PodInfo], current: str) -> list[PodInfo]:
    """Workers made from another template than ``current`` (unstamped ones are not known to be)."""
    return [w for w in workers if w.template is not None and w.template != current]


def _roll(observed: Observed, group: str, wanted: int, max_surge: int, current: str) -> list[Action] | None:
    """A rolling update's next step for one group, or None when nothing of it is outdated (or the group is
    not at its size: scaling comes first). New workers first, at most ``max_surge`` beyond ``wanted`` (ready
    workers still leaving included); an
    old worker goes once a new one is ready, so the group never has fewer than ``wanted`` ready workers
    because of the update."""
    active = observed.active_in(group)
    old = outdated(active, current)
    if not old or observed.retiring or len(active) < wanted:
        return None
    fresh = [w for w in active if w not in old]
    actions: list[Action] = []
    surge = len(active) - wanted
    # A worker on its way out (retired, or its pod deleting) still holds its node's resources, and counts
    # against a quota, while it is ready: it takes up surge room until its container has stopped.
    leaving = sum(1 for w in observed.workers if w.group == group and w.ready and (w.deleting or w.retired))
    room = max_surge - surge - leaving
    if room > 0 and len(fresh) < wanted:
        actions.append(CreateWorkers(min(room, wanted - len(fresh)), group))
    # Old workers that are not ready do no work: they may go whenever a new one has taken their place. Ready
    # ones go only while the group keeps ``wanted`` ready workers.
    unready = sum(1 for w in old if not w.ready)
    removable = min(unready, max(0, surge))
    ready = sum(1 for w in active if w.ready)
    removable += min(len(old) - unready, max(0, surge - removable), max(0, ready - wanted))
    if len(active) > wanted + max_surge:  # a scale-down meanwhile: the old ones go first
        removable = max(removable, len(active) - wanted - max_surge)
    going = sorted(old, key=lambda w: (w.ready, w.created, w.name))[:removable]
    for worker in going:
        if worker.phase != "Running":  # never ran, so it holds no data: its pod just goes
            actions.append(DeletePod(worker.name, DeleteCause.OUTDATED, "rolling update: replaced by a worker "
                                     "made from the current template", worker.uid))
    # Running ones are retired through the scheduler, so their data moves to the workers that stay.
    retired = tuple(w.name for w in going if w.phase == "Running")
    if retired:
        actions.append(RetireWorkers(len(retired), retired, group, scheduler_chooses=False))
    return actions


def _scale_group(observed: Observed, group: str, wanted: int, *, alone: bool) -> list[Action]:
    """Create or retire workers of one group; ``alone``: no other group has running workers."""
    active = observed.active_in(group)
    if observed.retiring:
        # A retirement in flight takes some of the active workers away once the scheduler answers; a
        # worker that exits meanwhile is most likely one of them. So nothing is replaced or retired until
        # it answers, unless the request now wants more workers than are left even counting those.
        return [CreateWorkers(wanted - len(active), group)] if len(active) < wanted else []
    excess = len(active) - wanted
    if excess < 0:
        return [CreateWorkers(-excess, group)]
    actions: list[Action] = []
    if excess > 0:
        # Pending pods hold no data and do no work, so they go first (newest first).
        pending = _newest_first(w for w in active if w.phase != "Running")
        for worker in pending[:excess]:
            actions.append(DeletePod(worker.name, DeleteCause.SCALE_DOWN, "scale down: not yet running", worker.uid))
        remaining = excess - min(excess, len(pending))
        if remaining:
            running = _newest_first(w for w in active if w.phase == "Running")
            actions.append(RetireWorkers(remaining, tuple(w.name for w in running), group, scheduler_chooses=alone))
    return actions


def _newest_first(workers: Iterable[PodInfo]) -> list[PodInfo]:
    return sorted(workers, key=lambda w: (w.created, w.name), reverse=True)


def next_pass_delay(request: ClusterRequest, plan: Plan, failure_streak: int, *, resync: float, settle: float,
                    idle_poll: float) -> float:
    """Seconds until the next timed pass: soon after acting (later while pods keep exiting:
    ``failure_streak`` passes in a row replaced a worker), and as often as adapt, idle and heartbeat
    checks need; else a slow resync."""
    delays = [resync]
    if plan.actions:
        delays.append(max(settle, min(300.0, 2.0 ** failure_streak)))
    delays += [bounds.interval for _, bounds in adaptive_groups(request)]
    if request.idle_timeout:
        delays.append(min(idle_poll, request.idle_timeout / 4))
    if request.client_heartbeat_timeout:
        delays.append(min(30.0, request.client_heartbeat_timeout / 4))
    return min(delays)

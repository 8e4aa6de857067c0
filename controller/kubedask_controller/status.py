"""The status written back to a request: annotation JSON, phase label, and when to write at all.

Pure functions (time comes in as an argument). The status is written only when something a user could
see changed (``updatedAt`` and unchanged conditions' transition times don't count), so a cluster at rest
costs no API writes; and the controller ignores its own status writes when deciding whether to reconcile
(see ``driver.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from kubedask.spec import (
    DEFAULT_GROUP,
    PHASE_LABEL,
    STATUS_ANNOTATION,
    ClusterRequest,
    ClusterStatus,
    Condition,
    Phase,
    WorkerCounts,
)

from .builders import dashboard_address, scheduler_address, template_hash
from .reconcile import Observed, PodInfo, group_targets


def timestamp(wall: float) -> str:
    """RFC 3339 in UTC, to the second, for ``wall`` seconds since the epoch."""
    return dt.datetime.fromtimestamp(wall, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def scheduler_api_condition(error: str | None) -> Condition:
    """Whether the scheduler's HTTP API answered the controller's last question (adapt, idle)."""
    if error is None:
        return Condition(type="SchedulerAPI", status="True", reason="SchedulerAnswered")
    return Condition(type="SchedulerAPI", status="False", reason="SchedulerUnanswered", message=error)


def invalid_status(message: str, fingerprint: str | None) -> ClusterStatus:
    return ClusterStatus(
        phase="Failed", message=message, observed_spec=fingerprint,
        conditions=[Condition(type="RequestValid", status="False", reason="InvalidRequest", message=message)],
    )


def name_taken_status(message: str, fingerprint: str | None) -> ClusterStatus:
    """An object that is not the request's holds one of its names: the request cannot run (never adopted)."""
    return ClusterStatus(
        phase="Failed", message=message, observed_spec=fingerprint,
        conditions=[Condition(type="RequestValid", status="True", reason="Valid"),
                    Condition(type="NamesAvailable", status="False", reason="NameTaken", message=message)],
    )


def _waiting(message: str, fingerprint: str | None, condition: str, reason: str) -> ClusterStatus:
    """A valid request that must wait for something outside it: Pending, and the condition that says what."""
    return ClusterStatus(
        phase="Pending", message=message, observed_spec=fingerprint,
        conditions=[Condition(type="RequestValid", status="True", reason="Valid"),
                    Condition(type=condition, status="False", reason=reason, message=message)],
    )


def waiting_status(message: str, fingerprint: str | None) -> ClusterStatus:
    """Objects of an earlier request of the same name are still being deleted: nothing to do but wait."""
    return _waiting(message, fingerprint, "NamesAvailable", "WaitingForGarbageCollection")


def not_yet_status(message: str, fingerprint: str | None) -> ClusterStatus:
    """The API server refused the request's pods for a reason that passes by itself (executor.NotYet)."""
    return _waiting(message, fingerprint, "PodsAccepted", "WaitingForServiceAccount")


def blocked_status(taken: str | None, leftover: str | None,
                   fingerprint: str | None) -> tuple[ClusterStatus, tuple[str, str, str] | None]:
    """A name held by another object (Failed, with a Warning Event), else a leftover of an earlier request of
    the name (Pending, no Event); exactly one of ``taken`` and ``leftover`` is given."""
    if taken:
        return name_taken_status(taken, fingerprint), ("NameTaken", taken, "Warning")
    return waiting_status(leftover or "", fingerprint), None


def terminating_status(request: ClusterRequest, message: str) -> ClusterStatus:
    return ClusterStatus(phase="Terminating", message=message, observed_spec=request.fingerprint,
                         conditions=[Condition(type="RequestValid", status="True", reason="Valid")])


def cluster_status(request: ClusterRequest, namespace: str, observed: Observed, desired_workers: int,
                   external_address: str | None = None, scheduler_api: Condition | None = None,
                   scheduler_restart: str | None = None, scheduler_spec: str | None = None) -> ClusterStatus:
    """Phase, message, conditions and counts for a valid request in the observed state.
    ``scheduler_api`` is shown once the controller has asked the scheduler anything.
    ``scheduler_restart`` says why the running scheduler is not what the request asks for now; then
    ``observedSpec`` is ``scheduler_spec``, the spec it was made from (never one not applied)."""
    targets = group_targets(request, observed, desired_workers)
    desired_workers = sum(targets.values())
    counts = _counts(observed.active_workers, desired_workers, request)
    groups = ({g: _counts(observed.active_in(g), n, request) for g, n in targets.items()}
              if len(targets) > 1 else {})
    remote = request.deploy_mode == "remote"
    scheduler = observed.scheduler
    scheduler_ready = (not remote) or bool(scheduler and scheduler.ready and not scheduler.deleting)
    workers_ready = counts.created == desired_workers and counts.running == desired_workers
    conditions = [Condition(type="RequestValid", status="True", reason="Valid")]
    if remote:
        conditions.append(Condition(
            type="SchedulerReady", status="True" if scheduler_ready else "False",
            reason="Ready" if scheduler_ready else
            (f"Scheduler{scheduler.phase}" if scheduler else "Creating"),
        ))
    conditions.append(Condition(
        type="WorkersReady", status="True" if workers_ready else "False",
        reason="Ready" if workers_ready else "Scaling",
        message=f"{counts.running}/{desired_workers} workers running",
    ))
    if scheduler_api is not None:
        conditions.append(scheduler_api)
    if scheduler_restart:
        conditions.append(Condition(type="SchedulerUpToDate", status="False", reason="RestartNeeded",
                                    message=scheduler_restart))
    phase: Phase
    if not scheduler_ready:
        phase, message = "Pending", "waiting for the scheduler pod to become ready"
    elif not workers_ready:
        phase = "Scaling"
        message = f"{counts.running} of {desired_workers} workers running ({counts.created} created)"
    else:
        phase, message = "Running", f"{desired_workers} workers running"
    if scheduler_restart:
        message = f"{message}; {scheduler_restart}"
    return ClusterStatus(
        phase=phase, message=message, conditions=conditions,
        scheduler_address=scheduler_address(request, namespace),
        dashboard_address=dashboard_address(request, namespace),
        external_address=external_address,
        workers=counts, worker_groups=groups,
        observed_spec=scheduler_spec if scheduler_restart else request.fingerprint,
    )


def _counts(active: list[PodInfo], requested: int, request: ClusterRequest) -> WorkerCounts:
    hashes = {DEFAULT_GROUP: template_hash(request.worker_template),
              **{g.name: template_hash(g.template) for g in request.worker_groups}}
    old = sum(1 for w in active if w.template is not None and w.template != hashes.get(w.group))
    return WorkerCounts(requested=requested, created=len(active),
                        running=sum(1 for w in active if w.phase == "Running"),
                        ready=sum(1 for w in active if w.ready), updated=len(active) - old)


def _comparable(status: ClusterStatus) -> dict[str, Any]:
    data = status.model_dump(by_alias=True)
    data.pop("updatedAt", None)
    for condition in data["conditions"]:
        condition.pop("lastTransitionTime", None)
    return data


#: What changes while a cluster scales and nothing else happens: counts, and the messages that quote them.
_PROGRESS_FIELDS = ("workers", "workerGroups", "message")


def progress_only(previous: ClusterStatus | None, new: ClusterStatus) -> bool:
    """True when ``new`` differs from ``previous`` in counts and messages alone (the same phase, the same
    conditions in the same states): a change the reporter may hold back for a while."""
    if previous is None:
        return False
    before, after = _comparable(previous), _comparable(new)
    for data in (before, after):
        for field in _PROGRESS_FIELDS:
            data.pop(field, None)
        for condition in data["conditions"]:
            condition.pop("message", None)
    return before == after


def status_patch(new: ClusterStatus, previous: ClusterStatus | None, labels: Mapping[str, str],
                 now: str, force: bool = False) -> dict[str, Any] | None:
    """A merge patch for the request's metadata, or None when nothing visible changed (unless ``force``:
    the annotation was altered in a way its parsed value does not show); ``now`` stamps ``updatedAt``
    and the conditions that changed."""
    label_ok = labels.get(PHASE_LABEL) == new.phase
    if not force and previous is not None and _comparable(previous) == _comparable(new) and label_ok:
        return None
    before = {c.type: c for c in previous.conditions} if previous else {}
    conditions = []
    for condition in new.conditions:
        old = before.get(condition.type)
        kept = old.last_transition_time if old is not None and old.status == condition.status else ""
        conditions.append(condition.model_copy(update={"last_transition_time": kept or now}))
    stamped = new.model_copy(update={"conditions": conditions, "updated_at": now})
    return {"metadata": {"annotations": {STATUS_ANNOTATION: stamped.to_json()},
                         "labels": {PHASE_LABEL: new.phase}}}

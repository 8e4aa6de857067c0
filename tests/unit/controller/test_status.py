"""Status: phase, conditions, counts, and writing only when something visible changed."""

from __future__ import annotations

from typing import Any

from controller_fakes import request_data
from kubedask.spec import PHASE_LABEL, STATUS_ANNOTATION, ClusterStatus, Condition, parse_request, parse_status
from kubedask_controller.reconcile import Observed, PodInfo
from kubedask_controller.status import (
    cluster_status,
    invalid_status,
    scheduler_api_condition,
    status_patch,
    timestamp,
)

REQUEST = parse_request("analysis", request_data(workers=2))


def condition(status: ClusterStatus, type_: str) -> Condition:
    found = status.condition(type_)
    assert found is not None, f"no {type_} condition in {status}"
    return found


def written(patch: dict[str, Any] | None) -> ClusterStatus:
    assert patch is not None
    status = parse_status(patch["metadata"]["annotations"])
    assert status is not None
    return status
READY = PodInfo("analysis-scheduler", phase="Running", ready=True)


def test_pending_until_the_scheduler_is_ready() -> None:
    status = cluster_status(REQUEST, "ns", Observed(scheduler=PodInfo("analysis-scheduler")), 2)
    assert status.phase == "Pending"
    assert condition(status, "SchedulerReady").status == "False"


def test_scaling_then_running_with_counts_and_addresses() -> None:
    workers = (PodInfo("w1", phase="Running", ready=True), PodInfo("w2"))
    status = cluster_status(REQUEST, "ns", Observed(scheduler=READY, workers=workers), 2)
    assert status.phase == "Scaling"
    assert (status.workers.requested, status.workers.created, status.workers.running) == (2, 2, 1)
    workers = (PodInfo("w1", phase="Running", ready=True), PodInfo("w2", phase="Running", ready=True))
    status = cluster_status(REQUEST, "ns", Observed(scheduler=READY, workers=workers), 2)
    assert status.phase == "Running"
    assert status.workers.ready == 2
    assert status.scheduler_address == "tcp://analysis-scheduler.ns.svc.cluster.local:8786"
    assert status.dashboard_address == "http://analysis-scheduler.ns.svc.cluster.local:8787"
    assert status.observed_spec == REQUEST.fingerprint


def test_status_is_written_once_and_not_again_while_unchanged() -> None:
    status = cluster_status(REQUEST, "ns", Observed(scheduler=READY), 2)
    patch = status_patch(status, None, {}, now="2026-01-01T00:00:00Z")
    assert patch is not None
    assert patch["metadata"]["labels"] == {PHASE_LABEL: "Scaling"}
    written = parse_status(patch["metadata"]["annotations"])
    assert written is not None and written.updated_at == "2026-01-01T00:00:00Z"
    assert status_patch(status, written, {PHASE_LABEL: "Scaling"}, now="2026-01-01T00:05:00Z") is None


def test_missing_phase_label_is_restored() -> None:
    status = cluster_status(REQUEST, "ns", Observed(scheduler=READY), 2)
    first = written(status_patch(status, None, {}, now="t0"))
    assert status_patch(status, first, {}, now="t1") is not None


def test_transition_time_changes_only_with_the_condition() -> None:
    scaling = cluster_status(REQUEST, "ns", Observed(scheduler=READY), 2)
    first = written(status_patch(scaling, None, {}, now="t1"))
    workers = (PodInfo("w1", phase="Running", ready=True), PodInfo("w2", phase="Running", ready=True))
    running = cluster_status(REQUEST, "ns", Observed(scheduler=READY, workers=workers), 2)
    patch = status_patch(running, first, {PHASE_LABEL: "Scaling"}, now="t2")
    assert patch is not None
    second = parse_status(patch["metadata"]["annotations"])
    assert second is not None
    assert condition(second, "SchedulerReady").last_transition_time == "t1"
    assert condition(second, "WorkersReady").last_transition_time == "t2"


def test_invalid_request_status() -> None:
    status = invalid_status("key 'workers' has value '-1'", "abc")
    patch = status_patch(status, None, {}, now="t0")
    assert patch is not None and patch["metadata"]["labels"][PHASE_LABEL] == "Failed"
    assert "'workers'" in patch["metadata"]["annotations"][STATUS_ANNOTATION]


def test_scheduler_api_condition_is_shown_once_the_scheduler_was_asked() -> None:
    never_asked = cluster_status(REQUEST, "ns", Observed(scheduler=READY), 2)
    assert "SchedulerAPI" not in {c.type for c in never_asked.conditions}
    down = cluster_status(REQUEST, "ns", Observed(scheduler=READY), 2,
                          scheduler_api=scheduler_api_condition("scheduler 10.0.0.1 unreachable"))
    assert (condition(down, "SchedulerAPI").status, condition(down, "SchedulerAPI").reason) == (
        "False", "SchedulerUnanswered")
    up = cluster_status(REQUEST, "ns", Observed(scheduler=READY), 2, scheduler_api=scheduler_api_condition(None))
    assert condition(up, "SchedulerAPI").status == "True"


def test_timestamps_are_utc_to_the_second() -> None:
    assert timestamp(1767225600.7) == "2026-01-01T00:00:00Z"

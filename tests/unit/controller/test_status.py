"""Status: phase, conditions, counts, and writing only when something visible changed."""

from __future__ import annotations

from controller_fakes import request_data
from kubedask.spec import PHASE_LABEL, STATUS_ANNOTATION, parse_request, parse_status
from kubedask_controller.reconcile import Observed, PodInfo
from kubedask_controller.status import cluster_status, invalid_status, status_patch

REQUEST = parse_request("analysis", request_data(workers=2))
READY = PodInfo("analysis-scheduler", phase="Running", ready=True)


def test_pending_until_the_scheduler_is_ready() -> None:
    status = cluster_status(REQUEST, "ns", Observed(scheduler=PodInfo("analysis-scheduler")), 2)
    assert status.phase == "Pending"
    assert status.condition("SchedulerReady").status == "False"  # type: ignore[union-attr]


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
    written = parse_status(status_patch(status, None, {}, now="t0")["metadata"]["annotations"])  # type: ignore[index]
    assert status_patch(status, written, {}, now="t1") is not None


def test_transition_time_changes_only_with_the_condition() -> None:
    scaling = cluster_status(REQUEST, "ns", Observed(scheduler=READY), 2)
    first = parse_status(status_patch(scaling, None, {}, now="t1")["metadata"]["annotations"])  # type: ignore[index]
    workers = (PodInfo("w1", phase="Running", ready=True), PodInfo("w2", phase="Running", ready=True))
    running = cluster_status(REQUEST, "ns", Observed(scheduler=READY, workers=workers), 2)
    patch = status_patch(running, first, {PHASE_LABEL: "Scaling"}, now="t2")
    assert patch is not None
    second = parse_status(patch["metadata"]["annotations"])
    assert second is not None
    assert second.condition("SchedulerReady").last_transition_time == "t1"  # type: ignore[union-attr]
    assert second.condition("WorkersReady").last_transition_time == "t2"  # type: ignore[union-attr]


def test_invalid_request_status() -> None:
    status = invalid_status("key 'workers' has value '-1'", "abc")
    patch = status_patch(status, None, {}, now="t0")
    assert patch is not None and patch["metadata"]["labels"][PHASE_LABEL] == "Failed"
    assert "'workers'" in patch["metadata"]["annotations"][STATUS_ANNOTATION]

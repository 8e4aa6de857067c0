"""The reconcile plan: what the controller decides to do for a given observed state."""

from __future__ import annotations

import dataclasses
from typing import Any

from controller_fakes import request_data
from kubedask.spec import AdaptSpec, parse_request
from kubedask_controller.reconcile import (
    AdaptState,
    CreatePdb,
    CreateSchedulerPod,
    CreateService,
    CreateWorkers,
    DeleteCause,
    DeletePod,
    Observed,
    PodInfo,
    RetireWorkers,
    adapt_step,
    plan,
    shutdown_reason,
)

REQUEST = parse_request("analysis", request_data(workers=3))
SCHEDULER = PodInfo("analysis-scheduler", phase="Running", ready=True, ip="10.0.0.1")


def running(name: str, created: str = "2026-01-01T00:00:00Z") -> PodInfo:
    return PodInfo(name, phase="Running", ready=True, created=created)


def complete(**kwargs: Any) -> Observed:
    """A remote cluster's scheduler objects all there, plus ``kwargs``."""
    return dataclasses.replace(Observed(scheduler=SCHEDULER, service=True, pdb=True), **kwargs)


def test_new_request_creates_scheduler_service_pdb_and_workers() -> None:
    result = plan(REQUEST, Observed(), 3)
    assert result.actions == (CreateSchedulerPod(), CreateService(), CreatePdb(), CreateWorkers(3))


def test_converged_cluster_needs_nothing() -> None:
    result = plan(REQUEST, complete(workers=(running("w1"), running("w2"), running("w3"))), 3)
    assert result.idle


def test_only_missing_workers_are_created() -> None:
    result = plan(REQUEST, complete(workers=(running("w1"),)), 3)
    assert result.actions == (CreateWorkers(2),)


def test_terminating_pods_do_not_count_and_are_not_deleted_again() -> None:
    gone = PodInfo("w3", phase="Running", deleting=True)
    result = plan(REQUEST, complete(workers=(running("w1"), running("w2"), gone)), 3)
    assert result.actions == (CreateWorkers(1),)


def test_failed_and_succeeded_workers_are_deleted_and_replaced() -> None:
    workers = (running("w1"), PodInfo("w2", phase="Failed"), PodInfo("w3", phase="Succeeded"))
    result = plan(REQUEST, complete(workers=workers), 3)
    deletes = [a for a in result.actions if isinstance(a, DeletePod)]
    assert {d.name for d in deletes} == {"w2", "w3"}
    assert {d.cause for d in deletes} == {DeleteCause.WORKER_EXITED}
    assert result.replaces_workers  # what the driver's backoff counts
    assert CreateWorkers(2) in result.actions


def test_failed_scheduler_is_deleted_so_it_can_be_recreated() -> None:
    result = plan(REQUEST, complete(scheduler=PodInfo("analysis-scheduler", phase="Failed"),
                                    workers=(running("w1"), running("w2"), running("w3"))), 3)
    assert result.actions == (DeletePod("analysis-scheduler", DeleteCause.SCHEDULER_EXITED, "scheduler pod Failed"),)
    assert not result.replaces_workers


def test_scale_down_removes_pending_pods_first_then_retires_through_the_scheduler() -> None:
    workers = (running("w1", "t1"), running("w2", "t2"), running("w3", "t3"),
               PodInfo("p1", phase="Pending", created="t4"), PodInfo("p2", phase="Pending", created="t5"))
    result = plan(REQUEST, complete(workers=workers), 1)
    assert result.actions[:2] == (DeletePod("p2", DeleteCause.SCALE_DOWN, "scale down: not yet running"),
                                  DeletePod("p1", DeleteCause.SCALE_DOWN, "scale down: not yet running"))
    assert result.actions[2] == RetireWorkers(2, ("w3", "w2", "w1"))


def test_scale_down_of_only_pending_pods_retires_nothing() -> None:
    workers = (running("w1"), PodInfo("p1", phase="Pending", created="t4"))
    result = plan(REQUEST, complete(workers=workers), 1)
    assert result.actions == (DeletePod("p1", DeleteCause.SCALE_DOWN, "scale down: not yet running"),)


def test_local_mode_creates_no_scheduler_objects() -> None:
    request = parse_request("analysis", request_data(workers=2, deploy_mode="local",
                                                     scheduler_address="tcp://10.0.0.9:8786"))
    assert plan(request, Observed(), 2).actions == (CreateWorkers(2),)


def test_adapt_grows_at_once_within_bounds_and_step() -> None:
    spec = AdaptSpec(minimum=1, maximum=10, cooldown=30)
    assert adapt_step(spec, AdaptState(target=1), 50, now=0).target == 10
    assert adapt_step(spec, AdaptState(target=1), 50, now=0, max_step=4).target == 5
    assert adapt_step(spec, AdaptState(target=3), None, now=0).target == 3


def test_adapt_shrinks_to_minimum_only_after_cooldown() -> None:
    spec = AdaptSpec(minimum=1, maximum=10, cooldown=30)
    first = adapt_step(spec, AdaptState(target=8), 0, now=100)
    assert first.target == 1 and first.last_scale_down == 100
    grown = adapt_step(spec, first, 6, now=110)
    assert grown.target == 6
    assert adapt_step(spec, grown, 2, now=120).target == 6  # within cooldown of the last shrink
    assert adapt_step(spec, grown, 2, now=131).target == 2


def test_idle_timeout_shuts_down_only_after_the_timeout() -> None:
    request = parse_request("analysis", request_data(idle_timeout=60))
    assert shutdown_reason(request, now=1000, idle_since=950, heartbeat_silence=0) is None
    reason = shutdown_reason(request, now=1000, idle_since=900, heartbeat_silence=0)
    assert reason is not None and "idle for 100 s" in reason
    assert shutdown_reason(request, now=1000, idle_since=None, heartbeat_silence=0) is None


def test_heartbeat_timeout_only_applies_when_the_key_is_set() -> None:
    assert shutdown_reason(REQUEST, now=10_000, idle_since=None, heartbeat_silence=10_000) is None
    request = parse_request("analysis", request_data(client_heartbeat_timeout=300))
    assert shutdown_reason(request, now=1000, idle_since=None, heartbeat_silence=299) is None
    reason = shutdown_reason(request, now=1000, idle_since=None, heartbeat_silence=400)
    assert reason is not None and "no client heartbeat for 400 s" in reason

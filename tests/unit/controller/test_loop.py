"""The request loop against an in-memory API: what it writes, and when it writes nothing."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from controller_fakes import FakeKube, request_data
from kubedask.spec import HEARTBEAT_ANNOTATION, PHASE_LABEL, STATUS_ANNOTATION, parse_status
from kubedask_controller.loop import ClusterLoop, Controller, Settings
from kubedask_controller.policy import Policy
from kubedask_controller.scheduler import RetiredWorker, SchedulerUnavailable


def configmap(data: dict[str, str], uid: str = "uid-1", annotations: dict[str, str] | None = None
              ) -> dict[str, Any]:
    return {"metadata": {"name": "analysis", "namespace": "ns", "uid": uid,
                         "labels": {"kubedask.io/request": "cluster"}, "annotations": annotations or {}},
            "data": data}


def new_loop(kube: FakeKube, body: dict[str, Any], policy: Policy | None = None) -> ClusterLoop:
    controller = Controller(kube, Settings(policy=policy or Policy()))  # type: ignore[arg-type]
    return ClusterLoop(controller, ("ns", "analysis"), body)


def last_status(kube: FakeKube) -> Any:
    return parse_status(kube.configmap_patches[-1]["metadata"]["annotations"])


async def test_request_converges_then_costs_no_writes_at_rest(fake_kube: FakeKube) -> None:
    loop = new_loop(fake_kube, configmap(request_data(workers=3)))
    await loop.reconcile_once()
    assert sorted(fake_kube.pods) == sorted(["analysis-scheduler", *fake_kube.workers()])
    assert len(fake_kube.workers()) == 3
    assert list(fake_kube.services) == list(fake_kube.pdbs) == ["analysis-scheduler"]
    assert last_status(fake_kube).phase == "Pending"

    fake_kube.run_all()
    await loop.reconcile_once()
    status = last_status(fake_kube)
    assert status.phase == "Running" and status.workers.running == 3
    assert fake_kube.configmap_patches[-1]["metadata"]["labels"] == {PHASE_LABEL: "Running"}

    writes = fake_kube.writes
    for _ in range(3):
        await loop.reconcile_once()
    assert fake_kube.writes == writes


async def test_own_status_write_does_not_wake_the_loop(fake_kube: FakeKube) -> None:
    body = configmap(request_data())
    loop = new_loop(fake_kube, body)
    loop._wake.clear()
    written = copy.deepcopy(body)
    written["metadata"]["annotations"][STATUS_ANNOTATION] = '{"phase": "Running"}'
    written["metadata"]["labels"][PHASE_LABEL] = "Running"
    loop.update(written)
    assert not loop._wake.is_set()
    changed = copy.deepcopy(written)
    changed["data"]["workers"] = "5"
    loop.update(changed)
    assert loop._wake.is_set()


async def test_restarted_controller_does_not_duplicate_workers(fake_kube: FakeKube) -> None:
    body = configmap(request_data(workers=5))
    await new_loop(fake_kube, body).reconcile_once()
    assert len(fake_kube.workers()) == 5
    await new_loop(fake_kube, body).reconcile_once()  # a fresh process: no memory, only the LIST
    assert len(fake_kube.workers()) == 5


async def test_unseen_creates_are_expected_not_repeated(fake_kube: FakeKube) -> None:
    """A LIST that lags behind our own creates (slow cache) must not cause duplicates."""
    loop = new_loop(fake_kube, configmap(request_data(workers=4)))
    await loop.reconcile_once()
    hidden = {n: fake_kube.pods.pop(n) for n in fake_kube.workers()[:2]}
    await loop.reconcile_once()
    fake_kube.pods.update(hidden)
    assert len(fake_kube.workers()) == 4


async def test_invalid_request_fails_creates_nothing_and_recovers(fake_kube: FakeKube) -> None:
    data = request_data()
    data["workers"] = "-2"
    loop = new_loop(fake_kube, configmap(data))
    await loop.reconcile_once()
    assert fake_kube.pods == {}
    status = last_status(fake_kube)
    assert status.phase == "Failed" and "'workers' has value '-2'" in status.message
    assert fake_kube.events[-1][0] == "InvalidRequest" and fake_kube.events[-1][2] == "Warning"
    writes = fake_kube.writes
    await loop.reconcile_once()
    assert fake_kube.writes == writes

    loop.update(configmap(request_data(workers=2)))
    await loop.reconcile_once()
    assert len(fake_kube.workers()) == 2
    assert last_status(fake_kube).phase == "Pending"


async def test_policy_violation_is_reported(fake_kube: FakeKube) -> None:
    template = {"containers": [{"name": "w", "image": "i", "securityContext": {"privileged": True}}]}
    loop = new_loop(fake_kube, configmap(request_data(worker_template=template)))
    await loop.reconcile_once()
    assert fake_kube.pods == {}
    assert "policy violation" in last_status(fake_kube).message


class FakeScheduler:
    def __init__(self, retire: list[RetiredWorker] | Exception) -> None:
        self.retire = retire
        self.asked: list[int] = []

    async def retire_workers(self, n: int) -> list[RetiredWorker]:
        self.asked.append(n)
        if isinstance(self.retire, Exception):
            raise self.retire
        return self.retire

    async def adaptive_target(self) -> int | None:
        return None

    async def idle_since(self) -> tuple[bool, float | None]:
        return True, None


async def scaled_cluster(kube: FakeKube, workers: int) -> tuple[ClusterLoop, dict[str, Any]]:
    body = configmap(request_data(workers=workers))
    loop = new_loop(kube, body)
    await loop.reconcile_once()
    kube.run_all()
    await loop.reconcile_once()
    return loop, body


async def test_scale_down_deletes_the_workers_the_scheduler_retired(
        fake_kube: FakeKube, monkeypatch: pytest.MonkeyPatch) -> None:
    loop, body = await scaled_cluster(fake_kube, 3)
    chosen = fake_kube.workers()[1]
    scheduler = FakeScheduler([RetiredWorker(name=chosen, host="10.9.9.9")])
    monkeypatch.setattr(loop, "_scheduler_client", lambda observed: scheduler)
    body["data"]["workers"] = "2"
    loop.update(copy.deepcopy(body))
    await loop.reconcile_once()
    assert scheduler.asked == [1]
    assert chosen not in fake_kube.pods and len(fake_kube.workers()) == 2
    assert any(e[0] == "WorkersRetired" for e in fake_kube.events)


async def test_scale_down_falls_back_to_deleting_when_the_scheduler_is_unreachable(
        fake_kube: FakeKube, monkeypatch: pytest.MonkeyPatch) -> None:
    loop, body = await scaled_cluster(fake_kube, 3)
    monkeypatch.setattr(loop, "_scheduler_client",
                        lambda observed: FakeScheduler(SchedulerUnavailable("connection refused")))
    body["data"]["workers"] = "1"
    loop.update(copy.deepcopy(body))
    await loop.reconcile_once()
    assert len(fake_kube.workers()) == 1
    assert any(e[0] == "RetireFailed" and e[2] == "Warning" for e in fake_kube.events)


async def test_silent_client_gets_its_cluster_reaped(fake_kube: FakeKube) -> None:
    body = configmap(request_data(client_heartbeat_timeout=60),
                     annotations={HEARTBEAT_ANNOTATION: "2020-01-01T00:00:00Z"})
    loop = new_loop(fake_kube, body)
    loop.observed_since -= 120  # the controller has been watching for two minutes
    await loop.reconcile_once()
    assert fake_kube.configmap_deleted
    assert last_status(fake_kube).phase == "Terminating"
    assert fake_kube.pods == {}


async def test_request_without_heartbeat_key_is_never_reaped(fake_kube: FakeKube) -> None:
    body = configmap(request_data(), annotations={HEARTBEAT_ANNOTATION: "2020-01-01T00:00:00Z"})
    loop = new_loop(fake_kube, body)
    loop.observed_since -= 10_000
    await loop.reconcile_once()
    assert not fake_kube.configmap_deleted


async def test_worker_deleted_before_the_next_list_is_replaced(fake_kube: FakeKube) -> None:
    """Created, seen by the watch, deleted by a user, all between two passes: still replaced."""
    loop = new_loop(fake_kube, configmap(request_data(workers=2)))
    await loop.reconcile_once()
    victim = fake_kube.workers()[0]
    loop.on_pod_event("ADDED", fake_kube.pods[victim])
    deleted = fake_kube.pods.pop(victim)
    loop.on_pod_event("DELETED", deleted)
    await loop.reconcile_once()
    assert len(fake_kube.workers()) == 2 and victim not in fake_kube.workers()


async def test_pods_the_api_server_refuses_fail_the_request_visibly(fake_kube: FakeKube) -> None:
    from kubernetes.client.exceptions import ApiException

    refusal = ApiException(status=422, reason="Unprocessable Entity")
    refusal.body = '{"message": "Pod \\"x\\" is invalid: spec.containers[0].resources: bad quantity"}'
    fake_kube.refuse_pods = refusal
    loop = new_loop(fake_kube, configmap(request_data(workers=2)))
    delay = await loop.reconcile_once()
    status = last_status(fake_kube)
    assert status.phase == "Failed" and "refused the scheduler pod" in status.message
    assert "bad quantity" in status.message
    assert ("CreateRejected", status.message, "Warning") in fake_kube.events
    assert delay is not None and delay >= 60  # retried slowly (a quota may free up), not in a hot loop
    events = len(fake_kube.events)
    await loop.reconcile_once()
    assert len(fake_kube.events) == events  # the same refusal is not re-announced every retry

    fake_kube.refuse_pods = None
    await loop.reconcile_once()
    assert len(fake_kube.workers()) == 2

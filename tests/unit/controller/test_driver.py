"""A request's driver against an in-memory API: what it writes, when it writes nothing, and when it runs.

Tests of a single pass call ``reconcile_once`` directly; tests of timing run the drivers through the
controller on the event loop's fake time (looptime), so a 60 s timeout takes milliseconds and no test
sleeps on a real clock.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from typing import Any

import pytest
from controller_fakes import EPOCH, FakeKube, FakeScheduler, LoopClock, configmap, request_data
from kubedask.spec import HEARTBEAT_ANNOTATION, PHASE_LABEL, STATUS_ANNOTATION, parse_status
from kubedask_controller.controller import Controller
from kubedask_controller.driver import RequestDriver
from kubedask_controller.policy import Policy
from kubedask_controller.scheduler import RetiredWorker
from kubedask_controller.settings import Settings
from kubernetes.client.exceptions import ApiException


def new_controller(kube: FakeKube, policy: Policy | None = None, scheduler: FakeScheduler | None = None,
                   **kwargs: Any) -> Controller:
    settings = Settings(policy=policy or Policy())
    if scheduler is not None:
        settings.scheduler_client = lambda ip: scheduler
    return Controller(kube, settings, clock=LoopClock(), **kwargs)


def new_driver(kube: FakeKube, body: dict[str, Any], scheduler: FakeScheduler | None = None) -> RequestDriver:
    return RequestDriver(new_controller(kube, scheduler=scheduler), body)


def last_status(kube: FakeKube) -> Any:
    return parse_status(kube.configmap_patches[-1]["metadata"]["annotations"])


async def test_request_converges_then_costs_no_writes_at_rest(fake_kube: FakeKube) -> None:
    driver = new_driver(fake_kube, configmap(request_data(workers=3)))
    await driver.reconcile_once()
    assert sorted(fake_kube.pods) == sorted(["analysis-scheduler", *fake_kube.workers()])
    assert len(fake_kube.workers()) == 3
    assert list(fake_kube.services) == list(fake_kube.pdbs) == ["analysis-scheduler"]
    assert last_status(fake_kube).phase == "Pending"

    fake_kube.run_all()
    await driver.reconcile_once()
    status = last_status(fake_kube)
    assert status.phase == "Running" and status.workers.running == 3
    assert fake_kube.configmap_patches[-1]["metadata"]["labels"] == {PHASE_LABEL: "Running"}
    assert "SchedulerAPI" not in {c.type for c in status.conditions}  # never asked: nothing to say

    writes = fake_kube.writes
    for _ in range(3):
        await driver.reconcile_once()
    assert fake_kube.writes == writes


@pytest.mark.looptime
async def test_own_status_write_does_not_wake_the_driver_but_a_spec_change_does(fake_kube: FakeKube) -> None:
    controller = new_controller(fake_kube)
    body = configmap(request_data(workers=1))
    controller.on_request_event("ADDED", body)
    await asyncio.sleep(5)
    passes = fake_kube.lists
    written = copy.deepcopy(body)
    written["metadata"]["annotations"][STATUS_ANNOTATION] = '{"phase": "Running"}'
    written["metadata"]["labels"][PHASE_LABEL] = "Running"
    controller.on_request_event("MODIFIED", written)
    await asyncio.sleep(60)
    assert fake_kube.lists == passes
    changed = copy.deepcopy(written)
    changed["data"]["workers"] = "5"
    controller.on_request_event("MODIFIED", changed)
    await asyncio.sleep(1)
    assert fake_kube.lists == passes + 1 and len(fake_kube.workers()) == 5
    await controller.stop()


@pytest.mark.looptime
async def test_a_burst_of_pod_events_makes_one_pass(fake_kube: FakeKube) -> None:
    controller = new_controller(fake_kube)
    controller.on_request_event("ADDED", configmap(request_data(workers=50)))
    await asyncio.sleep(10)  # created, settled: the next timed pass is the resync, minutes away
    passes = fake_kube.lists
    fake_kube.run_all()
    for pod in fake_kube.pods.values():  # 51 pods start within the debounce
        controller.on_pod_event("MODIFIED", pod)
    await asyncio.sleep(1)
    assert fake_kube.lists == passes + 1
    assert last_status(fake_kube).phase == "Running"
    await controller.stop()


async def test_restarted_controller_does_not_duplicate_workers(fake_kube: FakeKube) -> None:
    body = configmap(request_data(workers=5))
    await new_driver(fake_kube, body).reconcile_once()
    assert len(fake_kube.workers()) == 5
    await new_driver(fake_kube, body).reconcile_once()  # a fresh process: no memory, only the LIST
    assert len(fake_kube.workers()) == 5


async def test_unseen_creates_are_expected_not_repeated(fake_kube: FakeKube) -> None:
    """A LIST that lags behind our own creates (slow cache) must not cause duplicates."""
    driver = new_driver(fake_kube, configmap(request_data(workers=4)))
    await driver.reconcile_once()
    hidden = {n: fake_kube.pods.pop(n) for n in fake_kube.workers()[:2]}
    await driver.reconcile_once()
    fake_kube.pods.update(hidden)
    assert len(fake_kube.workers()) == 4


@pytest.mark.looptime
async def test_an_expected_create_that_never_shows_up_is_given_up_after_the_timeout(fake_kube: FakeKube) -> None:
    driver = new_driver(fake_kube, configmap(request_data(workers=2)))
    await driver.reconcile_once()
    lost = fake_kube.workers()[0]
    del fake_kube.pods[lost]  # the create was acknowledged, but the pod never appears in any LIST
    await asyncio.sleep(driver.settings.expectation_timeout - 1)
    await driver.reconcile_once()
    assert len(fake_kube.workers()) == 1  # still trusted
    await asyncio.sleep(2)
    await driver.reconcile_once()
    assert len(fake_kube.workers()) == 2 and lost not in fake_kube.workers()


async def test_invalid_request_fails_creates_nothing_and_recovers(fake_kube: FakeKube) -> None:
    data = request_data()
    data["workers"] = "-2"
    driver = new_driver(fake_kube, configmap(data))
    assert await driver.reconcile_once() is None
    assert fake_kube.pods == {}
    status = last_status(fake_kube)
    assert status.phase == "Failed" and "workers" in status.message and "-2" in status.message
    assert fake_kube.events[-1][0] == "InvalidRequest" and fake_kube.events[-1][2] == "Warning"
    writes = fake_kube.writes
    await driver.reconcile_once()
    assert fake_kube.writes == writes

    driver.update(configmap(request_data(workers=2)))
    await driver.reconcile_once()
    assert len(fake_kube.workers()) == 2
    assert last_status(fake_kube).phase == "Pending"


async def test_policy_violation_is_reported(fake_kube: FakeKube) -> None:
    template = {"containers": [{"name": "w", "image": "i", "securityContext": {"privileged": True}}]}
    driver = new_driver(fake_kube, configmap(request_data(worker_template=template)))
    await driver.reconcile_once()
    assert fake_kube.pods == {}
    assert "policy violation" in last_status(fake_kube).message


async def scaled_cluster(kube: FakeKube, workers: int, scheduler: FakeScheduler | None = None,
                         **data: Any) -> tuple[RequestDriver, dict[str, Any]]:
    body = configmap(request_data(workers=workers, **data))
    driver = new_driver(kube, body, scheduler)
    await driver.reconcile_once()
    kube.run_all()
    await driver.reconcile_once()
    return driver, body


async def test_scale_down_deletes_the_workers_the_scheduler_retired(fake_kube: FakeKube) -> None:
    scheduler = FakeScheduler()
    driver, body = await scaled_cluster(fake_kube, 3, scheduler)
    chosen = fake_kube.workers()[1]
    scheduler.retire = [RetiredWorker(name=chosen, host="10.9.9.9")]
    body["data"]["workers"] = "2"
    driver.update(copy.deepcopy(body))
    await driver.reconcile_once()  # asks the scheduler, beside the loop
    await driver.retirement.finished()
    await driver.reconcile_once()  # deletes what it retired
    assert scheduler.asked == ["retire 1"]
    assert chosen not in fake_kube.pods and len(fake_kube.workers()) == 2
    assert "WorkersRetired" in fake_kube.reasons()
    await driver.reconcile_once()
    assert len(fake_kube.workers()) == 2  # never replaced


async def test_scale_down_falls_back_to_deleting_when_the_scheduler_is_unreachable(fake_kube: FakeKube) -> None:
    scheduler = FakeScheduler()
    scheduler.down = "connection refused"
    driver, body = await scaled_cluster(fake_kube, 3, scheduler)
    body["data"]["workers"] = "1"
    driver.update(copy.deepcopy(body))
    await driver.reconcile_once()
    await driver.retirement.finished()
    assert any(e[0] == "RetireFailed" and e[2] == "Warning" for e in fake_kube.events)
    await driver.reconcile_once()  # re-observes, then deletes what is still in excess without asking again
    assert len(fake_kube.workers()) == 1
    assert scheduler.asked.count("retire 2") == 1


@pytest.mark.looptime
async def test_adapt_follows_the_scheduler_and_holds_while_it_does_not_answer(fake_kube: FakeKube) -> None:
    scheduler = FakeScheduler(target=4)
    driver, _ = await scaled_cluster(fake_kube, 1, scheduler, adapt={"minimum": 1, "maximum": 10, "interval": 2})
    assert len(fake_kube.workers()) == 4
    assert last_status(fake_kube).condition("SchedulerAPI").status == "True"

    scheduler.down = "scheduler 10.0.0.1 unreachable: connection refused"
    fake_kube.run_all()
    await asyncio.sleep(2)  # adapt asks the scheduler every interval, not on every pass
    await driver.reconcile_once()
    assert len(fake_kube.workers()) == 4  # the current target holds
    condition = last_status(fake_kube).condition("SchedulerAPI")
    assert (condition.status, condition.reason, condition.message) == (
        "False", "SchedulerUnanswered", "scheduler 10.0.0.1 unreachable: connection refused")
    writes = fake_kube.writes
    await asyncio.sleep(2)
    await driver.reconcile_once()
    assert fake_kube.writes == writes  # the same failure again changes nothing visible: no write
    assert scheduler.asked.count("adaptive_target") == 3

    scheduler.down = None
    await asyncio.sleep(2)
    await driver.reconcile_once()
    assert last_status(fake_kube).condition("SchedulerAPI").status == "True"


@pytest.mark.looptime
async def test_an_unreachable_scheduler_never_gets_a_busy_cluster_reaped_as_idle(fake_kube: FakeKube) -> None:
    scheduler = FakeScheduler(idle_since=EPOCH)  # idle from the start...
    controller = new_controller(fake_kube, scheduler=scheduler)
    controller.on_request_event("ADDED", configmap(request_data(workers=1, idle_timeout=100)))
    await asyncio.sleep(1)
    fake_kube.run_all()
    await asyncio.sleep(30)
    scheduler.down = "timed out after 10 s"  # ... then unreachable (while it may be busy)
    await asyncio.sleep(600)
    assert fake_kube.configmaps_deleted == []
    assert last_status(fake_kube).condition("SchedulerAPI").status == "False"
    scheduler.down = None  # it answers again, and has really been idle all along
    await asyncio.sleep(60)
    assert fake_kube.configmaps_deleted == ["analysis"]
    assert "idle" in last_status(fake_kube).message
    await controller.stop()


@pytest.mark.looptime
async def test_silent_client_gets_its_cluster_reaped(fake_kube: FakeKube) -> None:
    controller = new_controller(fake_kube)
    controller.on_request_event("ADDED", configmap(request_data(client_heartbeat_timeout=60), annotations={
        HEARTBEAT_ANNOTATION: "2020-01-01T00:00:00Z"}))
    await asyncio.sleep(50)
    assert fake_kube.configmaps_deleted == []  # a full timeout from when the controller first saw it
    await asyncio.sleep(30)
    assert fake_kube.configmaps_deleted == ["analysis"]
    assert last_status(fake_kube).phase == "Terminating"
    await controller.stop()


@pytest.mark.looptime
async def test_request_without_heartbeat_key_is_never_reaped(fake_kube: FakeKube) -> None:
    controller = new_controller(fake_kube)
    controller.on_request_event("ADDED", configmap(request_data(), annotations={
        HEARTBEAT_ANNOTATION: "2020-01-01T00:00:00Z"}))
    await asyncio.sleep(10_000)
    assert fake_kube.configmaps_deleted == []
    assert fake_kube.lists > 10  # resyncs kept running meanwhile
    await controller.stop()


async def test_worker_deleted_before_the_next_list_is_replaced(fake_kube: FakeKube) -> None:
    """Created, seen by the watch, deleted by a user, all between two passes: still replaced."""
    driver = new_driver(fake_kube, configmap(request_data(workers=2)))
    await driver.reconcile_once()
    victim = fake_kube.workers()[0]
    driver.on_pod_event("ADDED", fake_kube.pods[victim])
    deleted = fake_kube.pods.pop(victim)
    driver.on_pod_event("DELETED", deleted)
    await driver.reconcile_once()
    assert len(fake_kube.workers()) == 2 and victim not in fake_kube.workers()


async def test_workers_that_keep_exiting_are_replaced_with_growing_delays(fake_kube: FakeKube) -> None:
    driver, _ = await scaled_cluster(fake_kube, 2)
    delays = []
    for _ in range(5):
        fake_kube.pods[fake_kube.workers()[0]]["status"] = {"phase": "Failed"}
        delays.append(await driver.reconcile_once())
    assert delays == [2.0, 4.0, 8.0, 16.0, 32.0]
    fake_kube.run_all()
    assert await driver.reconcile_once() == driver.settings.resync_interval  # healthy again: streak over


async def test_pods_the_api_server_refuses_fail_the_request_visibly(fake_kube: FakeKube) -> None:
    refusal = ApiException(status=422, reason="Unprocessable Entity")
    refusal.body = '{"message": "Pod \\"x\\" is invalid: spec.containers[0].resources: bad quantity"}'
    fake_kube.refuse_pods = refusal
    driver = new_driver(fake_kube, configmap(request_data(workers=2)))
    delay = await driver.reconcile_once()
    status = last_status(fake_kube)
    assert status.phase == "Failed" and "refused the scheduler pod" in status.message
    assert "bad quantity" in status.message
    assert ("CreateRejected", status.message, "Warning") in fake_kube.events
    assert delay is not None and delay >= 60  # retried slowly (a quota may free up), not in a hot loop
    events = len(fake_kube.events)
    await driver.reconcile_once()
    assert len(fake_kube.events) == events  # the same refusal is not re-announced every retry

    fake_kube.refuse_pods = None
    await driver.reconcile_once()
    assert len(fake_kube.workers()) == 2

async def test_a_new_namespace_without_its_default_service_account_yet_is_waited_for(fake_kube: FakeKube) -> None:
    """The ServiceAccount admission plugin refuses every pod of a namespace whose ``default`` account the
    kube-controller-manager has not created yet (seconds after the namespace, longer while it catches up
    after an API server restart): Pending and soon again, not Failed with a minute's retry."""
    refusal = ApiException(status=403, reason="Forbidden")
    refusal.body = ('{"message": "pods \\"analysis-scheduler\\" is forbidden: error looking up service account '
                    'ns/default: serviceaccount \\"default\\" not found"}')
    fake_kube.refuse_pods = refusal
    driver = new_driver(fake_kube, configmap(request_data(workers=2)))
    delay = await driver.reconcile_once()
    status = last_status(fake_kube)
    assert status.phase == "Pending", status.message
    assert "ServiceAccount 'default' of namespace ns" in status.message
    assert [c.reason for c in status.conditions if c.status == "False"] == ["WaitingForServiceAccount"]
    assert not [e for e in fake_kube.events if e[2] == "Warning"]
    assert delay == driver.settings.settle_delay

    fake_kube.refuse_pods = None
    await driver.reconcile_once()
    assert len(fake_kube.workers()) == 2
    assert "ServiceAccount" not in last_status(fake_kube).message


@pytest.mark.parametrize("message", [
    'pods "analysis-scheduler" is forbidden: error looking up service account ns/dask: serviceaccount "dask" '
    'not found',
    # A webhook's refusal that quotes the phrase (from a label value, say) is not the admission plugin's.
    'admission webhook "policy.example" denied the request: label x: pods "a" is forbidden: error looking up '
    'service account ns/default: serviceaccount "default" not found',
])
async def test_other_service_account_refusals_still_fail_the_request(fake_kube: FakeKube, message: str) -> None:
    refusal = ApiException(status=403, reason="Forbidden")
    refusal.body = json.dumps({"message": message})
    fake_kube.refuse_pods = refusal
    driver = new_driver(fake_kube, configmap(request_data(workers=1)))
    delay = await driver.reconcile_once()
    status = last_status(fake_kube)
    assert status.phase == "Failed" and "not found" in status.message
    assert delay is not None and delay >= 60



@pytest.mark.looptime
async def test_a_replica_that_is_not_the_leader_makes_no_pass(fake_kube: FakeKube) -> None:
    leading = {"now": True}
    controller = new_controller(fake_kube, is_leader=lambda: leading["now"])
    body = configmap(request_data(workers=1))
    controller.on_request_event("ADDED", body)
    await asyncio.sleep(5)
    passes, writes = fake_kube.lists, fake_kube.writes
    leading["now"] = False  # the lease is lost
    changed = copy.deepcopy(body)
    changed["data"]["workers"] = "3"
    controller.on_request_event("MODIFIED", changed)
    await asyncio.sleep(1000)
    assert (fake_kube.lists, fake_kube.writes) == (passes, writes)
    leading["now"] = True
    controller.wake_all()  # what the elector does when this replica leads again
    await asyncio.sleep(1)
    assert len(fake_kube.workers()) == 3
    await controller.stop()


@pytest.mark.looptime
async def test_a_namespace_cap_admits_the_older_request_and_the_newer_once_the_older_goes(
        fake_kube: FakeKube) -> None:
    controller = new_controller(fake_kube, policy=Policy.model_validate({"maxClustersPerNamespace": 1}))
    older = configmap(request_data(workers=1), name="older", uid="u1", created="2026-01-01T00:00:00Z")
    newer = configmap(request_data(workers=1), name="newer", uid="u2", created="2026-01-01T00:00:05Z")
    controller.on_request_event("ADDED", newer)  # watch order is not age order
    controller.on_request_event("ADDED", older)
    await asyncio.sleep(5)
    statuses = {p["metadata"]["annotations"][STATUS_ANNOTATION] for p in fake_kube.configmap_patches}
    assert any("clusters per namespace" in s for s in statuses)
    assert {p["metadata"]["labels"]["dask.org/cluster-name"] for p in fake_kube.pods.values()} == {"older"}
    controller.on_request_event("DELETED", older)
    await asyncio.sleep(1)  # the freed cap is re-evaluated at once, not at the next resync
    assert any(p["metadata"]["labels"]["dask.org/cluster-name"] == "newer" for p in fake_kube.pods.values())
    await controller.stop()


@pytest.mark.looptime
async def test_requests_in_the_controllers_own_namespace_are_ignored_with_one_warning(
        fake_kube: FakeKube, caplog: pytest.LogCaptureFixture) -> None:
    controller = new_controller(fake_kube, own_namespace="ns")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            controller.on_request_event("MODIFIED", configmap(request_data()))
        await asyncio.sleep(5)
    assert fake_kube.writes == fake_kube.lists == 0
    assert len([r for r in caplog.records if "own" in r.getMessage()]) == 1
    await controller.stop()


@pytest.mark.looptime
async def test_a_new_request_sends_its_workers_alongside_its_scheduler_then_its_service_and_pdb() -> None:
    """Each API call takes a second of (fake) time: the first pass takes one for the reads, one for the
    scheduler pod and workers together (the workers do not wait for the scheduler's answer), and one for the
    Service and PDB, sent once the first batch of workers was answered."""
    sent: list[tuple[float, str]] = []

    class SlowKube(FakeKube):
        async def _slow(self, what: str) -> None:
            sent.append((asyncio.get_running_loop().time(), what))
            await asyncio.sleep(1)

        async def list_pods(self, namespace: str, selector: str, not_older_than: str | None = None
                            ) -> list[dict[str, Any]]:
            await self._slow("list")
            return await super().list_pods(namespace, selector)

        async def create_pod(self, manifest: dict[str, Any]) -> bool:
            await self._slow(manifest["metadata"]["labels"]["dask.org/component"])
            return await super().create_pod(manifest)

        async def create_service(self, manifest: dict[str, Any]) -> bool:
            await self._slow("service")
            return await super().create_service(manifest)

        async def create_pdb(self, manifest: dict[str, Any]) -> bool:
            await self._slow("pdb")
            return await super().create_pdb(manifest)

    kube = SlowKube()
    driver = new_driver(kube, configmap(request_data(workers=3)))
    start = asyncio.get_running_loop().time()
    await driver.reconcile_once()
    started = {what: round(at - start) for at, what in sorted(sent, reverse=True)}
    assert started == {"list": 0, "scheduler": 1, "worker": 1, "service": 2, "pdb": 2}
    assert len(kube.workers()) == 3 and list(kube.services) == list(kube.pdbs) == ["analysis-scheduler"]

"""Writes fenced by the lease (also for a replica paused past it), a status that repairs itself from what is
on the request, deletes with preconditions, and heartbeat reaping that trusts no client clock."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from typing import Any

import pytest
from controller_fakes import EPOCH, FakeKube, FakeLeases, configmap, request_data
from kubedask.spec import HEARTBEAT_ANNOTATION, PHASE_LABEL, STATUS_ANNOTATION, format_heartbeat
from kubedask_controller.controller import Controller
from kubedask_controller.fence import FencedApi, LostLease, send_guard
from kubedask_controller.leader import LeaderElector
from kubernetes.client.exceptions import ApiException
from test_driver import last_status, new_controller, new_driver


async def test_no_write_is_sent_without_the_lease_and_reads_still_are(fake_kube: FakeKube) -> None:
    fenced = FencedApi(fake_kube, lambda: False)
    assert await fenced.list_pods("ns", "a=b") == []
    for write in (fenced.create_pod({"metadata": {"name": "p"}}), fenced.delete_pod("ns", "p", "u"),
                  fenced.patch_configmap("ns", "c", {}), fenced.delete_configmap("ns", "c"),
                  fenced.patch_service("ns", "s", {}), fenced.post_event({}, "R", "m")):
        with pytest.raises(LostLease):
            await write
    assert fake_kube.writes == 0


def test_the_sending_thread_checks_the_lease_at_the_moment_of_sending() -> None:
    deadline = 100.0
    now = [99.0]
    asked: list[float] = []

    def leads_at(t: float) -> bool:
        asked.append(t)
        return t < deadline

    guard = send_guard(leads_at, lambda: now[0])
    guard()  # before the deadline: sent
    now[0] = 100.5  # the write waited for a thread until past the lease
    with pytest.raises(LostLease, match="lost the leader lease while the write waited"):
        guard()
    assert asked == [99.0, 100.5]


@pytest.mark.looptime
async def test_a_lease_lost_in_the_middle_of_a_pass_stops_its_writes_at_once(fake_kube: FakeKube) -> None:
    leading = {"now": True}
    controller = new_controller(fake_kube, is_leader=lambda: leading["now"])
    real_create = fake_kube.create_pod

    async def create_then_lose(manifest: dict[str, Any]) -> bool:
        leading["now"] = False  # the lease expires while the first create is in flight
        return await real_create(manifest)

    fake_kube.create_pod = create_then_lose  # type: ignore[method-assign]
    controller.on_request_event("ADDED", configmap(request_data(workers=5)))
    await asyncio.sleep(100)
    assert list(fake_kube.pods) == ["analysis-scheduler"]  # nothing after the lease was gone
    assert fake_kube.services == {} and fake_kube.configmap_patches == []
    fake_kube.create_pod = real_create  # type: ignore[method-assign]
    leading["now"] = True
    controller.wake_all()
    await asyncio.sleep(2)
    assert len(fake_kube.workers()) == 5
    await controller.stop()


@pytest.mark.looptime
async def test_a_leader_paused_past_its_lease_does_not_lead_when_it_wakes() -> None:
    leases = FakeLeases()
    a = LeaderElector(leases, "ns", identity="a", lease_duration=30, renew_deadline=20, retry_period=5)
    b = LeaderElector(leases, "ns", identity="b", lease_duration=30, renew_deadline=20, retry_period=5)
    task_a = asyncio.create_task(a.run())
    await asyncio.sleep(1)
    task_b = asyncio.create_task(b.run())
    try:
        await asyncio.sleep(10)
        assert a.is_leader
        task_a.cancel()  # SIGSTOP: a sends nothing more, its memory stays as it was
        await asyncio.sleep(60)
        assert b.is_leader
        # SIGCONT: before a's elector has run a single round, a must already know it does not lead.
        assert not a.is_leader and a.deadline < asyncio.get_running_loop().time()
        task_a = asyncio.create_task(a.run())
        for _ in range(10):
            await asyncio.sleep(5)
            assert b.is_leader and not a.is_leader
    finally:
        task_a.cancel()
        task_b.cancel()


@pytest.mark.looptime
async def test_the_lease_deadline_counts_from_when_the_renewal_was_sent() -> None:
    class SlowLeases(FakeLeases):
        async def replace_lease(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
            await asyncio.sleep(15)  # an API server that takes its time
            return await super().replace_lease(namespace, name, body)

    leases = SlowLeases()
    a = LeaderElector(leases, "ns", identity="a", lease_duration=30, renew_deadline=20, retry_period=5)
    await a._try_acquire_or_renew()  # created: no delay
    sent = asyncio.get_running_loop().time()
    await a._try_acquire_or_renew()  # renewed, 15 s after it was sent
    assert a.deadline == sent + 20


def stored(kube: FakeKube, body: dict[str, Any]) -> dict[str, Any]:
    kube.configmap = copy.deepcopy(body)
    kube.configmap["metadata"]["resourceVersion"] = "1"
    return copy.deepcopy(kube.configmap)


def echo(controller: Controller, kube: FakeKube, **annotations: str | None) -> None:
    """The watch delivers the request as stored, with ``annotations`` changed by someone else."""
    assert kube.configmap is not None
    for key, value in annotations.items():
        if value is None:
            kube.configmap["metadata"]["annotations"].pop(key, None)
        else:
            kube.configmap["metadata"]["annotations"][key] = value
    controller.on_request_event("MODIFIED", copy.deepcopy(kube.configmap))


@pytest.mark.looptime
@pytest.mark.parametrize("tampering", [None, '{"phase": "Failed", "message": "forged"}',
                                       '{"phase": "Running", "workers": {"requested": 99}}'])
async def test_a_removed_or_forged_status_is_written_again_and_an_echo_costs_nothing(
        fake_kube: FakeKube, tampering: str | None) -> None:
    controller = new_controller(fake_kube)
    controller.on_request_event("ADDED", stored(fake_kube, configmap(request_data(workers=1))))
    await asyncio.sleep(1)
    fake_kube.run_all()
    for pod in fake_kube.pods.values():
        controller.on_pod_event("MODIFIED", pod)
    await asyncio.sleep(5)
    echo(controller, fake_kube)  # our own writes come back through the watch
    await asyncio.sleep(60)
    writes = fake_kube.writes
    assert last_status(fake_kube).phase == "Running"

    echo(controller, fake_kube, **{STATUS_ANNOTATION: tampering})  # a user removes or forges the status
    await asyncio.sleep(1)
    assert fake_kube.writes == writes + 1
    assert last_status(fake_kube).phase == "Running" and last_status(fake_kube).workers.requested == 1
    echo(controller, fake_kube)
    await asyncio.sleep(600)
    assert fake_kube.writes == writes + 1  # at rest again
    await controller.stop()


async def test_a_removed_phase_label_is_written_again(fake_kube: FakeKube) -> None:
    body = stored(fake_kube, configmap(request_data(workers=1)))
    driver = new_driver(fake_kube, body)
    await driver.reconcile_once()
    assert fake_kube.configmap is not None
    driver.update(copy.deepcopy(fake_kube.configmap))
    fake_kube.configmap["metadata"]["labels"].pop(PHASE_LABEL)
    driver.update(copy.deepcopy(fake_kube.configmap))
    assert driver.trigger.pulled
    await driver.reconcile_once()
    assert fake_kube.configmap["metadata"]["labels"][PHASE_LABEL] == "Pending"


async def test_deletes_carry_the_pods_uid_so_a_newer_pod_of_the_name_survives(fake_kube: FakeKube) -> None:
    driver = new_driver(fake_kube, configmap(request_data(workers=1)))
    await driver.reconcile_once()
    name = fake_kube.workers()[0]
    old_uid = fake_kube.pods[name]["metadata"]["uid"]
    fake_kube.pods[name]["metadata"]["uid"] = "a-newer-pod"  # replaced under the same name meanwhile
    await driver.executor.delete_pods([(name, old_uid)])
    assert name in fake_kube.pods


async def test_a_failed_delete_is_not_expected_to_have_happened(fake_kube: FakeKube) -> None:
    driver = new_driver(fake_kube, configmap(request_data(workers=2)))
    await driver.reconcile_once()
    fake_kube.failing_deletes = ApiException(status=500, reason="etcd leader changed")
    with pytest.raises(ApiException):
        await driver.executor.delete_pods([(n, None) for n in fake_kube.workers()])
    assert driver.expectations.pending[1] == frozenset()


@pytest.mark.looptime
@pytest.mark.parametrize("skew", [-3600.0, 0.0, 3600.0])
async def test_heartbeats_an_hour_ahead_or_behind_are_handled_like_a_correct_one(fake_kube: FakeKube,
                                                                                 skew: float) -> None:
    def heartbeat() -> str:
        now = EPOCH + asyncio.get_running_loop().time() + skew  # the client's clock
        return format_heartbeat(dt.datetime.fromtimestamp(now, dt.UTC))

    controller = new_controller(fake_kube)
    controller.on_request_event("ADDED", stored(fake_kube, configmap(
        request_data(workers=1, client_heartbeat_timeout=60), annotations={HEARTBEAT_ANNOTATION: heartbeat()})))
    for _ in range(30):  # the client renews every 20 s for 10 minutes
        await asyncio.sleep(20)
        echo(controller, fake_kube, **{HEARTBEAT_ANNOTATION: heartbeat()})
    assert fake_kube.configmaps_deleted == []
    gone_at = asyncio.get_running_loop().time()  # then it dies
    while not fake_kube.configmaps_deleted:
        await asyncio.sleep(1)
    waited = asyncio.get_running_loop().time() - gone_at
    assert 60 <= waited <= 60 + 15 + 1  # timeout, plus at most the check interval (timeout / 4)
    await controller.stop()


@pytest.mark.looptime
async def test_a_heartbeat_renewed_during_the_reaping_keeps_the_cluster(fake_kube: FakeKube) -> None:
    class RenewingClient(FakeKube):
        async def patch_configmap(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any] | None:
            patched = await super().patch_configmap(namespace, name, patch)
            if "Terminating" in str(patch) and self.configmap is not None:
                self.configmap["metadata"]["resourceVersion"] += "-renewed"  # the client writes right after
            return patched

    kube = RenewingClient()
    controller = new_controller(kube)
    controller.on_request_event("ADDED", stored(kube, configmap(request_data(workers=1, client_heartbeat_timeout=60))))
    await asyncio.sleep(90)
    assert kube.configmaps_deleted == []  # the precondition failed: the client is alive after all
    assert kube.writes > 0
    await controller.stop()


@pytest.mark.looptime
async def test_a_leader_whose_lease_lapsed_between_two_rounds_wakes_its_drivers_when_it_renews() -> None:
    leases = FakeLeases()
    woken: list[float] = []
    a = LeaderElector(leases, "ns", identity="a", lease_duration=30, renew_deadline=20, retry_period=5,
                      on_started_leading=lambda: woken.append(asyncio.get_running_loop().time()))
    task = asyncio.create_task(a.run())
    try:
        await asyncio.sleep(1)
        assert len(woken) == 1
        a._renewed_at -= 25  # as after a pause shorter than the standby's takeover: lapsed, then renewed
        await asyncio.sleep(15)  # its next round: a renew period after the renewal at 0 s
        assert a.is_leader and len(woken) == 2  # drivers stopped by the fence meanwhile are woken again
    finally:
        task.cancel()

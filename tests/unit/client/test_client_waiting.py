"""Waiting for a cluster, renewing its heartbeat and deleting it, on looptime's fake clock.

The API is in memory (fake_kube.MemoryApi), so a 30 s controller timeout or a 60 s close wait costs no
real time, and nothing here sleeps.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fake_kube import MemoryApi
from kubedask import ControllerNotRespondingError, RequestRejectedError, SchedulerStartError, spec
from kubedask.errors import KubeClusterError, SchedulerStartTimeoutError
from kubedask.request_io import RequestIO, build_manifest, heartbeat_interval
from kubedask.startup import StartupWait
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.looptime
WORKER = {"spec": {"containers": [{"name": "w", "image": "img"}]}}
READY = {
    "phase": "Running", "message": "ok", "schedulerAddress": "tcp://c1-scheduler.team-a.svc.cluster.local:8786",
    "conditions": [{"type": "RequestValid", "status": "True"}, {"type": "SchedulerReady", "status": "True"}],
}


@pytest.fixture
def api() -> MemoryApi:
    fake = MemoryApi("team-a")
    fake.configmaps["c1"] = build_manifest("c1", "team-a", worker=WORKER)
    return fake


def waiter(api: MemoryApi, lines: list[str] | None = None, **kwargs: Any) -> StartupWait:
    settings: dict[str, Any] = {"controller_timeout": 30, "scheduler_timeout": 120, "deploy_mode": "remote"}
    settings.update(kwargs)
    log = (lines if lines is not None else []).append
    return StartupWait(api=api, namespace="team-a", name="c1", log=log, **settings)


def later(delay: float, action: Any) -> None:
    asyncio.get_running_loop().call_later(delay, action)


async def test_no_controller_ends_the_wait_after_the_controller_timeout(api: MemoryApi) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ControllerNotRespondingError, match="within 30s"):
        await waiter(api).until_ready(await RequestIO(api, "c1").read())
    assert 30 <= loop.time() - started <= 33  # the poll interval is at most 2 s


async def test_a_ready_scheduler_is_seen_within_half_a_second_however_long_the_wait(api: MemoryApi) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    later(0.2, lambda: api.set_status("c1", phase="Pending", message="waiting for the scheduler pod"))
    later(7.3, lambda: api.set_status("c1", **READY))
    await waiter(api).until_ready(await RequestIO(api, "c1").read())
    assert 7.3 <= loop.time() - started <= 7.8  # a cold start is not stretched by a doubled poll interval


async def test_progress_is_logged_and_the_status_returned_when_the_scheduler_is_ready(api: MemoryApi) -> None:
    lines: list[str] = []
    later(5, lambda: api.set_status("c1", phase="Pending", message="waiting for the scheduler pod"))
    later(50, lambda: api.set_status("c1", **READY))
    status = await waiter(api, lines).until_ready(await RequestIO(api, "c1").read())
    assert status.scheduler_address == READY["schedulerAddress"]
    assert any("Pending: waiting for the scheduler pod" in line for line in lines)
    assert any(line.startswith("Cluster c1: Running: ok") for line in lines)


async def test_a_scheduler_that_never_gets_ready_times_out_with_diagnostics(api: MemoryApi) -> None:
    api.set_status("c1", phase="Pending", message="still pending")
    api.logs["c1-scheduler"] = "booting\nstill booting"
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(SchedulerStartTimeoutError, match="did not become ready within 60s") as info:
        await waiter(api, scheduler_timeout=60).until_ready(await RequestIO(api, "c1").read())
    assert 60 <= loop.time() - started <= 63
    assert "still booting" in str(info.value)


async def test_a_rejected_request_quotes_the_controller(api: MemoryApi) -> None:
    message = "hostNetwork is refused by the policy"
    api.set_status("c1", phase="Failed", message=message,
                   conditions=[{"type": "RequestValid", "status": "False", "message": message}])
    with pytest.raises(RequestRejectedError, match="hostNetwork is refused"):
        await waiter(api).until_ready(await RequestIO(api, "c1").read())


async def test_a_crashing_scheduler_ends_the_wait_at_once(api: MemoryApi) -> None:
    api.set_status("c1", phase="Pending", message="waiting")
    waiting = {"reason": "CrashLoopBackOff", "message": "back-off restarting"}
    api.pods["c1-scheduler"] = {"metadata": {"name": "c1-scheduler"},
                                "status": {"containerStatuses": [{"state": {"waiting": waiting}}]}}
    with pytest.raises(SchedulerStartError, match="CrashLoopBackOff"):
        await waiter(api).until_ready(await RequestIO(api, "c1").read())


async def test_a_request_deleted_while_waiting_is_reported(api: MemoryApi) -> None:
    later(3, lambda: api.configmaps.pop("c1"))
    with pytest.raises(KubeClusterError, match="was deleted while waiting"):
        await waiter(api).until_ready(await RequestIO(api, "c1").read())


def test_heartbeats_come_three_times_per_timeout_but_not_more_often_than_every_5s() -> None:
    assert heartbeat_interval(300) == 100
    assert heartbeat_interval(6) == 5


async def test_heartbeat_is_renewed_until_cancelled_and_survives_a_failed_write(api: MemoryApi) -> None:
    api.failures["patch_configmap"] = [ApiException(status=500, reason="Internal Server Error")]
    task = asyncio.create_task(RequestIO(api, "c1").renew_heartbeats(interval=10))
    await asyncio.sleep(35)  # fake time: renewals at 10 (fails), 20 and 30
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    beats = [p["metadata"]["annotations"][spec.HEARTBEAT_ANNOTATION] for p in api.patches]
    assert len(beats) == 2 and all(spec.parse_heartbeat(b) is not None for b in beats)


async def test_heartbeat_stops_when_the_request_is_gone(api: MemoryApi) -> None:
    del api.configmaps["c1"]
    await asyncio.wait_for(RequestIO(api, "c1").renew_heartbeats(interval=10), timeout=15)


async def test_close_deletes_the_request_and_waits_bounded_for_the_pods(api: MemoryApi) -> None:
    labels = {spec.CLUSTER_NAME_LABEL: "c1", spec.COMPONENT_LABEL: "worker"}
    api.pods["c1-worker-abcde"] = {"metadata": {"name": "c1-worker-abcde", "labels": labels}}
    later(7, lambda: api.pods.clear())
    loop = asyncio.get_running_loop()
    started = loop.time()
    await RequestIO(api, "c1").delete_and_wait(f"{spec.CLUSTER_NAME_LABEL}=c1", timeout=60)
    assert "c1" not in api.configmaps
    assert 7 <= loop.time() - started <= 9


async def test_close_gives_up_waiting_for_stuck_pods_after_the_timeout(
        api: MemoryApi, caplog: pytest.LogCaptureFixture) -> None:
    api.pods["c1-worker-abcde"] = {"metadata": {"name": "c1-worker-abcde", "labels": {spec.CLUSTER_NAME_LABEL: "c1"}}}
    loop = asyncio.get_running_loop()
    started = loop.time()
    await RequestIO(api, "c1").delete_and_wait(f"{spec.CLUSTER_NAME_LABEL}=c1", timeout=60)
    assert 60 <= loop.time() - started <= 63
    assert "still terminating after 60s: c1-worker-abcde" in caplog.text

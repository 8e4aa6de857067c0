"""What a scale-up holds while its creates wait their turn: a name each, not a built manifest or a request.

At 10,000 workers (100 clusters scaling at once) the creates waiting for a connection are most of the
controller's peak memory if each holds its pod's manifest, its JSON and an aiohttp request."""

from __future__ import annotations

import asyncio
from typing import Any

import kubernetes
import pytest
from controller_fakes import FakeKube, LoopClock, request_data
from kmock import KubernetesEmulator, ResourceInfo
from kubedask.spec import parse_request
from kubedask_controller import builders, executor, kube_http
from kubedask_controller.expectations import Expectations
from kubedask_controller.retirement import Retirement

NS = "ns"


class GatedKube(FakeKube):
    """Creates wait until released, so a test sees what is held while they are in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.in_flight = 0
        self.free = 1  # creates let through at once (the first batch)

    async def create_pod(self, manifest: dict[str, Any]) -> bool:
        if self.free:
            self.free -= 1
        else:
            self.in_flight += 1
            await self.release.wait()
            self.in_flight -= 1
        return await super().create_pod(manifest)


async def settle() -> None:
    """Lets every ready task run until it waits (no clock involved)."""
    for _ in range(50):
        await asyncio.sleep(0)


async def _no_event(reason: str, message: str, type_: str = "Normal") -> None:
    return None


async def test_worker_manifests_are_built_when_their_create_is_sent_not_all_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    real = builders.build_worker_pod

    def counting(*args: Any, **kwargs: Any) -> dict[str, Any]:
        manifest = real(*args, **kwargs)
        built.append(manifest["metadata"]["name"])
        return manifest

    monkeypatch.setattr(executor.builders, "build_worker_pod", counting)
    kube, clock = GatedKube(), LoopClock()
    expectations = Expectations(clock, timeout=60.0)
    run = executor.Executor(kube, "ns", "analysis", "uid-1", expectations, _no_event, Retirement(120.0, lambda: None),
                            first_batch=1, max_in_flight=4)
    request = parse_request("analysis", request_data(workers=40))
    task = asyncio.create_task(run.create_workers(request, 40))
    await settle()
    assert kube.in_flight == 4
    assert len(built) == 1 + 4, "only the creates in flight have a manifest"
    # Every name is expected before any of them is sent, so a crash mid-way never duplicates a worker.
    assert len(expectations.pending[0]) == 40
    kube.release.set()
    assert await task == 40
    assert len(built) == 40 and len(kube.pods) == 40


async def test_pod_writes_serialise_and_send_no_more_bodies_at_once_than_there_are_connections(
        kmock: KubernetesEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    kmock.resources["v1/pods"] = ResourceInfo(namespaced=True, kind="Pod")
    configuration = kubernetes.client.Configuration(host=str(kmock.url).rstrip("/"))
    writes = kube_http.for_configuration(configuration, "test", connections=3)
    assert writes is not None
    release, sending, most = asyncio.Event(), [0], [0]
    real = kube_http.PodWrites._send_now

    async def gated(self: kube_http.PodWrites, *args: Any) -> None:
        sending[0] += 1
        most[0] = max(most[0], sending[0])
        await release.wait()
        await real(self, *args)
        sending[0] -= 1

    monkeypatch.setattr(kube_http.PodWrites, "_send_now", gated)
    pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"h-worker-{i:05d}", "namespace": NS},
             "spec": {"containers": [{"name": "dask", "image": "dask:local"}]}} for i in range(10)]
    try:
        tasks = [asyncio.create_task(writes.create(p, None)) for p in pods]
        await settle()
        assert sending[0] == 3
        release.set()
        await asyncio.gather(*tasks)
    finally:
        await writes.close()
    assert most[0] == 3
    assert len(list(kmock[f"post /api/v1/namespaces/{NS}/pods"])) == 10

"""The watch-fed view of a request's objects: read once, then kept by watch events, read again only when it
cannot be trusted (resync, a watch re-list, an overdue expectation, a foreign object holding a name)."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest
from controller_fakes import FakeKube, LoopClock, request_data
from kubedask.spec import COMPONENT_LABEL, ClusterRequest, parse_request
from kubedask_controller.expectations import Expectations
from kubedask_controller.observer import RELIST_GRACE, Observer, slim
from kubedask_controller.retirement import Retirement
from kubedask_controller.workload import PodInfo

UID = "uid-1"
pytestmark = pytest.mark.looptime


def pod(name: str, component: str = "worker", rv: int = 1, phase: str = "Running", owner: str = UID,
        **metadata: Any) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns", "uid": f"pod-{name}", "resourceVersion": str(rv),
                     "creationTimestamp": "2026-01-01T00:00:00Z", "ownerReferences": [{"uid": owner}],
                     "labels": {"app.kubernetes.io/managed-by": "kubedask", "dask.org/cluster-name": "analysis",
                                "dask.org/component": component},
                     "annotations": {"kubedask.io/template-hash": "abc", "user.example.com/big": "x" * 1000},
                     "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:status": {}}}], **metadata},
        "spec": {"nodeName": "node-1", "containers": [{"name": "w", "image": "i", "env": [{"name": "A"}]}]},
        "status": {"phase": phase, "podIP": "10.0.0.9", "hostIP": "10.200.0.1",
                   "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "t"}],
                   "containerStatuses": [{"name": "w", "ready": True, "image": "i"}]},
    }


def service(rv: int = 1) -> dict[str, Any]:
    return {"kind": "Service", "metadata": {"name": "analysis-scheduler", "resourceVersion": str(rv),
                                            "ownerReferences": [{"uid": UID}]},
            "spec": {"type": "ClusterIP", "ports": []}}


class Fixture:
    def __init__(self, kube: FakeKube, relisted_at: float = float("-inf")) -> None:
        self.kube, self.relisted_at = kube, relisted_at
        clock = LoopClock()
        self.expectations = Expectations(clock, timeout=60.0)
        self.observer = Observer(kube, "ns", "analysis", UID, self.expectations,
                                 Retirement(120.0, lambda: None), clock, lambda: self.relisted_at, resync=300.0)
        self.request: ClusterRequest = parse_request("analysis", request_data(workers=2))

    async def workers(self) -> list[str]:
        seen = await self.observer.observe(self.request)
        return sorted(w.name for w in seen.observed.workers)


@pytest.fixture
def fx(fake_kube: FakeKube) -> Fixture:
    fake_kube.pods = {"w1": pod("w1"), "w2": pod("w2")}
    fake_kube.services = {"analysis-scheduler": service()}
    return Fixture(fake_kube)


async def test_the_view_is_read_once_then_kept_by_watch_events(fx: Fixture) -> None:
    assert await fx.workers() == ["w1", "w2"]
    assert fx.kube.lists == 1
    fx.observer.pod_event("ADDED", pod("w3", rv=5))
    fx.observer.pod_event("DELETED", pod("w1", rv=6))
    assert await fx.workers() == ["w2", "w3"]
    assert await fx.workers() == ["w2", "w3"]
    assert fx.kube.lists == 1 and fx.observer.reads == 1  # no API call per pass


async def test_the_service_follows_its_events(fx: Fixture) -> None:
    assert (await fx.observer.observe(fx.request)).observed.service
    fx.observer.owned_event("DELETED", service(rv=9))
    assert not (await fx.observer.observe(fx.request)).observed.service
    fx.observer.owned_event("ADDED", {**service(rv=10), "metadata": {**service()["metadata"], "name": "other"}})
    assert not (await fx.observer.observe(fx.request)).observed.service  # not this request's name
    fx.observer.owned_event("ADDED", service(rv=11))
    assert (await fx.observer.observe(fx.request)).observed.service
    assert fx.observer.reads == 1


async def test_an_event_older_than_what_was_read_is_ignored(fx: Fixture) -> None:
    fx.kube.pods["w1"] = pod("w1", rv=20, phase="Running")
    await fx.workers()
    fx.observer.pod_event("MODIFIED", pod("w1", rv=10, phase="Pending"))
    fx.observer.pod_event("DELETED", pod("w2", rv=0))  # a pod of the same name, deleted before the read
    seen = await fx.observer.observe(fx.request)
    assert {w.name: w.phase for w in seen.observed.workers} == {"w1": "Running", "w2": "Running"}


async def test_events_during_a_read_are_applied_on_top_of_it(fx: Fixture) -> None:
    listing = FakeKube.list_pods

    async def slow_list(kube: FakeKube, namespace: str, selector: str, not_older_than: str | None = None
                        ) -> list[dict[str, Any]]:
        listed = await listing(kube, namespace, selector)  # the snapshot is taken here ...
        fx.observer.pod_event("DELETED", pod("w1", rv=30))  # ... and the watch moves on before it returns
        fx.observer.pod_event("ADDED", pod("w4", rv=31))
        fx.observer.pod_event("MODIFIED", pod("w2", rv=0, phase="Pending"))  # older than the snapshot
        await asyncio.sleep(0)
        return listed

    fx.kube.pods["w2"] = pod("w2", rv=25)
    fx.kube.list_pods = slow_list.__get__(fx.kube)  # type: ignore[method-assign]
    seen = await fx.observer.observe(fx.request)
    assert {w.name: w.phase for w in seen.observed.workers} == {"w2": "Running", "w4": "Running"}


async def test_only_the_first_read_may_come_from_the_cache_and_no_older_than_the_pod_watch(
        fx: Fixture) -> None:
    asked: list[str | None] = []
    listing = FakeKube.list_pods

    async def list_pods(kube: FakeKube, namespace: str, selector: str, not_older_than: str | None = None
                        ) -> list[dict[str, Any]]:
        asked.append(not_older_than)
        return await listing(kube, namespace, selector)

    fx.kube.list_pods = list_pods.__get__(fx.kube)  # type: ignore[method-assign]
    watched: list[str | None] = ["41"]
    fx.observer.pod_version = lambda: watched[0]
    await fx.workers()
    fx.relisted_at = asyncio.get_running_loop().time()  # a re-list: the next pass reads, consistently
    await fx.workers()
    assert asked == ["41", None]

    new = Fixture(fx.kube)  # a new request while the pod watch is down (listing again, retrying)
    new.observer.pod_version = lambda: None
    await new.workers()
    assert asked[-1] is None


async def test_resync_and_a_recent_relist_make_passes_read(fx: Fixture) -> None:
    await fx.workers()
    fx.kube.pods["w9"] = pod("w9")  # created while the watch was down: no event
    assert await fx.workers() == ["w1", "w2"]
    fx.relisted_at = asyncio.get_running_loop().time()  # a watch re-listed (or leadership began)
    assert await fx.workers() == ["w1", "w2", "w9"]
    del fx.kube.pods["w9"]  # a re-list reports what exists, not what vanished: the next passes look too
    await asyncio.sleep(RELIST_GRACE / 2)
    assert await fx.workers() == ["w1", "w2"]
    await asyncio.sleep(RELIST_GRACE)
    reads = fx.observer.reads
    await fx.workers()
    assert fx.observer.reads == reads  # the grace is over: the view is trusted again
    fx.kube.pods["w8"] = pod("w8")
    await asyncio.sleep(300)
    assert await fx.workers() == ["w1", "w2", "w8"]  # the resync


async def test_an_overdue_expectation_makes_the_pass_read(fx: Fixture) -> None:
    await fx.workers()
    fx.expectations.created(["w5"])
    fx.kube.pods["w5"] = pod("w5")  # the create landed, but its ADDED event never came
    assert await fx.workers() == ["w1", "w2", "w5"]  # expected, so counted
    reads = fx.observer.reads
    await asyncio.sleep(61)
    assert await fx.workers() == ["w1", "w2", "w5"]  # read, so not created twice
    assert fx.observer.reads == reads + 1


async def test_a_foreign_pod_holding_the_scheduler_name_is_looked_at_every_pass(fx: Fixture) -> None:
    fx.kube.pods["analysis-scheduler"] = pod("analysis-scheduler", component="scheduler", owner="someone-else")
    assert (await fx.observer.observe(fx.request)).taken
    del fx.kube.pods["analysis-scheduler"]  # not the controller's: the watch would never say it went
    assert not (await fx.observer.observe(fx.request)).taken
    assert fx.observer.reads == 2


def test_a_slim_worker_keeps_what_is_read_and_nothing_else() -> None:
    worker, scheduler = pod("w1"), pod("analysis-scheduler", component="scheduler")
    kept = slim(copy.deepcopy(worker))
    assert PodInfo.from_manifest(kept) == PodInfo.from_manifest(worker)
    assert kept["metadata"]["ownerReferences"] == [{k: v for k, v in o.items() if k in ("kind", "name", "uid")}
                                                   for o in worker["metadata"]["ownerReferences"]]
    assert "managedFields" not in kept["metadata"] and "containers" not in kept["spec"]
    assert kept["metadata"]["annotations"] == {"kubedask.io/template-hash": "abc"}
    assert "containerStatuses" not in kept["status"]
    assert slim(scheduler) is scheduler  # the scheduler's drift and host IP are read from the whole pod


def test_a_slim_worker_holds_nothing_of_the_decoded_body_and_shares_repeated_values() -> None:
    first, second = json.loads(json.dumps(pod("w1"))), json.loads(json.dumps(pod("w2")))
    one, two = slim(first), slim(second)
    # Nothing of the event's containers survives in the view (the decoded body can be freed whole).
    assert one["metadata"]["labels"] is not first["metadata"]["labels"]
    assert one["metadata"]["ownerReferences"][0] is not first["metadata"]["ownerReferences"][0]
    # The values every worker repeats are one object, not one per pod.
    assert one["metadata"]["ownerReferences"][0]["uid"] is two["metadata"]["ownerReferences"][0]["uid"]
    assert one["metadata"]["labels"][COMPONENT_LABEL] is two["metadata"]["labels"][COMPONENT_LABEL]

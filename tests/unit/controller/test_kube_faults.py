"""The controller's API wrapper (kubedask_controller.kube.Kube) against kmock's Kubernetes emulator and faults.

kmock serves real HTTP on 127.0.0.1 inside the test's event loop; the wrapper's blocking kubernetes client
runs in its own threads, so it talks to kmock exactly as it talks to an API server. The emulator answers
409 to a second create and 404 to a missing object by itself; other faults are scripted per test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import kubernetes
import pytest
from api_faults import LIST_FAULTS, NS, PODS, api_message, assert_list_fault_surfaces, status
from kmock import KubernetesEmulator, Request, ResourceInfo, headers
from kubedask_controller import metrics
from kubedask_controller.kube import Kube
from kubernetes.client.exceptions import ApiException


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
            "spec": {"containers": [{"name": "dask", "image": "dask:local"}]}}


def counted(name: str) -> float:
    return metrics.REGISTRY.get_sample_value(name) or 0.0


@pytest.fixture
async def kube(kmock: KubernetesEmulator) -> AsyncIterator[Kube]:
    kmock.resources["v1/pods"] = ResourceInfo(namespaced=True, kind="Pod")  # the emulator lists only declared resources
    configuration = kubernetes.client.Configuration(host=str(kmock.url).rstrip("/"))
    api_client = kubernetes.client.ApiClient(configuration)
    wrapper = Kube(api_client, threads=4)
    yield wrapper
    await wrapper.aclose()
    api_client.close()  # type: ignore[no-untyped-call]


async def test_creating_a_pod_that_exists_is_not_an_error_and_not_counted(kube: Kube,
                                                                          kmock: KubernetesEmulator) -> None:
    before = counted("kubedask_pods_created_total")
    assert await kube.create_pod(pod("c-worker-bbbbb")) is True
    assert await kube.create_pod(pod("c-worker-bbbbb")) is False  # the emulator's 409 AlreadyExists
    assert counted("kubedask_pods_created_total") == before + 1
    assert len(kmock[f"post {PODS}"]) == 2


async def test_a_list_not_older_than_a_version_asks_the_cache_and_a_plain_one_asks_etcd(
        kube: Kube, kmock: KubernetesEmulator) -> None:
    await kube.list_pods(NS, "x=y", "41")
    await kube.list_pods(NS, "x=y")
    cached, consistent = list(kmock[f"get {PODS}"])
    assert (cached.params["resourceVersion"], cached.params["resourceVersionMatch"]) == ("41", "NotOlderThan")
    assert "resourceVersion" not in consistent.params and "resourceVersionMatch" not in consistent.params


async def test_deleting_a_pod_that_is_gone_counts_as_done(kube: Kube) -> None:
    await kube.create_pod(pod("c-worker-ccccc"))
    before = counted("kubedask_pods_deleted_total")
    assert await kube.delete_pod(NS, "c-worker-ccccc") is True
    assert await kube.delete_pod(NS, "c-worker-ccccc") is False  # the emulator's 404 NotFound
    assert counted("kubedask_pods_deleted_total") == before + 1


async def test_missing_objects_read_as_none(kube: Kube) -> None:
    assert await kube.get_service(NS, "c-scheduler") is None
    assert await kube.get_pdb(NS, "c-scheduler") is None
    assert await kube.get_lease(NS, "kubedask-controller") is None


async def test_a_request_deleted_meanwhile_is_no_error_to_patch_or_delete(kube: Kube) -> None:
    await kube.patch_configmap(NS, "gone", {"metadata": {"labels": {"phase": "Running"}}})
    await kube.delete_configmap(NS, "gone")


async def test_service_and_pdb_that_exist_are_not_an_error(kube: Kube, kmock: KubernetesEmulator) -> None:
    kmock[f"post /api/v1/namespaces/{NS}/services"] << 409 << status(409, "AlreadyExists", "exists")
    kmock[f"post /apis/policy/v1/namespaces/{NS}/poddisruptionbudgets"] << 409 << status(
        409, "AlreadyExists", "exists")
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "c-scheduler", "namespace": NS},
               "spec": {"ports": [{"port": 8786}]}}
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
           "metadata": {"name": "c-scheduler", "namespace": NS}, "spec": {"minAvailable": 1}}
    assert await kube.create_service(service) is False
    assert await kube.create_pdb(pdb) is False


async def test_a_lease_conflict_reaches_the_elector(kube: Kube, kmock: KubernetesEmulator) -> None:
    message = 'Operation cannot be fulfilled on leases "kubedask": the object has been modified'
    kmock[f"put /apis/coordination.k8s.io/v1/namespaces/{NS}/leases/kubedask"] << 409 << status(
        409, "Conflict", message)
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "kubedask", "namespace": NS, "resourceVersion": "7"}, "spec": {}}
    with pytest.raises(ApiException) as info:
        await kube.replace_lease(NS, "kubedask", lease)
    assert info.value.status == 409 and api_message(info.value) == message


@pytest.mark.parametrize(("code", "reason", "message"), LIST_FAULTS)
async def test_list_faults_surface_with_the_apis_message(kube: Kube, kmock: KubernetesEmulator,
                                                         code: int, reason: str, message: str) -> None:
    await assert_list_fault_surfaces(
        kmock, lambda: kube.list_pods(NS, "app.kubernetes.io/managed-by=kubedask"), code, reason, message)


async def test_a_429_with_retry_after_is_retried_on_reads_only(kube: Kube, kmock: KubernetesEmulator) -> None:
    """urllib3's default retry (the kubernetes client sets none of its own) honours Retry-After, as API
    Priority and Fairness sends it, for GETs; a create is never repeated behind the controller's back."""
    throttled = status(429, "TooManyRequests", "slow down")
    kmock[f"get {PODS}"][:1] << 429 << headers({"Retry-After": "0"}) << throttled
    assert await kube.list_pods(NS, "x=y") == []
    assert len(kmock[f"get {PODS}"]) == 2
    kmock[f"post {PODS}"] << 429 << headers({"Retry-After": "0"}) << throttled
    with pytest.raises(ApiException) as info:
        await kube.create_pod(pod("c-worker-hhhhh"))
    assert info.value.status == 429 and len(kmock[f"post {PODS}"]) == 1


@pytest.mark.parametrize(("code", "reason", "message"), [
    (429, "TooManyRequests", "the server has received too many requests and has asked us to try again later"),
    (500, "InternalError", "Internal error occurred: failed calling webhook"),
    (403, "Forbidden", 'pods "c-worker-ddddd" is forbidden: exceeded quota: compute, requested: pods=1'),
])
async def test_create_faults_surface_with_the_apis_message(kube: Kube, kmock: KubernetesEmulator,
                                                           code: int, reason: str, message: str) -> None:
    kmock[f"post {PODS}"] << code << status(code, reason, message)
    with pytest.raises(ApiException) as info:
        await kube.create_pod(pod("c-worker-ddddd"))
    assert info.value.status == code and api_message(info.value) == message


async def test_a_failing_delete_is_not_taken_for_done(kube: Kube, kmock: KubernetesEmulator) -> None:
    await kube.create_pod(pod("c-worker-fffff"))  # else the emulator answers 404 before the script
    kmock[f"delete {PODS}/c-worker-fffff"] << 500 << status(500, "InternalError", "etcd leader changed")
    with pytest.raises(ApiException, match="etcd leader changed"):
        await kube.delete_pod(NS, "c-worker-fffff")


@pytest.mark.parametrize("code", [403, 429, 500])
async def test_events_are_best_effort(kube: Kube, kmock: KubernetesEmulator, code: int) -> None:
    kmock[f"post /api/v1/namespaces/{NS}/events"] << code << status(code, "Refused", "no events today")
    request = {"metadata": {"name": "c", "namespace": NS, "uid": "u-1"}}
    await kube.post_event(request, "ScaledUp", "created 2 worker pods")
    assert len(kmock[f"post /api/v1/namespaces/{NS}/events"]) == 1


async def test_a_slow_answer_holds_up_only_its_own_call(kube: Kube, kmock: KubernetesEmulator) -> None:
    gate = asyncio.Event()

    async def slow(_: Request) -> dict[str, Any]:
        await gate.wait()
        return pod("c-worker-ggggg")

    kmock[f"post {PODS}"] << 201 << slow
    create = asyncio.create_task(kube.create_pod(pod("c-worker-ggggg")))
    try:
        listed = await asyncio.wait_for(kube.list_pods(NS, "x=y"), 10)  # answered while the create waits
        assert isinstance(listed, list) and not create.done()
    finally:
        gate.set()
    assert await asyncio.wait_for(create, 10) is True


async def test_deletes_carry_uid_and_resource_version_preconditions(kube: Kube, kmock: KubernetesEmulator) -> None:
    await kube.create_pod(pod("c-worker-jjjjj"))
    await kube.delete_pod(NS, "c-worker-jjjjj", "pod-uid-1")
    [sent] = list(kmock[f"delete {PODS}/c-worker-jjjjj"])
    assert sent.data["preconditions"] == {"uid": "pod-uid-1"}
    configmaps = f"/api/v1/namespaces/{NS}/configmaps/analysis"
    await kube.delete_configmap(NS, "analysis", "cm-uid", "42")  # the emulator has none: 404, read as gone
    [sent] = list(kmock[f"delete {configmaps}"])
    assert sent.data["preconditions"] == {"uid": "cm-uid", "resourceVersion": "42"}


async def test_a_failed_delete_precondition_reads_as_already_gone(kube: Kube, kmock: KubernetesEmulator) -> None:
    message = "Precondition failed: UID in precondition: cm-uid, UID in object meta: other"
    kmock[f"delete /api/v1/namespaces/{NS}/configmaps/analysis"] << 409 << status(409, "Conflict", message)
    assert await kube.delete_configmap(NS, "analysis", "cm-uid") is False


class _Paused(Exception):
    """What the test's write guard raises: the replica no longer holds the lease."""


async def test_the_write_guard_runs_in_the_sending_thread_and_stops_writes_but_not_reads(
        kube: Kube, kmock: KubernetesEmulator) -> None:
    leading = [True]

    def guard() -> None:
        if not leading[0]:
            raise _Paused("lost the lease")

    kube.write_guard = guard
    assert await kube.create_pod(pod("g-worker-aaaaa")) is True
    leading[0] = False  # e.g. woken from SIGSTOP past the lease, with this write already queued
    with pytest.raises(_Paused):
        await kube.create_pod(pod("g-worker-bbbbb"))
    with pytest.raises(_Paused):
        await kube.delete_pod(NS, "g-worker-aaaaa")
    assert len(kmock[f"post {PODS}"]) == 1  # the stopped create never reached the API server
    assert [p["metadata"]["name"] for p in await kube.list_pods(NS, "")] == ["g-worker-aaaaa"]  # reads pass

"""The client's API wrapper (kubedask.kube.KubeApi) against kmock's Kubernetes emulator and faults.

kmock serves real HTTP on 127.0.0.1 inside the test's event loop; KubeApi runs the blocking kubernetes
client in threads, so it talks to kmock exactly as it talks to an API server. The emulator answers 409 to
a second create and 404 to a missing object by itself; other faults are scripted per test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from api_faults import LIST_FAULTS, NS, PODS, api_message, assert_list_fault_surfaces, status
from kmock import KubernetesEmulator, Request, ResourceInfo
from kubedask.kube import MERGE_PATCH, KubeApi
from kubernetes import client
from kubernetes.client.exceptions import ApiException

CONFIGMAPS = f"/api/v1/namespaces/{NS}/configmaps"


def request_configmap(name: str = "c") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NS, "labels": {"k8s.dask.org/cluster": "true"}},
            "data": {"workers": "2"}}


@pytest.fixture
async def api(kmock: KubernetesEmulator) -> AsyncIterator[KubeApi]:
    kmock.resources["v1/pods"] = ResourceInfo(namespaced=True, kind="Pod")  # listed only when declared
    kube = KubeApi(client.Configuration(host=str(kmock.url).rstrip("/")), NS)
    yield kube
    kube.close()


async def test_creating_a_request_that_exists_surfaces_the_conflict(api: KubeApi) -> None:
    created = await api.create_configmap(request_configmap())
    assert created["metadata"]["name"] == "c" and created["data"] == {"workers": "2"}
    with pytest.raises(ApiException) as info:
        await api.create_configmap(request_configmap())
    assert info.value.status == 409  # KubeCluster decides: adopt or refuse, never overwrite silently


async def test_a_missing_request_reads_as_none_and_deleting_it_twice_is_done(api: KubeApi) -> None:
    assert await api.read_configmap("c") is None
    await api.create_configmap(request_configmap())
    assert await api.delete_configmap("c") is True
    assert await api.delete_configmap("c") is False


async def test_the_blocking_delete_for_interpreter_exit_treats_404_as_done(api: KubeApi) -> None:
    # Blocking by design: run it in a thread so the in-loop kmock can answer.
    assert await asyncio.to_thread(api.delete_configmap_blocking, "never-created") is False


async def test_patches_are_merge_patches_and_a_missing_request_surfaces(api: KubeApi,
                                                                        kmock: KubernetesEmulator) -> None:
    await api.create_configmap(request_configmap())
    await api.patch_configmap("c", {"data": {"adapt": None}})
    [sent] = list(kmock[f"patch {CONFIGMAPS}/c"])
    assert sent.headers["Content-Type"] == MERGE_PATCH and sent.data == {"data": {"adapt": None}}
    with pytest.raises(ApiException) as info:
        await api.patch_configmap("gone", {"data": {"workers": "3"}})  # the emulator's 404
    assert info.value.status == 404


@pytest.mark.parametrize("code", [403, 404])
async def test_a_pod_the_user_may_not_or_cannot_read_is_none(api: KubeApi, kmock: KubernetesEmulator,
                                                             code: int) -> None:
    kmock[f"get {PODS}/c-scheduler"] << code << status(code, "Refused", "no")
    assert await api.read_pod("c-scheduler") is None


async def test_other_pod_read_faults_surface_with_the_apis_message(api: KubeApi,
                                                                   kmock: KubernetesEmulator) -> None:
    kmock[f"get {PODS}/c-scheduler"] << 500 << status(500, "InternalError", "etcdserver: request timed out")
    with pytest.raises(ApiException) as info:
        await api.read_pod("c-scheduler")
    assert info.value.status == 500 and api_message(info.value) == "etcdserver: request timed out"


@pytest.mark.parametrize("code", [400, 404])
async def test_a_log_not_there_yet_is_empty(api: KubeApi, kmock: KubernetesEmulator, code: int) -> None:
    message = 'container "dask" in pod "c-scheduler" is waiting to start: ContainerCreating'
    kmock[f"get {PODS}/c-scheduler/log"] << code << status(code, "BadRequest", message)
    assert await api.pod_log("c-scheduler") == ""


async def test_events_the_user_may_not_list_are_empty(api: KubeApi, kmock: KubernetesEmulator) -> None:
    kmock[f"get /api/v1/namespaces/{NS}/events"] << 403 << status(403, "Forbidden", "events is forbidden")
    assert await api.events_for("ConfigMap", "c") == []
    [asked] = list(kmock[f"get /api/v1/namespaces/{NS}/events"])
    assert asked.params == {
        "fieldSelector": "involvedObject.kind=ConfigMap,involvedObject.name=c"}


async def test_unreadable_apiserver_endpoints_are_only_a_missing_hint(api: KubeApi,
                                                                     kmock: KubernetesEmulator) -> None:
    kmock["get /api/v1/namespaces/default/endpoints/kubernetes"] << 403 << status(403, "Forbidden", "no")
    assert await api.apiserver_endpoints() == []


@pytest.mark.parametrize(("code", "reason", "message"), LIST_FAULTS)
async def test_list_faults_surface_with_the_apis_message(api: KubeApi, kmock: KubernetesEmulator,
                                                         code: int, reason: str, message: str) -> None:
    await assert_list_fault_surfaces(kmock, lambda: api.list_pods("k8s.dask.org/cluster-name=c"),
                                     code, reason, message)


async def test_a_slow_answer_holds_up_only_its_own_call(api: KubeApi, kmock: KubernetesEmulator) -> None:
    gate = asyncio.Event()

    async def slow(_: Request) -> dict[str, Any]:
        await gate.wait()
        return request_configmap()

    kmock[f"get {CONFIGMAPS}/c"] << slow
    read = asyncio.create_task(api.read_configmap("c"))
    try:
        listed = await asyncio.wait_for(api.list_pods("x=y"), 10)  # answered while the read waits
        assert listed == [] and not read.done()
    finally:
        gate.set()
    found = await asyncio.wait_for(read, 10)
    assert found is not None and found["data"] == {"workers": "2"}

"""The pod hot path (kubedask_controller.kube_http) against kmock: what it sends, and when it steps aside.

Its faults and the write guard are covered with the rest of the wrapper in test_kube_faults.py (a plain-HTTP
configuration takes this path there too); here: the token, the body, and the configurations it leaves to the
official client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import kubernetes
import pytest
from api_faults import NS, PODS
from kmock import KubernetesEmulator, ResourceInfo
from kubedask_controller import kube_http
from kubedask_controller.kube import USER_AGENT, Kube


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
            "spec": {"containers": [{"name": "dask", "image": "dask:local"}]}}


@pytest.fixture
def configuration(kmock: KubernetesEmulator) -> kubernetes.client.Configuration:
    kmock.resources["v1/pods"] = ResourceInfo(namespaced=True, kind="Pod")
    return kubernetes.client.Configuration(host=str(kmock.url).rstrip("/"), api_key={"authorization": "token-1"},
                                           api_key_prefix={"authorization": "Bearer"})


@pytest.fixture
async def kube(configuration: kubernetes.client.Configuration) -> AsyncIterator[Kube]:
    wrapper = Kube(kubernetes.client.ApiClient(configuration), threads=4)
    yield wrapper
    await wrapper.aclose()


async def test_a_create_sends_the_manifest_with_the_token_and_the_controllers_user_agent(
        kube: Kube, kmock: KubernetesEmulator) -> None:
    assert await kube.create_pod(pod("h-worker-aaaaa")) is True
    [sent] = list(kmock[f"post {PODS}"])
    assert sent.data == pod("h-worker-aaaaa")
    assert sent.headers["Authorization"] == "Bearer token-1"
    assert sent.headers["User-Agent"] == USER_AGENT


async def test_the_in_cluster_loaders_token_key_is_sent_too(kmock: KubernetesEmulator,
                                                             configuration: kubernetes.client.Configuration) -> None:
    """load_incluster_config stores the service-account token under "BearerToken", prefix included."""
    configuration.api_key = {"BearerToken": "bearer sa-token"}
    configuration.api_key_prefix = {}
    wrapper = Kube(kubernetes.client.ApiClient(configuration), threads=4)
    try:
        await wrapper.create_pod(pod("h-worker-ddddd"))
    finally:
        await wrapper.aclose()
    [sent] = list(kmock[f"post {PODS}"])
    assert sent.headers["Authorization"] == "bearer sa-token"


async def test_a_refreshed_token_is_used_from_the_next_call_on(
        kube: Kube, kmock: KubernetesEmulator, configuration: kubernetes.client.Configuration) -> None:
    """The in-cluster configuration re-reads a rotated service-account token in its refresh hook."""
    def rotate(config: kubernetes.client.Configuration) -> None:
        config.api_key["authorization"] = "token-2"

    await kube.create_pod(pod("h-worker-bbbbb"))
    configuration.refresh_api_key_hook = rotate
    await kube.delete_pod(NS, "h-worker-bbbbb", "uid-b")
    [sent] = list(kmock[f"delete {PODS}/h-worker-bbbbb"])
    assert sent.headers["Authorization"] == "Bearer token-2"
    assert sent.data["preconditions"] == {"uid": "uid-b"}


@pytest.mark.parametrize("setting", [{"proxy": "http://proxy:3128"}, {"tls_server_name": "kubernetes"},
                                     {"host": "unix:///var/run/api.sock"}])
def test_what_the_fast_path_cannot_do_is_left_to_the_official_client(setting: dict[str, str]) -> None:
    configuration = kubernetes.client.Configuration(host="https://10.96.0.1:443")
    for key, value in setting.items():
        setattr(configuration, key, value)
    assert kube_http.for_configuration(configuration, USER_AGENT, 4) is None
    assert kube_http.for_configuration(kubernetes.client.Configuration(host="https://10.96.0.1:443"),
                                       USER_AGENT, 4) is not None


async def test_without_the_fast_path_pods_go_through_the_official_client(
        configuration: kubernetes.client.Configuration, kmock: KubernetesEmulator) -> None:
    configuration.proxy = None
    wrapper = Kube(kubernetes.client.ApiClient(configuration), threads=4)
    wrapper._pods = None  # as for_configuration leaves it for a proxy
    try:
        assert await wrapper.create_pod(pod("h-worker-ccccc")) is True
        assert await wrapper.create_pod(pod("h-worker-ccccc")) is False
        assert await wrapper.delete_pod(NS, "h-worker-ccccc") is True
        [sent, _] = list(kmock[f"post {PODS}"])
        assert sent.headers["User-Agent"] == USER_AGENT
    finally:
        await wrapper.aclose()

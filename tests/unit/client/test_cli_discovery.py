"""dask-ctl discovery through its documented interface: ``discover()`` yields ``(name, cls)`` and dask-ctl
then calls ``cls.from_name(name)``, ``.scale(n)`` and ``.close()`` (its ``delete``)."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cli_fake import MemoryKube, running
from kubedask import discovery
from kubedask.auth import ClusterAuth, LoadedAuth
from kubedask.cluster import KubeCluster
from kubedask.discovery import DiscoveredKubeCluster, discover, split_name
from kubernetes.client import Configuration
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def kube(monkeypatch: pytest.MonkeyPatch) -> MemoryKube:
    kube = MemoryKube()
    kube.add_request("team-b", "gpu", status=running(1, 1))
    kube.add_request("team-a", "etl", status=running(1, 1))
    kube.add_request("team-a", "analysis", status=running(1, 1))
    loaded = LoadedAuth(Configuration(), "team-a", ClusterAuth())
    monkeypatch.setattr(ClusterAuth, "load_first", staticmethod(lambda auth=None: loaded))
    return kube


async def names(kube: MemoryKube) -> list[tuple[str, type[KubeCluster]]]:
    return [found async for found in discover(lambda auth: kube)]


async def test_discover_yields_every_visible_cluster_as_namespace_slash_name(kube: MemoryKube) -> None:
    assert await names(kube) == [("team-a/analysis", DiscoveredKubeCluster), ("team-a/etl", DiscoveredKubeCluster),
                                 ("team-b/gpu", DiscoveredKubeCluster)]
    assert kube.listed == [None] and kube.closed


async def test_without_cluster_wide_rights_discovery_lists_the_users_namespace(kube: MemoryKube) -> None:
    kube.failures[None] = [ApiException(status=403, reason="Forbidden")]
    assert [name for name, _ in await names(kube)] == ["team-a/analysis", "team-a/etl"]
    assert kube.listed == [None, "team-a"]


async def test_other_api_failures_reach_dask_ctl(kube: MemoryKube) -> None:
    kube.failures[None] = [ApiException(status=500, reason="Internal Server Error")]
    with pytest.raises(ApiException):
        await names(kube)
    assert kube.closed


async def test_no_kubernetes_configuration_means_nothing_to_discover(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(auth: Any = None) -> LoadedAuth:
        raise ConfigException("no kubeconfig")

    monkeypatch.setattr(ClusterAuth, "load_first", staticmethod(fail))
    assert [found async for found in discover(lambda auth: pytest.fail("no API without a configuration"))] == []


def test_split_name_keeps_a_bare_name_in_the_default_namespace() -> None:
    assert split_name("team-a/analysis") == ("team-a", "analysis")
    assert split_name("analysis") == (None, "analysis")


def test_from_name_attaches_in_the_named_namespace_and_close_deletes(monkeypatch: pytest.MonkeyPatch) -> None:
    attached: list[dict[str, Any]] = []
    closed: list[bool] = []

    def fake_init(self: KubeCluster, **kwargs: Any) -> None:  # stands in for attaching to a live cluster
        attached.append(kwargs)
        self._cluster_info = {"name": kwargs["name"]}
        self.shutdown_on_close = kwargs["shutdown_on_close"]
        self._session = type("S", (), {"namespace": kwargs["namespace"] or "default"})()

    monkeypatch.setattr(KubeCluster, "__init__", fake_init)
    monkeypatch.setattr(KubeCluster, "close", lambda self, timeout=None: closed.append(self.shutdown_on_close))
    cluster = DiscoveredKubeCluster.from_name("team-b/gpu")
    assert attached == [{"name": "gpu", "namespace": "team-b", "_attach": True, "shutdown_on_close": False}]
    assert cluster.name == "team-b/gpu"  # what `dask cluster list` shows is what `dask cluster scale` takes
    assert not cluster.shutdown_on_close  # merely listing a cluster never deletes it at exit
    cluster.close()
    assert closed == [True]
    assert DiscoveredKubeCluster.from_name("gpu").name == "default/gpu"


def test_the_package_registers_the_plugin_and_the_discovery_entry_point() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    targets = {**project["scripts"], **project["entry-points"]["dask_cluster_discovery"]}
    assert set(targets) == {"kubectl-dask", "kubedask"}
    resolved = {}
    for name, target in targets.items():
        module, _, attribute = target.partition(":")
        resolved[name] = getattr(importlib.import_module(module), attribute)
    assert resolved["kubedask"] is discovery.discover
    assert callable(resolved["kubectl-dask"])

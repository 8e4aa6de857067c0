"""``kubectl dask`` on the local control plane with simulated nodes: kubectl finds the plugin on PATH,
``get -A`` counts workers in two namespaces, a user holding only the kubedask user role sees their
namespace with ``-n`` and gets one line naming the missing right from ``-A``, and ``scale``,
``describe`` and an unknown name behave as kubectl users expect. Discovery for dask-ctl lists what each
identity may see.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from controller_harness import REPO, Cluster, ControllerProcess, kubedask_user, wait_for

PYTHONPATH = os.pathsep.join(str(REPO / p) for p in ("client", "controller", "."))


@pytest.fixture
def second_namespace(namespace: str, kubectl: Callable[..., str]) -> Iterator[str]:
    name = f"{namespace[:50]}-b"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


def ready(cluster: Cluster, name: str, count: int) -> bool:
    status = cluster.status(name)
    return status is not None and status.phase == "Running" and status.workers.ready == status.workers.requested \
        == count


def wait_until_ready(cluster: Cluster, name: str, count: int, timeout: float = 90) -> None:
    wait_for(f"{name} to run {count} ready workers", lambda: ready(cluster, name, count), timeout=timeout)


@pytest.fixture
def clusters(api: Any, kubeconfig: str, namespace: str, second_namespace: str, tmp_path: Path
             ) -> Iterator[tuple[Cluster, Cluster, ControllerProcess]]:
    """alpha (2 workers) and beta (1) in the first namespace, gamma (3) in the second, all Running."""
    controller = ControllerProcess(kubeconfig, [namespace, second_namespace], tmp_path).start()
    first, second = Cluster(api, namespace), Cluster(api, second_namespace)
    first.create_request("alpha", workers=2)
    first.create_request("beta", workers=1)
    second.create_request("gamma", workers=3)
    try:
        for cluster, name, count in ((first, "alpha", 2), (first, "beta", 1), (second, "gamma", 3)):
            wait_until_ready(cluster, name, count)
        yield first, second, controller
    finally:
        controller.stop()


@pytest.fixture
def plugin_path(tmp_path: Path) -> str:
    """A PATH with ``kubectl-dask`` on it, as ``pip install kubedask`` puts the console script there."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "kubectl-dask"
    script.write_text(f"#!/bin/sh\nPYTHONPATH={PYTHONPATH} exec {sys.executable} -m kubedask.cli \"$@\"\n")
    script.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


@pytest.fixture
def user(namespace: str, kubectl: Callable[..., str], user_kubeconfig: Callable[[str, str], str]) -> str:
    return kubedask_user(kubectl, user_kubeconfig, namespace)  # alice, in the first namespace


def plugin(kubeconfig: str, *args: str, path: str | None = None, kubectl_binary: str | None = None
           ) -> subprocess.CompletedProcess[str]:
    """``kubectl dask ARGS`` through kubectl's plugin lookup when ``kubectl_binary`` is given, else the
    plugin itself; --kubeconfig goes after the plugin name, where kubectl passes flags on verbatim."""
    env = {**os.environ, "PYTHONPATH": PYTHONPATH, "PATH": path or os.environ["PATH"], "NO_COLOR": "1"}
    prefix = [kubectl_binary, "dask"] if kubectl_binary else [sys.executable, "-m", "kubedask.cli"]
    return subprocess.run([*prefix, *args, "--kubeconfig", kubeconfig], capture_output=True, text=True, env=env,
                          timeout=120, cwd=REPO)


def rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()[1:]]


def test_get_all_namespaces_through_kubectl_lists_both_namespaces_with_counts(
        clusters: Any, kubeconfig: str, namespace: str, second_namespace: str, plugin_path: str,
        kubectl_binary: str) -> None:
    result = plugin(kubeconfig, "get", "-A", path=plugin_path, kubectl_binary=kubectl_binary)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split() == ["NAMESPACE", "NAME", "PHASE", "WORKERS", "SCHEDULER",
                                                     "DASHBOARD", "AGE"]
    ours = [r[:4] for r in rows(result.stdout) if r[0] in (namespace, second_namespace)]
    assert ours == [[namespace, "alpha", "Running", "2/2"], [namespace, "beta", "Running", "1/1"],
                    [second_namespace, "gamma", "Running", "3/3"]]
    gamma = next(r for r in rows(result.stdout) if r[1] == "gamma")
    assert gamma[4] == f"tcp://gamma-scheduler.{second_namespace}.svc.cluster.local:8786"


def test_user_role_sees_its_namespace_and_gets_one_line_from_all_namespaces(
        clusters: Any, user: str, namespace: str) -> None:
    own = plugin(user, "get", "-n", namespace)
    assert own.returncode == 0, own.stderr
    assert [r[:3] for r in rows(own.stdout)] == [["alpha", "Running", "2/2"], ["beta", "Running", "1/1"]]
    everything = plugin(user, "get", "-A")
    assert everything.returncode == 1 and everything.stdout == ""
    assert everything.stderr.count("\n") == 1, everything.stderr
    assert everything.stderr.startswith("error: cannot list configmaps at the cluster scope: ")
    assert f"system:serviceaccount:{namespace}:alice" in everything.stderr
    assert "-n NAMESPACE" in everything.stderr


def test_user_scales_and_describes_and_an_unknown_name_is_one_line(
        clusters: tuple[Cluster, Cluster, ControllerProcess], user: str, namespace: str) -> None:
    first = clusters[0]
    scaled = plugin(user, "scale", "alpha", "4", "-n", namespace)
    assert scaled.returncode == 0, scaled.stderr
    assert scaled.stdout == f"daskcluster {namespace}/alpha scaled to 4 workers\n"
    first.wait_workers("alpha", 4, timeout=90)
    wait_until_ready(first, "alpha", 4, timeout=60)
    got = plugin(user, "get", "alpha", "-n", namespace)
    assert rows(got.stdout)[0][:3] == ["alpha", "Running", "4/4"]

    described = plugin(user, "describe", "alpha", "-n", namespace)
    assert described.returncode == 0, described.stderr
    out = described.stdout
    assert "Workers:      4 ready / 4 requested" in out
    conditions, rest = out.split("Conditions:")[1].split("Pods:")
    pods, events = rest.split("Events:")
    assert "SchedulerReady" in conditions
    assert "alpha-scheduler" in pods and pods.count("alpha-worker-") == 4 and "beta" not in pods
    assert "<none>" not in events.splitlines()[1]  # the controller's events on the request are shown

    for args in (["get", "nope"], ["describe", "nope"], ["scale", "nope", "1"], ["logs", "nope"]):
        result = plugin(user, *args, "-n", namespace)
        assert result.returncode == 1 and result.stdout == "", args
        assert result.stderr == (f"error: no kubedask cluster named 'nope' in namespace '{namespace}'; "
                                 f"`kubectl dask get -n {namespace}` lists the clusters there\n"), args


def test_discovery_lists_what_each_identity_may_see(
        clusters: Any, user: str, kubeconfig: str, namespace: str, second_namespace: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from kubedask.discovery import DiscoveredKubeCluster, discover

    async def names() -> list[str]:
        found = []
        async for name, cls in discover():
            assert cls is DiscoveredKubeCluster
            found.append(name)
        return found

    monkeypatch.setenv("KUBECONFIG", kubeconfig)
    admin = asyncio.run(names())
    assert {f"{namespace}/alpha", f"{namespace}/beta", f"{second_namespace}/gamma"} <= set(admin)
    monkeypatch.setenv("KUBECONFIG", user)
    assert asyncio.run(names()) == [f"{namespace}/alpha", f"{namespace}/beta"]

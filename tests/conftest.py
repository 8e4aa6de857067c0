"""Fixtures shared by every test that needs Kubernetes: the local cluster and a fresh namespace per test.

Tests under tests/unit need no cluster. Everything else talks to a REAL API server: the local cluster
from devcluster/ (started once per session if it isn't running), or, with ``--existing-cluster``, the
cluster that ``$KUBECONFIG`` points at.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

CLUSTER_DIRS = ("integration", "e2e", "devcluster", "install")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--existing-cluster",
        action="store_true",
        help="use the cluster $KUBECONFIG points at instead of the local devcluster",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        if any(d in parts for d in CLUSTER_DIRS):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def devcluster_instance(request: pytest.FixtureRequest) -> Iterator[object | None]:
    """The local cluster (devcluster.cluster.Cluster), started if needed; None with --existing-cluster."""
    if request.config.getoption("--existing-cluster"):
        yield None
        return
    from devcluster import lifecycle
    from devcluster.cluster import Cluster

    name = os.environ.get("KUBEDASK_CLUSTER", lifecycle.DEFAULT_NAME)
    existing = Cluster.load(name)
    if existing is not None:
        health = lifecycle.status(name)
        if not lifecycle.healthy(health):
            # Never tear down an instance this session didn't start: another session may be using it.
            pytest.fail(
                f"the local cluster {name!r} exists but is unhealthy ({health}); restart it with "
                f"`python -m devcluster --name {name} down && python -m devcluster --name {name} up`"
            )
        yield existing
        return
    real_node = os.environ.get("KUBEDASK_REAL_NODE", "1") != "0"
    # Left running on purpose: other test sessions may share it, and the next run starts instantly.
    # scripts/test.sh stops it; by hand: python -m devcluster down.
    yield lifecycle.up(name, nodes=3, real_node=real_node)


@pytest.fixture(scope="session")
def kubeconfig(devcluster_instance: object | None) -> str:
    """Path of an admin kubeconfig; also exported as $KUBECONFIG for subprocesses (kubectl, controller)."""
    if devcluster_instance is None:
        path = os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config"))
    else:
        path = str(devcluster_instance.kubeconfig)  # type: ignore[attr-defined]
    os.environ["KUBECONFIG"] = path
    return path


@pytest.fixture(scope="session")
def api(kubeconfig: str) -> Iterator[object]:
    """A kubernetes.client.ApiClient acting as the cluster admin."""
    from kubernetes import config

    client = config.new_client_from_config(config_file=kubeconfig)
    yield client
    client.close()


@pytest.fixture(scope="session")
def kubectl_binary(devcluster_instance: object | None) -> str:
    if devcluster_instance is None:
        return "kubectl"
    from devcluster import build

    return str(build.binary("kubectl"))


@pytest.fixture(scope="session")
def kubectl(kubeconfig: str, kubectl_binary: str) -> Callable[..., str]:
    """Run kubectl as admin: ``kubectl("get", "pods", "-n", ns)`` returns stdout, raises on failure."""

    def run(*args: str, input: str | None = None, check: bool = True, kubeconfig_path: str | None = None) -> str:
        proc = subprocess.run(
            [kubectl_binary, "--kubeconfig", kubeconfig_path or kubeconfig, *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout if check else proc.stdout + proc.stderr

    return run


def fresh_namespace(request: pytest.FixtureRequest, kubectl: Callable[..., str]) -> Iterator[str]:
    """Generator body for fixtures: a new namespace named after the test (or module), deleted (without
    waiting) afterwards."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:5]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture
def namespace(request: pytest.FixtureRequest, kubectl: Callable[..., str]) -> Iterator[str]:
    """A fresh namespace named after the test, deleted (without waiting) afterwards."""
    yield from fresh_namespace(request, kubectl)


@pytest.fixture(scope="module")
def module_namespace(request: pytest.FixtureRequest, kubectl: Callable[..., str]) -> Iterator[str]:
    """One namespace for a whole module, for tests that share a controller (and its start-up) but each
    work on requests of their own names, so that they never see each other's objects."""
    yield from fresh_namespace(request, kubectl)


@pytest.fixture(scope="session")
def real_node(kubectl: Callable[..., str]) -> str:
    """The name of the cluster's Ready real node (fails clearly if there is none)."""
    out = kubectl(
        "get", "nodes", "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.metadata.annotations.kwok\\.x-k8s\\.io/node} "
        "{.status.conditions[?(@.type=='Ready')].status}{'\\n'}{end}",
    )
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1] == "True":  # no kwok annotation: a real kubelet
            return fields[0]
    raise AssertionError(f"the cluster has no Ready real node; nodes:\n{out}")


@pytest.fixture(scope="session")
def user_kubeconfig(devcluster_instance: object | None) -> Callable[[str, str], str]:
    """Mint a kubeconfig acting as ServiceAccount ``name`` in ``namespace`` (TokenRequest)."""
    from devcluster import accounts

    def mint(namespace: str, name: str) -> str:
        if devcluster_instance is None:
            pytest.fail("user_kubeconfig needs the local devcluster")
        return str(accounts.service_account_kubeconfig(devcluster_instance, namespace, name))  # type: ignore[arg-type]

    return mint

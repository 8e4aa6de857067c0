"""The admin's journey with plain manifests, on the local cluster's real node: `kubectl apply -f
manifests/` (and `manifests/all-namespaces/`), a Dask cluster computes, `kubectl delete -f` removes
everything.

The files are applied unchanged except for their namespace and the names of cluster-scoped objects
(what kustomize's `namespace:` and `nameSuffix:` do), so a test never collides with a real install.
The image is the published tag the manifests name: the local build is imported under it too.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dask.array as da
import dask.config
import pytest
from dask.distributed import Client
from installkit import (
    MANIFESTS,
    MANIFESTS_ALL_NAMESPACES,
    PATIENT_CLIENT_CONFIG,
    Doc,
    load_dir,
    relocate,
    small_worker_spec,
    to_yaml,
)
from kubedask import KubeCluster

pytestmark = pytest.mark.realnode


class Applied:
    def __init__(self, kubectl: Callable[..., str], directory: Path) -> None:
        self.kubectl = kubectl
        self.namespace = f"kd-manifests-{uuid.uuid4().hex[:5]}"
        self.docs: list[Doc] = relocate(load_dir(directory), self.namespace, suffix=f"-{self.namespace}")
        kubectl("apply", "-f", "-", input=to_yaml(self.docs))

    def delete(self) -> None:
        self.kubectl(
            "delete",
            "--ignore-not-found",
            "--wait=true",
            "--timeout=180s",
            "-f",
            "-",
            input=to_yaml(self.docs),
            check=False,
        )

    def remaining(self) -> list[str]:
        """Which of the applied objects still exist."""
        left = []
        for doc in self.docs:
            args = ["get", doc["kind"], doc["metadata"]["name"], "--ignore-not-found", "-o", "name"]
            if doc["metadata"].get("namespace"):
                args += ["-n", doc["metadata"]["namespace"]]
            left += self.kubectl(*args).split()
        return left


@pytest.fixture
def applied(
    request: pytest.FixtureRequest, kubectl: Callable[..., str], controller_image: str
) -> Iterator[Applied]:
    install = Applied(kubectl, request.param)
    yield install
    install.delete()


def compute_in(namespace: str) -> float:
    with dask.config.set(PATIENT_CLIENT_CONFIG):
        pod_spec = small_worker_spec()
        with KubeCluster(pod_spec, namespace=namespace, n_workers=1) as cluster, Client(cluster) as client:  # type: ignore[no-untyped-call]
            client.wait_for_workers(1, timeout=180)
            return float(da.ones((100, 100, 100), chunks=50).mean().compute())


def wait_for_controller(kubectl: Callable[..., str], namespace: str) -> dict[str, Any]:
    kubectl("rollout", "status", "-n", namespace, "deployment/kubedask-controller", "--timeout=180s")
    pods = json.loads(
        kubectl("get", "pods", "-n", namespace, "-l", "app.kubernetes.io/component=controller", "-o", "json")
    )["items"]
    running = [
        p for p in pods if p["status"]["phase"] == "Running" and not p["metadata"].get("deletionTimestamp")
    ]
    assert len(running) == 1, pods
    return dict(running[0])


@pytest.mark.parametrize("applied", [MANIFESTS], ids=["namespaced"], indirect=True)
def test_kubectl_apply_manifests_serves_its_namespace(
    applied: Applied, kubectl: Callable[..., str], real_node: str
) -> None:
    pod = wait_for_controller(kubectl, applied.namespace)
    assert pod["spec"]["serviceAccountName"] == "kubedask-controller"
    # The namespace enforces "baseline": the Dask pods are admitted, and the controller is stricter still.
    assert compute_in(applied.namespace) == 1.0
    applied.delete()
    assert applied.remaining() == []


@pytest.mark.parametrize("applied", [MANIFESTS_ALL_NAMESPACES], ids=["all-namespaces"], indirect=True)
def test_kubectl_apply_all_namespaces_serves_any_namespace(
    applied: Applied, kubectl: Callable[..., str], namespace: str, real_node: str
) -> None:
    wait_for_controller(kubectl, applied.namespace)
    assert compute_in(namespace) == 1.0  # a namespace nobody configured
    applied.delete()
    assert applied.remaining() == []

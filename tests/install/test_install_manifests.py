"""The admin's journey with plain manifests, on the local cluster's real node: `kubectl apply -f
manifests/` (and `manifests/all-namespaces/`), a Dask cluster computes, `kubectl delete -f` removes
everything.

The files are applied unchanged except for their namespaces (the controller's, and the one it serves,
`default` in the files) and the names of cluster-scoped objects (what kustomize's `namespace:` and
`nameSuffix:` do), so a test never collides with a real install or another controller serving
`default`.
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
    one_worker_request,
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
        # Where users work; the manifests create only the controller's namespace (the served one,
        # `default`, always exists), so the test makes it like an admin would.
        self.served = f"{self.namespace}-users"
        kubectl("create", "namespace", self.served)
        self.docs: list[Doc] = relocate(
            load_dir(directory), self.namespace, suffix=f"-{self.namespace}", served=self.served
        )
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
        self.kubectl("delete", "namespace", self.served, "--wait=false", "--ignore-not-found", check=False)

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
def test_kubectl_apply_manifests_serves_the_users_namespace(
    applied: Applied, kubectl: Callable[..., str], real_node: str
) -> None:
    pod = wait_for_controller(kubectl, applied.namespace)
    assert pod["spec"]["serviceAccountName"] == "kubedask-controller"
    # Its own namespace enforces "restricted" (admission judged the controller pod); Dask pods run in
    # the served namespace, under the controller's request policy.
    labels = json.loads(kubectl("get", "namespace", applied.namespace, "-o", "json"))["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert compute_in(applied.served) == 1.0
    applied.delete()
    assert applied.remaining() == []


OWN_NAMESPACE_REQUEST = one_worker_request("own-namespace")


@pytest.mark.parametrize("applied", [MANIFESTS_ALL_NAMESPACES], ids=["all-namespaces"], indirect=True)
def test_kubectl_apply_all_namespaces_serves_any_namespace(
    applied: Applied, kubectl: Callable[..., str], namespace: str, real_node: str
) -> None:
    wait_for_controller(kubectl, applied.namespace)
    # A request in the controller's own namespace, where only an admin could write it: the controller
    # never serves that namespace (its policy lives there), so it stays untouched ...
    kubectl("apply", "-n", applied.namespace, "-f", "-", input=OWN_NAMESPACE_REQUEST)
    assert compute_in(namespace) == 1.0  # a namespace nobody configured
    # ... while the controller demonstrably served another one for a minute or more.
    request = json.loads(kubectl("get", "configmap", "-n", applied.namespace, "own-namespace", "-o", "json"))
    assert "kubedask.io/status" not in (request["metadata"].get("annotations") or {}), request
    pods = kubectl("get", "pods", "-n", applied.namespace, "-l", "dask.org/cluster-name=own-namespace", "-o", "name")
    assert pods.strip() == ""
    applied.delete()
    assert applied.remaining() == []

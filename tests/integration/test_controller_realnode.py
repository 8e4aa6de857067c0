"""On the real node, where Dask actually runs: a kubectl-applied request becomes a working cluster;
graceful scale-down keeps persisted data; adaptive scaling follows the work; idle clusters shut down."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from controller_harness import (
    REPO,
    Cluster,
    ControllerProcess,
    gathered_sum,
    scatter_range,
    wait_for,
)

pytestmark = pytest.mark.realnode
WORKER_SPEC = (REPO / "examples" / "worker-spec.yml").read_text()


def apply_request(kubectl: Callable[..., str], namespace: str, name: str, data: dict[str, str]) -> None:
    manifest = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "labels": {"kubedask.io/request": "cluster"}}, "data": data}
    kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))


def dask_client(cluster: Cluster, name: str) -> Any:
    from distributed import Client

    scheduler = cluster.core.read_namespaced_pod(f"{name}-scheduler", cluster.namespace)
    return Client(f"tcp://{scheduler.status.pod_ip}:8786", timeout=30)


def test_worker_spec_cluster_computes_and_keeps_data_through_graceful_scale_down(
        controller: ControllerProcess, cluster: Cluster, namespace: str, kubectl: Callable[..., str]) -> None:
    apply_request(kubectl, namespace, "seed", {"workers": "3", "worker-template": WORKER_SPEC})
    status = cluster.wait_phase("seed", "Running", timeout=240)
    assert status.workers.ready == 3
    with dask_client(cluster, "seed") as client:
        client.wait_for_workers(3, timeout=60)
        pods = set(cluster.worker_names("seed"))
        names = {w["name"] for w in client.scheduler_info(n_workers=-1)["workers"].values()}
        assert names == pods  # the pod name is the Dask worker name

        # Scattered data cannot be recomputed: it survives only if retiring workers hand it over.
        chunks = scatter_range(client, 300_000)
        holders = {w for ws in client.who_has(chunks).values() for w in ws}
        assert len(holders) == 3  # spread over all workers, so two of them must hand theirs over
        kubectl("patch", "cm", "seed", "-n", namespace, "-p", '{"data":{"workers":"1"}}')
        remaining = cluster.wait_workers("seed", 1, timeout=180)
        wait_for("the scheduler to see one worker", lambda: len(client.scheduler_info()["workers"]) == 1)
        assert gathered_sum(client, chunks) == sum(range(300_000))
        assert {w["name"] for w in client.scheduler_info()["workers"].values()} == set(remaining)
    reasons = {e.reason for e in cluster.events("seed")}
    assert "WorkersRetired" in reasons


def test_adaptive_cluster_grows_under_work_and_shrinks_to_minimum(
        controller: ControllerProcess, cluster: Cluster, namespace: str, kubectl: Callable[..., str]) -> None:
    adapt = json.dumps({"minimum": 1, "maximum": 3, "interval": 2, "cooldown": 5})
    apply_request(kubectl, namespace, "elastic", {"adapt": adapt, "worker-template": WORKER_SPEC})
    cluster.wait_phase("elastic", "Running", timeout=240)
    assert len(cluster.worker_names("elastic")) == 1
    with dask_client(cluster, "elastic") as client:
        futures = client.map(lambda i: time.sleep(3) or i, range(40), pure=False)
        wait_for("adaptive scaling to add workers", lambda: len(cluster.running_workers("elastic")) > 1,
                 timeout=180)
        assert sum(client.gather(futures)) == sum(range(40))
    cluster.wait_workers("elastic", 1, timeout=240)
    assert cluster.wait_phase("elastic", "Running", requested=1).workers.requested == 1


def test_idle_cluster_shuts_itself_down(controller: ControllerProcess, cluster: Cluster, namespace: str,
                                        kubectl: Callable[..., str]) -> None:
    apply_request(kubectl, namespace, "sleepy", {"workers": "1", "idle-timeout": "20",
                                                 "worker-template": WORKER_SPEC})
    cluster.wait_phase("sleepy", "Running", timeout=240)
    wait_for("the idle cluster's request to be deleted", lambda: cluster.configmap("sleepy") is None,
             timeout=180)
    wait_for("its pods to be garbage-collected", lambda: not cluster.pods("sleepy", include_deleting=True),
             timeout=120)

"""Pure builders for what each tool is asked to run: the same Dask worker pod, three ways.

- kubedask: a request ConfigMap (the shared schema in ``kubedask.spec`` builds and validates it);
- the dask-kubernetes operator: a ``DaskCluster`` custom resource;
- the raw baseline: bare pods, labelled like kubedask's workers so the same counting code applies.

Every pod tolerates the simulated nodes' taint and selects them, so nothing lands on a real node.
"""

from __future__ import annotations

import copy
from typing import Any

from kubedask.spec import build_request_configmap, build_request_data

Manifest = dict[str, Any]

KWOK_TOLERATION = {"key": "kwok.x-k8s.io/node", "operator": "Equal", "value": "fake", "effect": "NoSchedule"}
#: The benchmark cluster's admin policy for kubedask (environment overrides of the controller's policy):
#: its simulated nodes are tainted, and one namespace holds every cluster of a run.
KUBEDASK_POLICY_ENV = {
    "KUBEDASK_POLICY_ALLOWED_TOLERATIONS": "k8s.dask.org/dedicated,k8s.dask.org_dedicated,nvidia.com/gpu,"
                                           "kwok.x-k8s.io/node",
    "KUBEDASK_POLICY_MAX_CLUSTERS_PER_NAMESPACE": "1000",
    "KUBEDASK_POLICY_MAX_WORKERS_PER_NAMESPACE": "100000",
    "KUBEDASK_POLICY_MAX_WORKERS": "10000",
}
SIMULATED_NODE_SELECTOR = {"type": "kwok"}
IMAGE = "ghcr.io/dask/dask:latest"
#: Labels both kubedask and the operator put on worker pods (the classic dask-kubernetes ones).
CLUSTER_LABEL = "dask.org/cluster-name"
COMPONENT_LABEL = "dask.org/component"
#: Marks objects the raw baseline and the "unrelated objects" filler created.
BENCH_LABEL = "kubedask.io/benchmark"


def worker_pod_spec(simulated: bool = True) -> Manifest:
    """The one worker spec every tool runs (a bare pod spec)."""
    spec: Manifest = {
        "containers": [{"name": "dask-worker", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                        "args": ["dask-worker", "--nthreads", "1", "--memory-limit", "1GiB"]}],
        "restartPolicy": "Never",
    }
    if simulated:
        spec["tolerations"] = [dict(KWOK_TOLERATION)]
        spec["nodeSelector"] = dict(SIMULATED_NODE_SELECTOR)
    return spec


def worker_selector(cluster: str) -> str:
    """Selects one cluster's worker pods, whichever tool made them."""
    return f"{CLUSTER_LABEL}={cluster},{COMPONENT_LABEL}=worker"


def kubedask_request(name: str, namespace: str, workers: int, simulated: bool = True) -> Manifest:
    data = build_request_data(worker_template={"kind": "Pod", "spec": worker_pod_spec(simulated)},
                              workers=workers)
    return build_request_configmap(name, namespace, data)


def kubedask_scale_patch(workers: int) -> Manifest:
    return {"data": {"workers": str(workers)}}


def operator_cluster(name: str, namespace: str, workers: int, simulated: bool = True) -> Manifest:
    """A ``DaskCluster`` (kubernetes.dask.org/v1) with the same worker spec and a derived scheduler."""
    worker = worker_pod_spec(simulated)
    worker.pop("restartPolicy")  # the operator wraps pods in Deployments, which only allow Always
    scheduler = copy.deepcopy(worker)
    main = scheduler["containers"][0]
    main["name"] = "scheduler"
    main["args"] = ["dask-scheduler"]
    main["ports"] = [{"name": "tcp-comm", "containerPort": 8786, "protocol": "TCP"},
                     {"name": "http-dashboard", "containerPort": 8787, "protocol": "TCP"}]
    worker["containers"][0]["name"] = "worker"
    return {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskCluster",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "worker": {"replicas": workers, "spec": worker},
            "scheduler": {
                "spec": scheduler,
                "service": {
                    "type": "ClusterIP",
                    "selector": {CLUSTER_LABEL: name, COMPONENT_LABEL: "scheduler"},
                    "ports": [{"name": "tcp-comm", "protocol": "TCP", "port": 8786, "targetPort": "tcp-comm"},
                              {"name": "http-dashboard", "protocol": "TCP", "port": 8787,
                               "targetPort": "http-dashboard"}],
                },
            },
        },
    }


def operator_scale_patch(workers: int) -> Manifest:
    return {"spec": {"worker": {"replicas": workers}}}


def raw_pod(cluster: str, namespace: str, index: int, simulated: bool = True) -> Manifest:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{cluster}-worker-{index:05d}", "namespace": namespace,
                     "labels": {CLUSTER_LABEL: cluster, COMPONENT_LABEL: "worker", BENCH_LABEL: "raw"}},
        "spec": worker_pod_spec(simulated),
    }


def unrelated_configmap(namespace: str, index: int) -> Manifest:
    """Noise for scenario 4: a ConfigMap of a size typical for application config (~1 KiB)."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"unrelated-{index:05d}", "namespace": namespace,
                         "labels": {BENCH_LABEL: "unrelated"}},
            "data": {"settings.ini": "x" * 1024}}


def unrelated_pod(namespace: str, index: int, node: str) -> Manifest:
    """Noise for scenario 4: a pod bound straight to a simulated node, so the scheduler has no work."""
    spec = worker_pod_spec(simulated=True)
    spec.pop("nodeSelector")
    spec["nodeName"] = node
    spec["containers"][0]["name"] = "app"
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"unrelated-{index:05d}", "namespace": namespace,
                         "labels": {BENCH_LABEL: "unrelated", "app": "unrelated"}},
            "spec": spec}

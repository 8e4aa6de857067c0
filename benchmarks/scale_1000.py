"""Benchmark (not a test): scale one kubedask cluster to 1,000 workers on simulated (KWOK) nodes, and
compare with a plain parallel client creating 1,000 bare pods in the same run.

    PYTHONPATH=client:controller:. python benchmarks/scale_1000.py [--workers 1000] [--threads 64]

Uses $KUBECONFIG, else the local devcluster's admin kubeconfig. Starts its own controller process
(``python -m kubedask_controller``) for a fresh namespace, and removes its namespaces at the end.
Prints the time from writing the request to all workers Running, next to the raw figure.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import kubernetes
from kubedask.spec import build_request_configmap, build_request_data

from benchmarks import manifests

REPO = Path(__file__).resolve().parents[1]
KWOK = {"tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Equal", "value": "fake",
                         "effect": "NoSchedule"}],
        "nodeSelector": {"type": "kwok"}}
CONTAINER = {"name": "dask-worker", "image": "ghcr.io/dask/dask:latest", "imagePullPolicy": "IfNotPresent",
             "args": ["dask-worker", "--nthreads", "1"]}


def kubeconfig_path() -> str:
    if os.environ.get("KUBECONFIG"):
        return os.environ["KUBECONFIG"]
    from devcluster.cluster import Cluster  # the local cluster, when no KUBECONFIG is given

    cluster = Cluster.load("kubedask")
    if cluster is None:
        sys.exit("no KUBECONFIG and no local cluster: run `python -m devcluster up` first")
    return str(cluster.kubeconfig)


def count_running(core: Any, namespace: str, selector: str) -> int:
    pods = core.list_namespaced_pod(namespace, label_selector=selector, resource_version="0").items
    return sum(1 for p in pods if p.status.phase == "Running" and p.metadata.deletion_timestamp is None)


def wait_running(core: Any, namespace: str, selector: str, count: int, started: float,
                 timeout: float = 900) -> float:
    while time.monotonic() - started < timeout:
        if count_running(core, namespace, selector) >= count:
            return time.monotonic() - started
        time.sleep(0.5)
    raise SystemExit(f"timed out: fewer than {count} pods Running in {namespace} after {timeout}s")


def bench_raw(core: Any, namespace: str, workers: int, threads: int) -> float:
    """A plain client: 1,000 bare pods created from a thread pool, then wait for all Running."""
    def create(i: int) -> None:
        core.create_namespaced_pod(namespace, {
            "metadata": {"name": f"raw-{i:05d}", "labels": {"bench": "raw"}},
            "spec": {**KWOK, "restartPolicy": "Never", "containers": [CONTAINER]}})

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, range(workers)))
    return wait_running(core, namespace, "bench=raw", workers, started)


def bench_kubedask(core: Any, namespace: str, workers: int, kubeconfig: str, log: Path) -> float:
    env = {**os.environ, **manifests.KUBEDASK_POLICY_ENV, "KUBECONFIG": kubeconfig,
           "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("client", "controller", "."))}
    with log.open("wb") as out:
        controller = subprocess.Popen(
            [sys.executable, "-m", "kubedask_controller", "--namespace", namespace, "--no-leader-election",
             "--health-port", "0", "--metrics-port", "0", "--log-level", "WARNING"],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        time.sleep(3)  # let it start watching; not part of the measured figure
        template = {"kind": "Pod", "spec": {**KWOK, "containers": [CONTAINER]}}
        data = build_request_data(worker_template=template, workers=workers)
        started = time.monotonic()
        core.create_namespaced_config_map(namespace, build_request_configmap("bench", namespace, data))
        return wait_running(core, namespace, "dask.org/cluster-name=bench,dask.org/component=worker",
                            workers, started)
    finally:
        controller.terminate()
        controller.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=64, help="the raw client's parallelism")
    args = parser.parse_args()
    kubeconfig = kubeconfig_path()
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig, client_configuration=configuration
    )
    configuration.connection_pool_maxsize = args.threads
    core = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(configuration))
    suffix = uuid.uuid4().hex[:5]
    namespaces = {"raw": f"bench-raw-{suffix}", "kubedask": f"bench-kubedask-{suffix}"}
    for ns in namespaces.values():
        core.create_namespace(kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=ns)))
    try:
        raw = bench_raw(core, namespaces["raw"], args.workers, args.threads)
        print(f"raw client ({args.threads} threads): {args.workers} bare pods Running in {raw:.1f}s",
              flush=True)
        ours = bench_kubedask(core, namespaces["kubedask"], args.workers, kubeconfig,
                              Path(f"/tmp/kubedask-bench-{suffix}.log"))
        print(f"kubedask: request -> {args.workers} workers Running in {ours:.1f}s", flush=True)
        print(f"ratio kubedask/raw: {ours / raw:.2f} (target <= 1.5)")
    finally:
        for ns in namespaces.values():
            core.delete_namespace(ns, propagation_policy="Background")


if __name__ == "__main__":
    main()

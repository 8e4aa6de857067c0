"""Scenario 5's probe, run in the tool's own environment (kubedask: project venv; operator: its venv).

``python coldstart_probe.py {kubedask|operator} NAMESPACE NAME`` prints ``coldstart-seconds=S``, the
seconds from importing the tool's ``KubeCluster`` to ``client.wait_for_workers(2)``, then closes the cluster;
and ``import-seconds=S``, the part of that spent importing the tool's client (paid before any request
exists, so it is on the critical path). Only stdlib + the tool's own client are imported, so the same file
works in both environments.
"""

from __future__ import annotations

import sys
import time
from typing import Any

IMAGE = "ghcr.io/dask/dask:latest"  # pre-loaded on the local cluster's real node
TIMEOUT = 300
MARKER = "coldstart-seconds="
IMPORT_MARKER = "import-seconds="
CPU_REQUEST = "100m"  # three Dask processes must fit on the small real node next to everything else


def kubedask_spec(env: dict[str, str] | None = None) -> Any:
    """The kubedask cluster's worker template (a V1Pod); ``env`` is for experiments (coldstart_phases)."""
    from kubedask import make_pod_spec

    return make_pod_spec(image=IMAGE, cpu_request=CPU_REQUEST, env=env)


def main(tool: str, namespace: str, name: str) -> tuple[float, float]:
    """(seconds to 2 workers, of which importing the client) for one cold start."""
    from distributed import Client

    started = time.monotonic()
    if tool == "kubedask":
        from kubedask import KubeCluster

        spec = kubedask_spec()
        imported = time.monotonic()
        cluster = KubeCluster(spec, name=name, namespace=namespace, n_workers=2)
    else:
        from dask_kubernetes.operator import KubeCluster as OperatorCluster
        from dask_kubernetes.operator import make_cluster_spec

        imported = time.monotonic()
        spec = make_cluster_spec(name=name, image=IMAGE, n_workers=2,
                                 resources={"requests": {"cpu": CPU_REQUEST}})
        # The image is pre-loaded on the node and there is no registry: the same pull policy kubedask
        # sets by default (the operator leaves ':latest' at Kubernetes' default, Always).
        for role in ("scheduler", "worker"):
            for container in spec["spec"][role]["spec"]["containers"]:
                container["imagePullPolicy"] = "IfNotPresent"
        cluster = OperatorCluster(namespace=namespace, custom_cluster_spec=spec, quiet=True)
    try:
        with Client(cluster) as client:  # type: ignore[no-untyped-call]
            client.wait_for_workers(2, timeout=TIMEOUT)
            seconds = time.monotonic() - started
    finally:
        cluster.close()
    return seconds, imported - started


if __name__ == "__main__":
    total, importing = main(*sys.argv[1:4])
    # On lines of their own with a marker: the clients may print progress without a final newline.
    print(f"\n{IMPORT_MARKER}{importing:.3f}\n{MARKER}{total:.3f}")

"""Worker groups from Python on the real node: a group added with add_worker_group whose worker advertises a
Dask resource (``--resources GPU=1``; no real GPU needed) runs the tasks that ask for it, and only those."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from dask.distributed import Client, get_worker
from kubedask import KubeCluster, make_pod_spec, spec
from test_client_kubecluster import cluster_config, controller  # noqa: F401  (fixtures)

from tests.integration.controller_harness import wait_for

SMALL = {"image": "ghcr.io/dask/dask:latest", "memory_limit": "512M", "memory_request": "256M", "cpu_limit": 1,
         "cpu_request": "100m"}


def group_pods(kubectl: Callable[..., str], namespace: str, cluster: str, group: str) -> list[str]:
    selector = f"{spec.CLUSTER_NAME_LABEL}={cluster},{spec.WORKER_GROUP_LABEL}={group}"
    return kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "jsonpath={.items[*].metadata.name}").split()


@pytest.mark.realnode
def test_a_gpu_group_added_from_python_runs_only_the_gpu_tasks(
    controller: object, cluster_config: None, real_node: str, kubectl: Callable[..., str],  # noqa: F811
    namespace: str,
) -> None:
    def worker_name(_: int) -> str:  # local, so cloudpickle sends it by value (workers cannot import tests)
        return str(get_worker().name)

    cluster = KubeCluster(make_pod_spec(**SMALL), n_workers=1)
    try:
        cluster.add_worker_group("gpu", make_pod_spec(resources="GPU=1", **SMALL), n_workers=1)
        assert cluster.worker_groups() == {"default": 1, "gpu": 1}
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=240)
            futures = [client.submit(worker_name, i, resources={"GPU": 1}, pure=False) for i in range(6)]
            ran_on = set(client.gather(futures))
            assert len(ran_on) == 1 and ran_on.pop().startswith(f"{cluster.request_name}-worker-gpu-")
            plain = set(client.gather([client.submit(worker_name, i, pure=False) for i in range(6)]))
            assert plain  # ordinary tasks may run anywhere
            wait_for("the groups in repr", lambda: "worker_groups=" in repr(cluster), 30)
        cluster.delete_worker_group("gpu")
        wait_for("no gpu pods", lambda: group_pods(kubectl, namespace, cluster.request_name, "gpu") == [], 180)
        assert len(group_pods(kubectl, namespace, cluster.request_name, "default")) == 1
    finally:
        cluster.close()

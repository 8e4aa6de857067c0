"""A cluster at rest costs nothing: no API writes, and unrelated objects are never listed or watched.

Evidence comes from the wire: the controller talks to the API server through a recording proxy
(controller_harness.RecordingProxy), so every request it makes is seen, including writes that would not
change an object (which a watch could not see).
"""

from __future__ import annotations

import concurrent.futures
import time
from collections import Counter
from pathlib import Path
from typing import Any

from controller_harness import (
    WRITE_METHODS,
    Cluster,
    ControllerProcess,
    RecordingProxy,
    resource_of,
    wait_for,
)

CLUSTERS = 10


def pod_versions(cluster: Cluster) -> dict[str, tuple[str, str]]:
    """pod name -> (its cluster, its resourceVersion)."""
    return {p.metadata.name: (p.metadata.labels["dask.org/cluster-name"], p.metadata.resource_version)
            for p in cluster.core.list_namespaced_pod(cluster.namespace).items}

UNLABELLED = 1000
QUIET_SECONDS = 60


def test_ten_clusters_at_rest_cost_no_writes_and_unlabelled_configmaps_are_never_listed(
        kubeconfig: str, namespace: str, api: Any, tmp_path: Path) -> None:
    cluster = Cluster(api, namespace)
    filler = "x" * 1024  # 1,000 of these would be >1 MiB in any response that included them

    def create_unlabelled(i: int) -> None:
        cluster.core.create_namespaced_config_map(namespace, {
            "metadata": {"name": f"unrelated-{i}"}, "data": {"blob": filler}})

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(create_unlabelled, range(UNLABELLED)))

    proxy = RecordingProxy(kubeconfig, tmp_path).start()
    controller = ControllerProcess(proxy.kubeconfig, [namespace], tmp_path, leader_election=True)
    try:
        controller.start()
        for i in range(CLUSTERS):
            cluster.create_request(f"rest-{i}", workers=2)
        for i in range(CLUSTERS):
            cluster.wait_phase(f"rest-{i}", "Running", timeout=120)
        # Let the last status writes and events land before the quiet period starts.
        wait_for("the controller to go quiet", lambda: not [
            r for r in proxy.since(time.time() - 3) if r["method"] in WRITE_METHODS
            and resource_of(r["path"]) != "leases"], timeout=60)

        before = pod_versions(cluster)
        start = time.time()
        time.sleep(QUIET_SECONDS)  # the quiet period itself is what is being measured
        window = proxy.since(start)
        # Pods that changed under the controller (e.g. a simulated node flapping NotReady marks its pods
        # unready) are a real change the status must report; only clusters untouched by the world
        # are "at rest". With stable nodes that is all ten, and the assertion is simply "no writes".
        after = pod_versions(cluster)
        changed = {owner for name, (owner, rv) in after.items() if before.get(name, ("", ""))[1] != rv}
        changed |= {before[name][0] for name in set(before) - set(after)}
        writes = Counter(f"{r['method']} {resource_of(r['path'])}" for r in window
                         if r["method"] in WRITE_METHODS)
        lease_writes = writes.pop("PUT leases", 0)
        written = {r["path"].rsplit("/", 1)[-1] for r in window
                   if r["method"] in WRITE_METHODS and resource_of(r["path"]) == "configmaps"}
        unexplained = written - changed
        assert not unexplained, f"status writes for clusters at rest: {sorted(unexplained)} ({dict(writes)})"
        if not changed:
            assert not writes, f"writes while at rest: {dict(writes)}"
        print(f"\nquiet window of {QUIET_SECONDS}s: {len(window)} requests; writes {dict(writes) or 0} "
              f"(clusters whose pods changed meanwhile: {sorted(changed) or 'none'}); "
              f"{lease_writes} lease renewals (leader election)")

        # Every ConfigMap or pod LIST/WATCH the controller ever made was filtered by the API server.
        collection_reads = [r for r in proxy.requests if r["method"] == "GET"
                            and resource_of(r["path"]) in ("configmaps", "pods")
                            and r["path"].rstrip("/").split("/")[-2] not in ("configmaps", "pods")]
        assert collection_reads, "expected the controller to list/watch configmaps and pods"
        for r in collection_reads:
            selector = r["query"].get("labelSelector", "")
            assert selector, f"unfiltered {r['path']} {r['query']}"
        configmap_bytes = sum(r["bytes"] for r in collection_reads if resource_of(r["path"]) == "configmaps")
        assert configmap_bytes < UNLABELLED * len(filler) / 4, configmap_bytes
        assert all(cluster.status(f"rest-{i}").phase == "Running" for i in range(CLUSTERS))
    finally:
        controller.stop()
        proxy.stop()

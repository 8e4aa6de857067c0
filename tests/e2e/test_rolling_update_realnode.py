"""A rolling update on the real node, with real Dask: a 3-worker cluster holding persisted and scattered data
gets a worker template with a new env; every worker is replaced by a pod with the new env, new pods first and
at most ``max-surge`` (1) extra at a time, the old ones retired through the scheduler so their data moves;
the data is still there afterwards."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import dask.array as da
import kubernetes
import pytest
import yaml
from dask.distributed import Client
from kubedask import KubeCluster, make_pod_spec, spec
from test_client_kubecluster import cluster_config, controller  # noqa: F401  (fixtures)

from tests.integration.controller_harness import gathered_sum, scatter_range, wait_for

SMALL = {"image": "ghcr.io/dask/dask:latest", "memory_limit": "512M", "memory_request": "256M", "cpu_limit": 1,
         "cpu_request": "100m"}
RELEASE = "KUBEDASK_TEST_RELEASE"


class PodSampler(threading.Thread):
    """Lists the cluster's worker pods every 0.2 s, remembering the most that existed at once: those holding
    resources (what ``max-surge`` bounds: not ended, and not deleting unless still ready), and all,
    terminating ones included."""

    def __init__(self, api: Any, namespace: str, cluster: str) -> None:
        super().__init__(daemon=True)
        self.core = kubernetes.client.CoreV1Api(api)
        self.namespace, self.selector = namespace, f"{spec.CLUSTER_NAME_LABEL}={cluster},{spec.COMPONENT_LABEL}=worker"
        self.most = self.most_with_terminating = self.samples = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            pods = self.core.list_namespaced_pod(self.namespace, label_selector=self.selector).items
            live = [p for p in pods if p.status.phase not in ("Succeeded", "Failed")
                    and (p.metadata.deletion_timestamp is None or _ready(p))]
            self.most, self.most_with_terminating = max(self.most, len(live)), max(self.most_with_terminating,
                                                                                   len(pods))
            self.samples += 1
            self.stopped.wait(0.2)


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def worker_pods(api: Any, namespace: str, cluster: str) -> list[Any]:
    selector = f"{spec.CLUSTER_NAME_LABEL}={cluster},{spec.COMPONENT_LABEL}=worker"
    pods = kubernetes.client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector).items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def env_of(pod: Any) -> dict[str, str]:
    return {e.name: e.value for e in pod.spec.containers[0].env or []}


@pytest.mark.realnode
def test_a_changed_worker_env_replaces_every_worker_and_keeps_the_data(
    controller: object, cluster_config: None, real_node: str, kubectl: Callable[..., str],  # noqa: F811
    namespace: str, api: Any,
) -> None:
    def read_env(name: str) -> str | None:  # local, so cloudpickle sends it by value (workers cannot import tests)
        import os
        return os.environ.get(name)

    cluster = KubeCluster(make_pod_spec(env={RELEASE: "1"}, **SMALL), n_workers=3)
    try:
        with Client(cluster) as client:
            client.wait_for_workers(3, timeout=240)
            old = {p.metadata.name for p in worker_pods(api, namespace, cluster.request_name)}
            assert len(old) == 3
            # Persisted (recomputable) and scattered (not recomputable: it survives only if handed over) data.
            array = da.arange(300_000, chunks=10_000).persist()
            chunks = scatter_range(client, 300_000)
            holders = {w for ws in client.who_has(chunks).values() for w in ws}
            assert len(holders) == 3  # spread over all three workers, so each must hand its part over

            request = json.loads(kubectl("get", "cm", "-n", namespace, cluster.request_name, "-o", "json"))
            template = yaml.safe_load(request["data"][spec.KEY_WORKER_TEMPLATE])
            containers = template["spec"]["containers"] if "spec" in template else template["containers"]
            containers[0]["env"] = [e for e in containers[0].get("env") or [] if e["name"] != RELEASE] + [
                {"name": RELEASE, "value": "2"}]
            sampler = PodSampler(api, namespace, cluster.request_name)
            sampler.start()
            started = time.monotonic()
            kubectl("patch", "cm", "-n", namespace, cluster.request_name, "--type", "merge", "-p",
                    json.dumps({"data": {spec.KEY_WORKER_TEMPLATE: yaml.safe_dump(template)}}))

            def replaced() -> list[Any] | None:
                pods = worker_pods(api, namespace, cluster.request_name)
                done = len(pods) == 3 and all(p.status.phase == "Running" and env_of(p).get(RELEASE) == "2"
                                              for p in pods)
                return pods if done else None

            try:
                pods = wait_for("3 running workers with the new env", replaced, timeout=420, interval=1)
                wait_for("the scheduler to see exactly the new workers", lambda: {
                    w["name"] for w in client.scheduler_info(n_workers=-1)["workers"].values()} == {
                    p.metadata.name for p in pods}, timeout=120)
            finally:
                sampler.stopped.set()
                sampler.join()
            took = time.monotonic() - started
            assert not old & {p.metadata.name for p in pods}
            assert set(client.run(read_env, RELEASE).values()) == {"2"}  # the workers themselves run with it
            assert gathered_sum(client, chunks) == sum(range(300_000))
            assert int(array.sum().compute()) == sum(range(300_000))
            print(f"rolling update: {took:.0f} s, {sampler.samples} samples, at most {sampler.most} worker pods "
                  f"holding resources ({sampler.most_with_terminating} with stopped and terminating ones)")
            assert sampler.samples > 10 and sampler.most <= 3 + 1  # max-surge defaults to 1
        events = json.loads(kubectl("get", "events", "-n", namespace, "-o", "json"))["items"]
        reasons = [e["reason"] for e in events if e["involvedObject"]["name"] == cluster.request_name]
        assert "WorkersRetired" in reasons and "RetireFailed" not in reasons
    finally:
        cluster.close()

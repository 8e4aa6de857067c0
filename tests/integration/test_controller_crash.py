"""Killing the controller at any instant is safe: it converges to exactly the requested workers, with no
duplicates and no orphans; two replicas never double-act."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from controller_harness import Cluster, ControllerProcess, metric_sum, wait_for

SCALE = 50
#: Leader-election timings (Options.from_env) that keep the default proportions, a third as long.
SHORT_LEASE = {"KUBEDASK_LEASE_DURATION": "10", "KUBEDASK_LEASE_RENEW_DEADLINE": "8",
               "KUBEDASK_LEASE_RENEW_PERIOD": "5", "KUBEDASK_LEASE_RETRY_PERIOD": "1"}


def assert_exactly(cluster: Cluster, name: str, count: int) -> None:
    pods = cluster.pods(name, include_deleting=True)
    workers = [p for p in pods if p.metadata.labels["dask.org/component"] == "worker"]
    schedulers = [p for p in pods if p.metadata.labels["dask.org/component"] == "scheduler"]
    uid = cluster.configmap(name).metadata.uid
    assert len(schedulers) == 1
    assert len(workers) == count, f"{len(workers)} workers, expected {count}"
    assert len({p.metadata.name for p in workers}) == count
    for pod in pods:  # nothing unowned: every pod belongs to this request
        assert [o.uid for o in pod.metadata.owner_references] == [uid]


def test_sigkill_during_scale_up_converges_without_duplicates(
        kubeconfig: str, namespace: str, api: Any, tmp_path: Path) -> None:
    cluster = Cluster(api, namespace)
    rng = random.Random(4)
    controller = ControllerProcess(kubeconfig, [namespace], tmp_path)
    try:
        for round_ in range(5):
            name = f"crash-{round_}"
            controller.start()
            cluster.create_request(name, workers=0)
            cluster.wait_phase(name, "Running")
            cluster.patch_data(name, {"workers": str(SCALE)})
            # Kill before the change is acted on (round 0), else at a random instant after the first
            # worker appeared: mid-batch, between batches, or as the last status is written.
            if round_:
                wait_for("the scale-up to begin", lambda n=name: cluster.worker_names(n), interval=0.02)
                time.sleep(rng.uniform(0.0, 0.3))
            controller.kill()
            partial = len(cluster.worker_names(name))
            controller.start()
            cluster.wait_workers(name, SCALE, timeout=120)
            assert_exactly(cluster, name, SCALE)
            print(f"round {round_}: killed with {partial} workers created; converged to {SCALE}")
            controller.kill()  # the next round starts from a fresh process as well
    finally:
        controller.stop()


def test_two_replicas_create_each_pod_exactly_once(
        kubeconfig: str, namespace: str, api: Any, tmp_path: Path) -> None:
    cluster = Cluster(api, namespace)
    # A 10 s lease instead of the default 30 s: the standby's takeover is the same, waited for a third as long.
    replicas = [ControllerProcess(kubeconfig, [namespace], tmp_path, leader_election=True, env=SHORT_LEASE)
                for _ in range(2)]
    try:
        for replica in replicas:
            replica.start()
        wait_for("one replica to hold the lease",
                 lambda: sum(metric_sum(r.metrics(), "kubedask_leader") for r in replicas) == 1, timeout=60)
        cluster.create_request("pair", workers=SCALE)
        cluster.wait_workers("pair", SCALE, timeout=120)
        assert_exactly(cluster, "pair", SCALE)
        created = [metric_sum(r.metrics(), "kubedask_pods_created_total") for r in replicas]
        assert sorted(created) == [0, SCALE + 1], created  # one replica did everything: workers + scheduler

        # The leader dies; the standby takes over after the lease expires and repairs what is missing.
        leader = replicas[0] if created[0] else replicas[1]
        standby = replicas[1] if leader is replicas[0] else replicas[0]
        leader.kill()
        cluster.patch_data("pair", {"workers": str(SCALE + 5)})
        cluster.wait_workers("pair", SCALE + 5, timeout=120)
        assert_exactly(cluster, "pair", SCALE + 5)
        assert metric_sum(standby.metrics(), "kubedask_pods_created_total") == 5
    finally:
        for replica in replicas:
            replica.stop()

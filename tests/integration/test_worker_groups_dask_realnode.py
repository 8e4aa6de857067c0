"""Worker groups on the real node, with real Dask: scaling one group down while another group runs retires
that group's own workers through the scheduler (by address), so their data moves, and no other group's
worker goes; and a group with ``adapt.GROUP`` grows under work and shrinks back, beside a fixed group."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from controller_harness import (
    Cluster,
    ControllerProcess,
    gathered_sum,
    scatter_range,
    wait_for,
)
from test_controller_realnode import WORKER_SPEC, apply_request, dask_client

pytestmark = pytest.mark.realnode
GROUP_LABEL = "dask.org/workergroup-name"


def group_pods(cluster: Cluster, name: str, group: str) -> list[str]:
    return sorted(p.metadata.name for p in cluster.pods(name, "worker") if p.metadata.labels.get(GROUP_LABEL) == group)


def test_scaling_down_one_group_of_two_retires_only_that_groups_workers_and_keeps_their_data(
        controller: ControllerProcess, cluster: Cluster, namespace: str, kubectl: Callable[..., str]) -> None:
    apply_request(kubectl, namespace, "pair", {"workers": "2", "worker-template": WORKER_SPEC,
                                               "workers.big": "2", "worker-template.big": WORKER_SPEC})
    status = cluster.wait_phase("pair", "Running", timeout=300)
    assert status.workers.ready == 4
    default, big = group_pods(cluster, "pair", "default"), group_pods(cluster, "pair", "big")
    assert len(default) == 2 and len(big) == 2
    with dask_client(cluster, "pair") as client:
        client.wait_for_workers(4, timeout=120)
        # Scattered data cannot be recomputed: it survives only if the retired workers hand it over.
        chunks = scatter_range(client, 400_000)
        holders = {w for ws in client.who_has(chunks).values() for w in ws}
        names = {a: w["name"] for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}
        assert {names[h] for h in holders} >= set(big)  # both of the group's workers hold some of it

        kubectl("patch", "cm", "pair", "-n", namespace, "-p", '{"data":{"workers.big":"0"}}')
        wait_for("the big group's pods to go", lambda: group_pods(cluster, "pair", "big") == [], timeout=180)
        wait_for("the scheduler to see two workers", lambda: len(client.scheduler_info()["workers"]) == 2, 60)
        assert group_pods(cluster, "pair", "default") == default  # the other group kept every worker
        assert {w["name"] for w in client.scheduler_info()["workers"].values()} == set(default)
        assert gathered_sum(client, chunks) == sum(range(400_000))
    events = {(e.reason, e.message) for e in cluster.events("pair")}
    retired = [m for r, m in events if r == "WorkersRetired"]
    assert retired and all(b in " ".join(retired) for b in big), events
    assert not any(r == "RetireFailed" for r, _ in events), events
    assert cluster.wait_phase("pair", "Running", requested=2).worker_groups["big"].requested == 0


def test_an_adaptive_group_takes_the_work_the_fixed_group_does_not_cover_and_shrinks_back(
        controller: ControllerProcess, cluster: Cluster, namespace: str, kubectl: Callable[..., str]) -> None:
    adapt = json.dumps({"minimum": 0, "maximum": 2, "interval": 2, "cooldown": 5})
    apply_request(kubectl, namespace, "elastic", {"workers": "1", "worker-template": WORKER_SPEC,
                                                  "worker-template.burst": WORKER_SPEC, "adapt.burst": adapt})
    status = cluster.wait_phase("elastic", "Running", timeout=300)
    assert status.worker_groups["burst"].requested == 0 and group_pods(cluster, "elastic", "burst") == []
    (fixed,) = group_pods(cluster, "elastic", "default")
    with dask_client(cluster, "elastic") as client:
        client.wait_for_workers(1, timeout=120)
        futures = client.map(lambda i: time.sleep(3) or i, range(40), pure=False)
        wait_for("the burst group to grow", lambda: len(running(cluster, "elastic", "burst")) == 2, timeout=180)
        assert group_pods(cluster, "elastic", "default") == [fixed]  # the fixed group stays as it is
        assert sum(client.gather(futures)) == sum(range(40))
    wait_for("the burst group to shrink back to its minimum", lambda: group_pods(cluster, "elastic", "burst") == [],
             timeout=240)
    assert group_pods(cluster, "elastic", "default") == [fixed]
    shown = cluster.wait_phase("elastic", "Running", requested=1)
    assert shown.worker_groups["burst"].requested == 0 and shown.worker_groups["default"].requested == 1


def running(cluster: Cluster, name: str, group: str) -> list[str]:
    return sorted(p.metadata.name for p in cluster.pods(name, "worker")
                  if p.metadata.labels.get(GROUP_LABEL) == group and p.status.phase == "Running")


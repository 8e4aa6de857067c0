"""Worker groups on simulated nodes: a default group and a ``gpu`` group behind one scheduler, each with its
own pods and counts; ``kubectl patch`` of one group's count scales that group alone; removing a group's keys
removes its pods. Also the scheduler Service template and the rolling update of a changed template."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from controller_harness import SIMULATED_NODES_POLICY, SIMULATED_TEMPLATE, Cluster, ControllerProcess, dump, wait_for

GPU_TEMPLATE: dict[str, Any] = copy.deepcopy(SIMULATED_TEMPLATE)
GPU_TEMPLATE["spec"]["tolerations"].append({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"})
GPU_TEMPLATE["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
GPU_TEMPLATE["spec"]["containers"][0]["args"] += ["--resources", "GPU=1"]
GROUP_LABEL = "dask.org/workergroup-name"


def groups_of(cluster: Cluster, name: str) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for pod in cluster.pods(name, "worker"):
        found.setdefault(pod.metadata.labels.get(GROUP_LABEL), []).append(pod)
    return found


def wait_groups(cluster: Cluster, name: str, wanted: dict[str, int], timeout: float = 90) -> dict[str, list[Any]]:
    def probe() -> dict[str, list[Any]] | None:
        found = groups_of(cluster, name)
        running = {g: sum(1 for p in pods if p.status.phase == "Running") for g, pods in found.items()}
        shown = {g: len(pods) for g, pods in found.items()}
        return found if shown == wanted and running == wanted else None
    try:
        return wait_for(f"worker groups {wanted} of {name}", probe, timeout)
    except AssertionError as exc:
        now = {g: [p.metadata.name for p in pods] for g, pods in groups_of(cluster, name).items()}
        raise AssertionError(f"{exc}\nworkers now: {now}") from None


def test_a_default_and_a_gpu_group_scale_and_go_independently(
        controller: ControllerProcess, cluster: Cluster, namespace: str, kubectl: Callable[..., str]) -> None:
    cluster.create_request("mixed", workers=2, worker_groups={"gpu": (1, GPU_TEMPLATE)})
    found = wait_groups(cluster, "mixed", {"default": 2, "gpu": 1})
    (gpu,) = found["gpu"]
    assert gpu.metadata.name.startswith("mixed-worker-gpu-")
    node = cluster.core.read_node(gpu.spec.node_name)
    assert "nvidia.com/gpu" in (node.status.allocatable or {}), f"gpu worker on {gpu.spec.node_name}"
    for pod in found["default"]:
        assert not pod.metadata.name.startswith("mixed-worker-gpu-")
        assert "nvidia.com/gpu" not in str(pod.spec.containers[0].resources)
    status = cluster.wait_phase("mixed", "Running", requested=3)
    assert (status.workers.requested, status.workers.running) == (3, 3)
    assert {g: (c.requested, c.running) for g, c in status.worker_groups.items()} == {"default": (2, 2),
                                                                                      "gpu": (1, 1)}

    # One group's count alone: only that group changes.
    defaults = sorted(p.metadata.name for p in found["default"])
    kubectl("patch", "cm", "mixed", "-n", namespace, "-p", json.dumps({"data": {"workers.gpu": "3"}}))
    found = wait_groups(cluster, "mixed", {"default": 2, "gpu": 3})
    assert sorted(p.metadata.name for p in found["default"]) == defaults
    status = cluster.wait_phase("mixed", "Running", requested=5)
    assert status.worker_groups["gpu"].running == 3

    # The group's keys removed: its pods go, the default group's stay.
    kubectl("patch", "cm", "mixed", "-n", namespace, "-p",
            json.dumps({"data": {"workers.gpu": None, "worker-template.gpu": None}}))
    found = wait_groups(cluster, "mixed", {"default": 2})
    assert sorted(p.metadata.name for p in found["default"]) == defaults
    cluster.wait_phase("mixed", "Running", requested=2)
    # While its pods terminate the removed group is still shown, at 0; it leaves the status with them (a
    # count-only change, written within the status interval).
    status = wait_for("the gpu group to leave the status of mixed",
                      lambda: (shown := cluster.status("mixed")) is not None and not shown.worker_groups and shown,
                      timeout=30)
    assert status.workers.running == 2 and not status.worker_groups


def test_a_group_template_refused_by_the_policy_fails_the_request_with_the_key(
        controller: ControllerProcess, cluster: Cluster) -> None:
    bad = copy.deepcopy(GPU_TEMPLATE)
    bad["spec"]["hostNetwork"] = True
    cluster.create_request("refused", data={"worker-template": dump(SIMULATED_TEMPLATE), "workers": "1",
                                            "worker-template.gpu": dump(bad), "workers.gpu": "1"})
    status = cluster.wait_phase("refused", "Failed")
    assert "worker-template.gpu" in status.message and "hostNetwork" in status.message
    assert cluster.pods("refused", "worker") == []


#: The admin allows the load balancer annotation the template uses (Service annotations are allowlisted).
LOAD_BALANCER_POLICY = {**SIMULATED_NODES_POLICY, "allowedServiceTypes": ["ClusterIP", "LoadBalancer"],
                        "allowedServiceAnnotations": ["user.kubedask.io/*", "lb.example.com/internal"],
                        "allowedServiceLabels": ["user.kubedask.io/*", "team"]}


@pytest.mark.parametrize("controller_policy", [LOAD_BALANCER_POLICY], ids=["load-balancer-policy"])
def test_a_scheduler_service_template_reaches_the_service_and_follows_live_edits(
        controller: ControllerProcess, cluster: Cluster, namespace: str, kubectl: Callable[..., str]) -> None:
    template = {"metadata": {"annotations": {"lb.example.com/internal": "true"}, "labels": {"team": "a"}},
                "spec": {"type": "LoadBalancer", "loadBalancerSourceRanges": ["10.0.0.0/8"]}}
    cluster.create_request("svc", workers=0, scheduler_service_template=template)

    def service() -> Any:
        found = cluster.core.list_namespaced_service(namespace, field_selector="metadata.name=svc-scheduler")
        return found.items[0] if found.items else None

    found = wait_for("the Service with the template", lambda: (s := service()) and s.spec.type == "LoadBalancer"
                     and s.metadata.annotations.get("lb.example.com/internal") == "true" and s)
    assert found.spec.load_balancer_source_ranges == ["10.0.0.0/8"]
    assert found.metadata.labels["team"] == "a"
    assert found.spec.selector["dask.org/component"] == "scheduler"

    template["metadata"]["annotations"]["lb.example.com/internal"] = "false"
    template["spec"]["loadBalancerSourceRanges"] = ["192.168.0.0/16"]
    kubectl("patch", "cm", "svc", "-n", namespace, "-p",
            json.dumps({"data": {"scheduler-service-template": dump(template)}}))
    wait_for("the edited Service", lambda: (s := service()).spec.load_balancer_source_ranges == ["192.168.0.0/16"]
             and s.metadata.annotations.get("lb.example.com/internal") == "false")

    template["spec"]["selector"] = {"app": "other"}
    kubectl("patch", "cm", "svc", "-n", namespace, "-p",
            json.dumps({"data": {"scheduler-service-template": dump(template)}}))
    status = cluster.wait_phase("svc", "Failed")
    assert "spec.selector cannot be set" in status.message
    assert service().spec.selector["dask.org/component"] == "scheduler"


def test_a_changed_template_replaces_every_worker_with_at_most_max_surge_extra(
        controller: ControllerProcess, cluster: Cluster, namespace: str, kubectl: Callable[..., str]) -> None:
    cluster.create_request("rolling", workers=3)
    old = set(cluster.wait_workers("rolling", 3))
    cluster.wait_phase("rolling", "Running", requested=3)
    changed = copy.deepcopy(SIMULATED_TEMPLATE)
    changed["spec"]["containers"][0]["env"] = [{"name": "RELEASE", "value": "2"}]
    patch = {"data": {"worker-template": dump(changed)}}
    kubectl("patch", "cm", "rolling", "-n", namespace, "-p", json.dumps(patch))
    most = 0

    def replaced() -> list[Any] | None:
        nonlocal most
        pods = cluster.pods("rolling", "worker", include_deleting=True)
        most = max(most, sum(1 for p in pods if p.metadata.deletion_timestamp is None))
        live = [p for p in pods if p.metadata.deletion_timestamp is None]
        fresh = [p for p in live if p.metadata.name not in old and p.status.phase == "Running"]
        return live if len(live) == 3 and len(fresh) == 3 else None

    pods = wait_for("all 3 workers replaced", replaced, timeout=120, interval=0.1)
    for pod in pods:
        assert {e.name: e.value for e in pod.spec.containers[0].env}.get("RELEASE") == "2"
    assert most <= 4, f"{most} workers at once with max-surge 1"
    # The status follows with the controller's next pass.
    wait_for("the status to count 3 updated workers",
             lambda: (s := cluster.status("rolling")) is not None and s.workers.updated == 3 and s.phase == "Running")

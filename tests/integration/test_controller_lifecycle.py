"""A request's life on simulated nodes: create, inspect, scale with kubectl, repair, delete."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from controller_harness import SIMULATED_TEMPLATE, Cluster, ControllerProcess, running_controller, wait_for


@pytest.fixture
def controller(kubeconfig: str, namespace: str, tmp_path: Path) -> Iterator[ControllerProcess]:
    yield from running_controller(kubeconfig, [namespace], tmp_path)


@pytest.fixture
def cluster(api: Any, namespace: str) -> Cluster:
    return Cluster(api, namespace)


def test_request_creates_scheduler_service_pdb_and_workers(
        controller: ControllerProcess, cluster: Cluster, namespace: str, kubectl: Callable[..., str]) -> None:
    request = cluster.create_request("analysis", workers=3)
    status = cluster.wait_phase("analysis", "Running")
    assert (status.workers.requested, status.workers.created, status.workers.running) == (3, 3, 3)
    assert status.scheduler_address == f"tcp://analysis-scheduler.{namespace}.svc.cluster.local:8786"
    assert {c.type: c.status for c in status.conditions} == {
        "RequestValid": "True", "SchedulerReady": "True", "WorkersReady": "True"}

    cm = cluster.configmap("analysis")
    uid = cm.metadata.uid
    scheduler = cluster.core.read_namespaced_pod("analysis-scheduler", namespace)
    service = cluster.core.read_namespaced_service("analysis-scheduler", namespace)
    pdb = cluster.policy.read_namespaced_pod_disruption_budget("analysis-scheduler", namespace)
    workers = cluster.pods("analysis", "worker")
    assert len(workers) == 3
    assert pdb.spec.min_available == 1
    assert {p.port for p in service.spec.ports} == {8786, 8787}
    assert service.spec.type == "ClusterIP"
    for obj in [scheduler, service, pdb, *workers]:
        owners = obj.metadata.owner_references
        assert [(o.kind, o.name, o.uid) for o in owners] == [("ConfigMap", "analysis", uid)]
        labels = obj.metadata.labels
        assert labels["app.kubernetes.io/instance"] == "analysis"
        assert labels["app.kubernetes.io/managed-by"] == "kubedask"
        assert labels["app"] == "dask" and labels["dask.org/cluster-name"] == "analysis"
    for pod in [scheduler, *workers]:
        component = pod.metadata.labels["dask.org/component"]
        assert pod.spec.restart_policy == "Never"
        tolerations = {(t.key, t.value) for t in pod.spec.tolerations}
        assert {("k8s.dask.org/dedicated", component), ("k8s.dask.org_dedicated", component)} <= tolerations
        term = pod.spec.affinity.node_affinity.preferred_during_scheduling_ignored_during_execution[0]
        assert term.preference.match_expressions[0].values == [component]
        for container in pod.spec.containers:
            env = {e.name: e.value for e in container.env}
            assert env["DASK_SCHEDULER_ADDRESS"] == status.scheduler_address
    for pod in workers:
        assert pod.metadata.name.startswith("analysis-worker-")
        args = pod.spec.containers[0].args
        assert args[args.index("--name") + 1] == pod.metadata.name
        assert "--death-timeout" in args

    listing = kubectl("get", "cm", "-n", namespace, "-l", "kubedask.io/request", "-L", "kubedask.io/phase")
    rows = [line.split() for line in listing.splitlines()]
    assert any(row[0] == "analysis" and row[-1] == "Running" for row in rows)
    reasons = {e.reason for e in cluster.events("analysis")}
    assert {"SchedulerCreated", "ScaledUp"} <= reasons
    assert request["metadata"]["name"] == "analysis"


def test_kubectl_patch_scales_up_and_down(
        controller: ControllerProcess, cluster: Cluster, namespace: str, kubectl: Callable[..., str]) -> None:
    cluster.create_request("scaling", workers=2)
    cluster.wait_workers("scaling", 2)
    kubectl("patch", "cm", "scaling", "-n", namespace, "-p", '{"data":{"workers":"6"}}')
    cluster.wait_workers("scaling", 6)
    assert cluster.wait_phase("scaling", "Running").workers.running == 6
    kubectl("patch", "cm", "scaling", "-n", namespace, "-p", '{"data":{"workers":"1"}}')
    cluster.wait_workers("scaling", 1)
    assert cluster.wait_phase("scaling", "Running", requested=1).workers.requested == 1


def test_deleted_worker_and_scheduler_pods_are_replaced(controller: ControllerProcess, cluster: Cluster,
                                                        namespace: str) -> None:
    cluster.create_request("repair", workers=2)
    before = cluster.wait_workers("repair", 2)
    cluster.core.delete_namespaced_pod(before[0], namespace, grace_period_seconds=0)
    after = cluster.wait_workers("repair", 2)
    assert before[0] not in after and before[1] in after

    old_uid = cluster.core.read_namespaced_pod("repair-scheduler", namespace).metadata.uid

    def new_scheduler_running() -> bool:
        pods = cluster.pods("repair", "scheduler")
        return bool(pods) and pods[0].metadata.uid != old_uid and pods[0].status.phase == "Running"

    cluster.core.delete_namespaced_pod("repair-scheduler", namespace, grace_period_seconds=0)
    wait_for("a new scheduler pod", new_scheduler_running)
    cluster.wait_phase("repair", "Running")


def test_deleting_the_request_removes_everything(controller: ControllerProcess, cluster: Cluster,
                                                 namespace: str) -> None:
    cluster.create_request("doomed", workers=2)
    cluster.wait_phase("doomed", "Running")
    cluster.core.delete_namespaced_config_map("doomed", namespace)

    def all_gone() -> bool:
        services = cluster.core.list_namespaced_service(namespace).items
        pdbs = cluster.policy.list_namespaced_pod_disruption_budget(namespace).items
        return not cluster.pods("doomed", include_deleting=True) and not services and not pdbs

    wait_for("the garbage collector to remove pods, Service and PDB", all_gone, timeout=90)
    assert controller.healthy()


def test_local_mode_creates_only_workers(controller: ControllerProcess, cluster: Cluster) -> None:
    cluster.create_request("local", workers=2, deploy_mode="local", scheduler_address="tcp://10.0.0.1:8786")
    cluster.wait_phase("local", "Running")
    assert cluster.pods("local", "scheduler") == []
    assert cluster.core.list_namespaced_service(cluster.namespace).items == []
    env = {e.name: e.value for e in cluster.pods("local", "worker")[0].spec.containers[0].env}
    assert env["DASK_SCHEDULER_ADDRESS"] == "tcp://10.0.0.1:8786"


def test_simulated_template_is_a_pod_manifest() -> None:
    assert SIMULATED_TEMPLATE["kind"] == "Pod"  # guards the helper other tests rely on


def test_request_whose_client_heartbeat_stops_is_reaped(controller: ControllerProcess, cluster: Cluster,
                                                        namespace: str) -> None:
    from kubedask.spec import HEARTBEAT_ANNOTATION, format_heartbeat

    cluster.create_request("orphan", workers=1, client_heartbeat_timeout=10)
    cluster.create_request("kubectl-user", workers=1)  # no heartbeat key: never reaped
    cluster.core.patch_namespaced_config_map("orphan", namespace, {
        "metadata": {"annotations": {HEARTBEAT_ANNOTATION: format_heartbeat()}}})
    cluster.wait_phase("orphan", "Running")
    wait_for("the silent client's cluster to be reaped", lambda: cluster.configmap("orphan") is None,
             timeout=60)
    assert any(e.reason == "ShuttingDown" for e in cluster.events("orphan"))
    assert cluster.status("kubectl-user").phase == "Running"

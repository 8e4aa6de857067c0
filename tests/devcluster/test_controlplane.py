"""The local cluster's control plane and simulated nodes behave like a real Kubernetes (local cluster, part 1)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import pytest

from devcluster import controlplane, kwok, lifecycle
from devcluster.cluster import Cluster, Ports
from devcluster.processes import ComponentError, is_running

Kubectl = Callable[..., str]

TOLERATE_FAKE = [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}]


def wait_for(what: str, condition: Callable[[], object], timeout: float = 60) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.3)


def pod_manifest(name: str, **extra: object) -> str:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}, **extra},
        "spec": {
            "tolerations": TOLERATE_FAKE,
            "nodeSelector": {"type": "kwok"},
            "containers": [{"name": "main", "image": "example.invalid/fake:1"}],
        },
    }
    return json.dumps(pod)


def test_simulated_nodes_are_ready_tainted_and_one_has_gpus(kubectl: Kubectl) -> None:
    nodes = json.loads(kubectl("get", "nodes", "-l", "type=kwok", "-o", "json"))["items"]
    assert len(nodes) >= 3
    for node in nodes:
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True", node["metadata"]["name"]
        assert {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"} in node["spec"]["taints"]
    gpus = [n["status"]["allocatable"].get("nvidia.com/gpu") for n in nodes]
    assert "8" in gpus


def test_tolerating_pod_runs_on_a_simulated_node_and_deletes(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=pod_manifest("sim"))

    def running() -> dict[str, object] | None:
        pod = json.loads(kubectl("get", "pod", "-n", namespace, "sim", "-o", "json"))
        return pod if pod["status"].get("phase") == "Running" and pod["status"].get("podIP") else None

    pod = wait_for("the pod to run", running)
    assert pod["spec"]["nodeName"].startswith("kwok-node-")  # type: ignore[index]
    kubectl("delete", "pod", "-n", namespace, "sim", "--timeout=60s")
    assert kubectl("get", "pods", "-n", namespace, "-o", "name") == ""


def test_deleting_an_owner_configmap_garbage_collects_its_pod(kubectl: Kubectl, namespace: str) -> None:
    kubectl("create", "configmap", "-n", namespace, "owner")
    uid = kubectl("get", "configmap", "-n", namespace, "owner", "-o", "jsonpath={.metadata.uid}")
    owner = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]
    kubectl("apply", "-n", namespace, "-f", "-", input=pod_manifest("owned", ownerReferences=owner))
    kubectl("delete", "configmap", "-n", namespace, "owner")
    wait_for(
        "the owned pod to be garbage-collected",
        lambda: kubectl("get", "pods", "-n", namespace, "-o", "name") == "",
    )


def test_rbac_forbids_a_configmap_only_service_account_to_create_pods(
    kubectl: Kubectl, namespace: str, user_kubeconfig: Callable[[str, str], str]
) -> None:
    kubectl("create", "role", "-n", namespace, "configmaps-only", "--verb=*", "--resource=configmaps")
    kubectl(
        "create", "rolebinding", "-n", namespace, "configmaps-only", "--role=configmaps-only",
        f"--serviceaccount={namespace}:alice",
    )
    alice = user_kubeconfig(namespace, "alice")
    kubectl("create", "configmap", "-n", namespace, "mine", kubeconfig_path=alice)
    denied = kubectl(
        "create", "-n", namespace, "-f", "-", input=pod_manifest("nope"), check=False, kubeconfig_path=alice
    )
    assert "forbidden" in denied
    assert 'cannot create resource "pods"' in denied


def test_pdb_status_and_endpointslices_are_computed(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=pod_manifest("web"))
    kubectl("create", "poddisruptionbudget", "-n", namespace, "web", "--selector=app=web", "--min-available=1")
    kubectl("create", "service", "clusterip", "-n", namespace, "web", "--tcp=80:80")
    kubectl("set", "selector", "-n", namespace, "service", "web", "app=web")
    wait_for(
        "the PDB to count the healthy pod",
        lambda: kubectl("get", "pdb", "-n", namespace, "web", "-o", "jsonpath={.status.currentHealthy}") == "1",
    )
    wait_for(
        "an EndpointSlice with the pod's address",
        lambda: kubectl(
            "get", "endpointslices", "-n", namespace, "-l", "kubernetes.io/service-name=web",
            "-o", "jsonpath={.items[*].endpoints[*].addresses[*]}",
        ).strip(),
    )


@pytest.fixture
def scratch_state(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """A separate state root, so a second instance never touches the session's cluster."""
    monkeypatch.setenv("KUBEDASK_STATE", str(tmp_path / "state"))
    return tmp_path


def test_a_component_that_fails_to_start_is_named_with_its_log(scratch_state: object) -> None:
    cluster = Cluster(name="broken", ports=Ports.pick(), real_node=False, simulated_nodes=0)
    with socket.socket() as blocker:  # etcd's client port is taken: etcd must refuse to start
        blocker.bind(("127.0.0.1", cluster.ports.etcd_client))
        blocker.listen()
        cluster.save()
        with pytest.raises(ComponentError) as failure:
            controlplane.start_etcd(cluster)
    message = str(failure.value)
    assert message.startswith("etcd ")
    assert "address already in use" in message
    lifecycle.down("broken")


def test_a_second_instance_runs_beside_the_first_and_down_leaves_nothing(
    scratch_state: object, kubectl: Kubectl
) -> None:
    second = lifecycle.up("second", nodes=1, real_node=False)
    try:
        assert lifecycle.healthy(lifecycle.status("second"))
        nodes = second.kubectl("get", "nodes", "-o", "name").split()
        assert nodes == ["node/kwok-node-0"]
        kubectl("get", "nodes")  # the session's cluster still answers
        pids = [second.processes.pid(n) for n in second.processes.names()]
    finally:
        assert lifecycle.down("second")
    assert Cluster.load("second") is None
    for pid in pids:
        assert pid is not None
        assert not is_running(pid), f"process {pid} survived `down`"


def test_node_count_is_validated() -> None:
    with pytest.raises(ValueError, match="between 0 and 1000"):
        kwok.register_nodes(None, 1001)  # type: ignore[arg-type]


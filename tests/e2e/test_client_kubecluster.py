"""The client against the real local cluster and controller: the seed's quickstart and everything around it.

Each test gets a fresh namespace and its own controller process watching only that namespace (so the
"no controller" test can simply not start one). Clusters are sized for a 2-core machine. Tests whose pods
must really run are marked ``realnode``; the error cases need only the control plane.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dask.array as da
import dask.config
import pytest
from dask.distributed import Client
from kubedask import (
    ControllerNotRespondingError,
    KubeCluster,
    KubeConfig,
    RequestRejectedError,
    SchedulerStartError,
    make_pod_spec,
    spec,
)

from tests.integration.controller_harness import REPO, ControllerProcess, running_controller, wait_for

# The seed's worker-spec.yml with resources that fit this machine (the README's example, verbatim).
WORKER_SPEC = (REPO / "examples" / "worker-spec.yml").read_text()
#: Labels are allowlisted (by default only user.kubedask.io/*): worker-spec.yml's foo: bar runs where the
#: admin allows the key, as this test cluster's admin does (nothing in its namespaces selects on foo).
WORKER_SPEC_POLICY = {"allowedPodLabels": ["user.kubedask.io/*", "foo"]}


@pytest.fixture
def controller(namespace: str, kubeconfig: str, tmp_path: Path) -> Iterator[ControllerProcess]:
    """The kubedask controller with its default policy, watching only this test's namespace."""
    yield from running_controller(kubeconfig, [namespace], tmp_path, policy=None,
                                  extra_args=["--resync-interval", "5"])


@pytest.fixture
def worker_spec_controller(namespace: str, kubeconfig: str, tmp_path: Path) -> Iterator[ControllerProcess]:
    """The controller with the default policy plus worker-spec.yml's label key (:data:`WORKER_SPEC_POLICY`)."""
    yield from running_controller(kubeconfig, [namespace], tmp_path, policy=WORKER_SPEC_POLICY,
                                  extra_args=["--resync-interval", "5"])


@pytest.fixture
def cluster_config(namespace: str, kubeconfig: str) -> Iterator[None]:
    """Dask config so the seed's calls run verbatim in this test's namespace, with bounded waits."""
    with dask.config.set(
        {
            "kubernetes.namespace": namespace,
            "kubernetes.scheduler-service-wait-timeout": 180,
            "kubernetes.controller-timeout": 60,
            "kubernetes.client-heartbeat-timeout": 120,
            "distributed.comm.timeouts.connect": "60s",
        }
    ):
        yield


def service_account_kubeconfig(kubectl: Callable[..., str], namespace: str, name: str, path: Path) -> str:
    """A kubeconfig acting as ServiceAccount ``name`` (TokenRequest), for any cluster kubectl reaches."""
    kubectl("create", "serviceaccount", "-n", namespace, name)
    token = kubectl("create", "token", "-n", namespace, name, "--duration=1h").strip()
    admin = json.loads(kubectl("config", "view", "--raw", "--minify", "-o", "json"))
    cluster = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": name, "namespace": namespace}}],
        "current-context": "c",
    }
    path.write_text(json.dumps(config))
    return str(path)


def request_of(kubectl: Callable[..., str], namespace: str, name: str) -> dict[str, Any] | None:
    out = kubectl("get", "configmap", "-n", namespace, name, "-o", "json", "--ignore-not-found")
    return json.loads(out) if out.strip() else None


def pod_names(
    kubectl: Callable[..., str], namespace: str, name: str, component: str | None = None
) -> list[str]:
    selector = f"{spec.CLUSTER_NAME_LABEL}={name}" + (
        f",{spec.COMPONENT_LABEL}={component}" if component else ""
    )
    out = kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "jsonpath={.items[*].metadata.name}")
    return out.split()


def n_workers(cluster: KubeCluster) -> int:
    return len(cluster.scheduler_info["workers"])


@pytest.mark.realnode
def test_seed_quickstart_runs_with_only_the_import_changed(
    controller: object, cluster_config: None, real_node: str, kubectl: Callable[..., str], namespace: str
) -> None:
    pod_spec = make_pod_spec(
        image="ghcr.io/dask/dask:latest",
        memory_limit="1G",
        memory_request="256M",
        cpu_limit=1,
        cpu_request="100m",
    )

    cluster = KubeCluster(pod_spec)
    try:
        cluster.scale(10)  # specify number of workers explicitly
        wait_for("10 worker pods", lambda: len(pod_names(kubectl, namespace, cluster.name, "worker")) == 10, 120)
        cluster.scale(2)
        wait_for("2 worker pods", lambda: len(pod_names(kubectl, namespace, cluster.name, "worker")) == 2, 180)
        cluster.adapt(minimum=1, maximum=2)  # or dynamically scale based on current workload
        data = request_of(kubectl, namespace, cluster.name)["data"]  # type: ignore[index]
        assert json.loads(data["adapt"])["maximum"] == 2

        client = Client(cluster)
        array = da.ones((1000, 1000, 1000))
        assert array.mean().compute() == 1.0
        client.close()
    finally:
        cluster.close()
    assert request_of(kubectl, namespace, cluster.name) is None
    assert pod_names(kubectl, namespace, cluster.name) == []


@pytest.mark.realnode
def test_worker_spec_yaml_three_ways(
    worker_spec_controller: object,
    cluster_config: None,
    real_node: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kubectl: Callable[..., str],
    namespace: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("worker-spec.yml").write_text(WORKER_SPEC)

    def check(cluster: KubeCluster) -> None:
        with cluster:
            cluster.scale(1)
            with Client(cluster) as client:
                client.wait_for_workers(1, timeout=180)
                assert client.submit(lambda x: x + 1, 1).result() == 2
            worker = cluster.pods()[0]
            assert worker.metadata.labels["foo"] == "bar"

    check(KubeCluster("worker-spec.yml"))
    check(KubeCluster.from_yaml("worker-spec.yml"))
    with dask.config.set({"kubernetes.worker-template-path": "worker-spec.yml"}):
        check(KubeCluster())
    assert kubectl("get", "pods", "-n", namespace, "-o", "name") == ""


@pytest.mark.realnode
def test_local_deploy_mode_computes_with_workers_in_pods(
    worker_spec_controller: object,
    cluster_config: None,
    real_node: str,
    tmp_path: Path,
    kubectl: Callable[..., str],
    namespace: str,
) -> None:
    path = tmp_path / "worker-spec.yml"
    path.write_text(WORKER_SPEC)
    with KubeCluster.from_yaml(str(path), deploy_mode="local") as cluster:
        assert pod_names(kubectl, namespace, cluster.name, "scheduler") == []
        cluster.scale(2)
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=180)
            assert da.ones((200, 200, 200), chunks=(50, 200, 200)).mean().compute() == 1.0
            hosts = client.run(lambda: __import__("socket").gethostname())
        assert sorted(hosts.values()) == pod_names(kubectl, namespace, cluster.name, "worker")


@pytest.mark.realnode
def test_logs_pods_and_dashboard_are_real(
    controller: object, cluster_config: None, real_node: str, kubectl: Callable[..., str], namespace: str
) -> None:
    with KubeCluster(
        make_pod_spec(image="ghcr.io/dask/dask:latest", cpu_request="100m"), n_workers=1
    ) as cluster:
        cluster.wait_for_workers(1, timeout=180)
        pods = cluster.pods()
        assert [p.metadata.name for p in pods] == pod_names(kubectl, namespace, cluster.name, "worker")
        logs = cluster.get_logs()
        assert "Scheduler at" in logs["Scheduler"]
        worker = pods[0].metadata.name
        assert "Registered to" in logs[worker]
        assert "Start worker" in cluster.logs(pods[0])

        assert cluster.dashboard_link.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(cluster.dashboard_link.replace("/status", "/health"), timeout=30) as r:
            assert r.status == 200
        with urllib.request.urlopen(cluster.dashboard_link, timeout=30) as r:
            page = r.read().decode(errors="replace")
            assert r.status == 200
        # Without bokeh, distributed answers 200 with a "Dask needs bokeh" page instead of the dashboard.
        assert "Dask needs bokeh" not in page, "the Dask image lacks bokeh, so there is no real dashboard"


@pytest.mark.realnode
def test_reattach_by_name_and_scale(
    controller: object, cluster_config: None, real_node: str, kubectl: Callable[..., str], namespace: str
) -> None:
    with KubeCluster(make_pod_spec(image="ghcr.io/dask/dask:latest", cpu_request="100m")) as cluster:
        other = KubeCluster.from_name(cluster.name)
        other.scale(1)
        cluster.wait_for_workers(1, timeout=180)
        other.close()  # attached clusters are not deleted on close
        assert request_of(kubectl, namespace, cluster.name) is not None
        assert n_workers(cluster) == 1


@pytest.mark.realnode
def test_configmap_only_user_creates_scales_and_closes(
    controller: object,
    cluster_config: None,
    real_node: str,
    kubectl: Callable[..., str],
    namespace: str,
    tmp_path: Path,
) -> None:
    role = textwrap.dedent(f"""\
        apiVersion: rbac.authorization.k8s.io/v1
        kind: Role
        metadata: {{name: dask-user, namespace: {namespace}}}
        rules:
        - {{apiGroups: [""], resources: [configmaps],
            verbs: [get, list, watch, create, patch, update, delete]}}
        - {{apiGroups: [""], resources: [pods, services], verbs: [get, list]}}
        - {{apiGroups: [""], resources: [pods/log], verbs: [get]}}
        - {{apiGroups: [""], resources: [pods/portforward], verbs: [get, create]}}
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: RoleBinding
        metadata: {{name: dask-user, namespace: {namespace}}}
        roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: dask-user}}
        subjects: [{{kind: ServiceAccount, name: alice, namespace: {namespace}}}]
        """)
    path = service_account_kubeconfig(kubectl, namespace, "alice", tmp_path / "alice.kubeconfig")
    kubectl("apply", "-f", "-", input=role)
    assert kubectl(
        "auth", "can-i", "create", "pods", "-n", namespace, kubeconfig_path=path, check=False
    ).startswith("no")

    cluster = KubeCluster(
        make_pod_spec(image="ghcr.io/dask/dask:latest", cpu_request="100m"), auth=KubeConfig(path)
    )
    try:
        cluster.scale(2)
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=180)
            assert client.submit(sum, [1, 2, 3]).result() == 6
        assert len(cluster.get_logs()) == 4  # Cluster, Scheduler and two workers
    finally:
        cluster.close()
    assert request_of(kubectl, namespace, cluster.name) is None
    assert pod_names(kubectl, namespace, cluster.name) == []


@pytest.mark.realnode
def test_sigkilled_client_is_reaped_within_the_heartbeat_timeout(
    controller: object,
    real_node: str,
    kubectl: Callable[..., str],
    namespace: str,
    kubeconfig: str,
    tmp_path: Path,
) -> None:
    script = textwrap.dedent(f"""\
        import time
        from kubedask import KubeCluster, make_pod_spec
        cluster = KubeCluster(make_pod_spec(image="ghcr.io/dask/dask:latest", cpu_request="100m"),
                              namespace={namespace!r}, n_workers=1, client_heartbeat_timeout=20,
                              scheduler_service_wait_timeout=180, controller_timeout=60, quiet=True)
        print(cluster.name, flush=True)
        time.sleep(3600)
        """)
    env = {**os.environ, "KUBECONFIG": kubeconfig, "PYTHONPATH": f"{REPO}/client"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        name = proc.stdout.readline().strip()
        assert name, "the client process did not start its cluster"
        wait_for("a worker pod", lambda: pod_names(kubectl, namespace, name, "worker"), 180)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed = time.monotonic()
        wait_for("the request to be reaped", lambda: request_of(kubectl, namespace, name) is None, 20 + 60)
        wait_for("the pods to go", lambda: pod_names(kubectl, namespace, name) == [], 60)
        assert time.monotonic() - killed < 20 + 120
    finally:
        if proc.poll() is None:
            proc.kill()


def test_no_controller_is_reported_within_the_timeout(kubeconfig: str, namespace: str) -> None:
    started = time.monotonic()
    with pytest.raises(ControllerNotRespondingError, match="No kubedask controller acted on request"):
        KubeCluster(
            make_pod_spec(image="ghcr.io/dask/dask:latest"), namespace=namespace, controller_timeout=5
        )
    assert time.monotonic() - started < 30


@pytest.mark.realnode
def test_unpullable_image_is_reported_with_the_pod_event(
    controller: object, cluster_config: None, real_node: str, kubectl: Callable[..., str], namespace: str
) -> None:
    # pullPolicy Never makes the kubelet fail at once without asking any registry: a real pull attempt
    # would send a DNS query off this machine.
    pod = make_pod_spec(
        image="kubedask.local/no-such-image:1", extra_container_config={"imagePullPolicy": "Never"}
    )
    with pytest.raises(SchedulerStartError, match=r"ErrImageNeverPull|ErrImagePull|ImagePullBackOff") as info:
        KubeCluster(pod)
    assert "no-such-image" in str(info.value)
    wait_for("the failed request to be deleted",
             lambda: kubectl("get", "configmaps", "-n", namespace, "-l", spec.REQUEST_LABEL, "-o", "name") == "", 60)


def test_invalid_request_reports_the_controllers_message(controller: object, cluster_config: None) -> None:
    pod = make_pod_spec(image="ghcr.io/dask/dask:latest", extra_pod_config={"hostNetwork": True})
    with pytest.raises(RequestRejectedError, match=r"(?i)hostnetwork"):
        KubeCluster(pod)


def test_worker_spec_yml_under_the_default_policy_is_refused_with_both_fixes(
    controller: object, cluster_config: None, tmp_path: Path
) -> None:
    """Labels select pods into Services and NetworkPolicies, so the default allows only user.kubedask.io/*:
    the classic worker-spec.yml and make_pod_spec(labels=...) get the message saying how to get past it."""
    path = tmp_path / "worker-spec.yml"
    path.write_text(WORKER_SPEC)
    with pytest.raises(RequestRejectedError) as info:
        KubeCluster.from_yaml(str(path))
    message = str(info.value)
    assert "worker-template: metadata.labels['foo'] is \"bar\"" in message, message
    assert "Services and NetworkPolicies" in message and 'Rename it "user.kubedask.io/foo"' in message, message
    assert "Helm value policy.allowedPodLabels" in message, message
    with pytest.raises(RequestRejectedError, match=r"metadata\.labels\['app'\]"):
        KubeCluster(make_pod_spec(image="ghcr.io/dask/dask:latest", labels={"app": "payments"}))


@pytest.mark.realnode
def test_interpreter_exit_without_close_deletes_the_cluster(
    controller: object, real_node: str, kubectl: Callable[..., str], namespace: str, kubeconfig: str
) -> None:
    script = textwrap.dedent(f"""\
        from kubedask import KubeCluster, make_pod_spec
        cluster = KubeCluster(make_pod_spec(image="ghcr.io/dask/dask:latest", cpu_request="100m"),
                              namespace={namespace!r}, n_workers=1, scheduler_service_wait_timeout=180,
                              controller_timeout=60, quiet=True)
        print(cluster.name, flush=True)
        """)  # the script ends without cluster.close()
    env = {**os.environ, "KUBECONFIG": kubeconfig, "PYTHONPATH": f"{REPO}/client"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    name = done.stdout.strip()
    assert request_of(kubectl, namespace, name) is None
    wait_for("the pods to go", lambda: pod_names(kubectl, namespace, name) == [], 60)

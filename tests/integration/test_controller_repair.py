"""Nothing fools the controller: what it owns is repaired in seconds, a foreign object is never adopted,
safe live changes are applied, no client clock is trusted, and a scheduler that hangs on retire stops
neither the cluster's status nor its repair.

All on simulated nodes, except the hanging scheduler (it must really answer HTTP: the real node).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from controller_harness import (
    REPO,
    SIMULATED_NODES_POLICY,
    Cluster,
    ControllerProcess,
    metric_sum,
    running_controller,
    wait_for,
)
from kubedask.spec import HEARTBEAT_ANNOTATION, ClusterStatus, format_heartbeat

#: The issue's bound for a deleted owned object to be back.
REPAIR_SECONDS = 10


@pytest.fixture
def controller(kubeconfig: str, namespace: str, tmp_path: Path) -> Iterator[ControllerProcess]:
    # NodePort is allowed here: the live Service type change needs it (an admin's choice per cluster).
    policy = {**SIMULATED_NODES_POLICY, "allowedServiceTypes": ["ClusterIP", "NodePort"]}
    yield from running_controller(kubeconfig, [namespace], tmp_path, policy=policy)


@pytest.fixture
def cluster(api: Any, namespace: str) -> Cluster:
    return Cluster(api, namespace)


def uid_of(read: Callable[[], Any]) -> str | None:
    """The uid of what ``read`` returns, None if it is absent or being deleted."""
    try:
        obj = read()
    except Exception as exc:
        if getattr(exc, "status", None) == 404:
            return None
        raise
    return None if obj.metadata.deletion_timestamp else str(obj.metadata.uid)


def time_to_repair(what: str, read: Callable[[], Any], delete: Callable[[], Any], owner: str) -> float:
    """Delete an object and measure the seconds until one of the same name, a new one owned by the
    request, exists again."""
    old = uid_of(read)
    assert old, f"{what} does not exist before the test"
    started = time.monotonic()
    delete()

    def back() -> bool:
        uid = uid_of(read)
        return uid is not None and uid != old and [o.uid for o in read().metadata.owner_references] == [owner]

    wait_for(f"{what} to be recreated", back, timeout=60, interval=0.1)
    return time.monotonic() - started


def test_deleted_service_pdb_scheduler_and_worker_are_back_within_seconds(
        controller: ControllerProcess, cluster: Cluster, namespace: str) -> None:
    cluster.create_request("fix", workers=3)
    cluster.wait_phase("fix", "Running")
    owner = cluster.configmap("fix").metadata.uid
    core, policy = cluster.core, cluster.policy
    name = "fix-scheduler"
    figures = {
        "Service": time_to_repair("the Service", lambda: core.read_namespaced_service(name, namespace),
                                  lambda: core.delete_namespaced_service(name, namespace), owner),
        "PDB": time_to_repair("the PDB", lambda: policy.read_namespaced_pod_disruption_budget(name, namespace),
                              lambda: policy.delete_namespaced_pod_disruption_budget(name, namespace), owner),
        "scheduler pod": time_to_repair("the scheduler pod", lambda: core.read_namespaced_pod(name, namespace),
                                        lambda: core.delete_namespaced_pod(name, namespace), owner),
    }
    victim = cluster.worker_names("fix")[0]
    started = time.monotonic()
    core.delete_namespaced_pod(victim, namespace)
    wait_for("the deleted worker to be replaced", lambda: victim not in cluster.worker_names("fix")
             and len(cluster.running_workers("fix")) == 3 and len(cluster.worker_names("fix")) == 3,
             timeout=60, interval=0.1)
    figures["worker pod"] = time.monotonic() - started
    print("back after deletion: " + ", ".join(f"{k} {v:.1f}s" for k, v in figures.items()))
    slow = {k: round(v, 1) for k, v in figures.items() if v > REPAIR_SECONDS}
    assert not slow, f"not back within {REPAIR_SECONDS} s: {slow}"
    cluster.wait_phase("fix", "Running")


def test_a_foreign_scheduler_service_is_a_clear_failure_not_adopted(
        controller: ControllerProcess, cluster: Cluster, namespace: str) -> None:
    core: Any = cluster.core
    foreign = core.create_namespaced_service(namespace, {
        "metadata": {"name": "taken-scheduler", "labels": {"team": "theirs"}},
        "spec": {"selector": {"app": "theirs"}, "ports": [{"port": 80}]}})
    cluster.create_request("taken", workers=1)
    status = cluster.wait_phase("taken", "Failed", timeout=60)
    print(f"status message: {status.message}")
    assert "taken-scheduler" in status.message and "Service" in status.message, status.message
    service = core.read_namespaced_service("taken-scheduler", namespace)
    assert service.metadata.uid == foreign.metadata.uid
    assert not service.metadata.owner_references, "the controller adopted a Service it does not own"
    assert service.spec.selector == {"app": "theirs"} and [p.port for p in service.spec.ports] == [80]
    assert not cluster.pods("taken"), "nothing is created for a request that cannot have its Service"


def test_live_service_type_change_to_nodeport_is_applied_and_shows_the_external_address(
        controller: ControllerProcess, cluster: Cluster, namespace: str) -> None:
    cluster.create_request("expose", workers=1, scheduler_service_type="ClusterIP")
    status = cluster.wait_phase("expose", "Running")
    assert status.external_address is None
    started = time.monotonic()
    cluster.patch_data("expose", {"scheduler-service-type": "NodePort"})

    def exposed() -> tuple[Any, str] | None:
        service: Any = cluster.core.read_namespaced_service("expose-scheduler", namespace)
        status = cluster.status("expose")
        if service.spec.type != "NodePort" or status is None or not status.external_address:
            return None
        return service, status.external_address

    service, external = wait_for("the Service to become NodePort and the status to show it", exposed, timeout=60)
    node_ports = {p.port: p.node_port for p in service.spec.ports}
    print(f"NodePort after {time.monotonic() - started:.1f}s; externalAddress {external}; node ports {node_ports}")
    assert external.endswith(f":{node_ports[8786]}"), (external, node_ports)
    assert [o.uid for o in service.metadata.owner_references] == [cluster.configmap("expose").metadata.uid]


class Heartbeat(threading.Thread):
    """A client renewing its heartbeat every ``every`` seconds with a clock ``skew`` off the real one."""

    def __init__(self, cluster: Cluster, name: str, skew: dt.timedelta, every: float = 2.0) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{name}")
        self.cluster, self.request, self.skew, self.every = cluster, name, skew, every
        self.stopped = threading.Event()
        self.last_beat = 0.0

    def beat(self) -> None:
        value = format_heartbeat(dt.datetime.now(dt.UTC) + self.skew)
        self.cluster.core.patch_namespaced_config_map(self.request, self.cluster.namespace, {
            "metadata": {"annotations": {HEARTBEAT_ANNOTATION: value}}})
        self.last_beat = time.monotonic()

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            self.beat()


def test_heartbeats_an_hour_ahead_or_behind_are_handled_like_a_correct_one(
        controller: ControllerProcess, cluster: Cluster) -> None:
    timeout = 15
    clients = {name: Heartbeat(cluster, name, skew) for name, skew in (
        ("correct", dt.timedelta(0)), ("ahead", dt.timedelta(hours=1)), ("behind", dt.timedelta(hours=-1)))}
    for name, client in clients.items():
        cluster.create_request(name, workers=1, client_heartbeat_timeout=timeout)
        client.beat()
        client.start()
    for name in clients:
        cluster.wait_phase(name, "Running")
    # Renewed for twice the timeout: every client is alive, whatever its clock says.
    kept_until = time.monotonic() + 2 * timeout
    while time.monotonic() < kept_until:
        gone = [n for n in clients if cluster.configmap(n) is None]
        assert not gone, f"reaped although its client renews its heartbeat: {gone}"
        time.sleep(1)  # the observation period itself, not a synchronisation
    for client in clients.values():
        client.stopped.set()
    for client in clients.values():
        client.join(10)
    # Then silence: every cluster goes, each about `timeout` after its last renewal.
    reaped: dict[str, float] = {}

    def all_reaped() -> bool:
        for name, client in clients.items():
            if name not in reaped and cluster.configmap(name) is None:
                reaped[name] = time.monotonic() - client.last_beat
        return len(reaped) == len(clients)

    wait_for("every silent client's cluster to be reaped", all_reaped, timeout=timeout * 4, interval=0.5)
    print("reaped after the last heartbeat: " + ", ".join(f"{n} {s:.1f}s" for n, s in reaped.items()))
    for name, seconds in reaped.items():
        assert timeout - 1 <= seconds <= timeout * 3, (name, seconds)
    assert max(reaped.values()) - min(reaped.values()) < timeout, reaped


# --- a scheduler that hangs on retire (real node) -----------------------------------------------------

WORKER_SPEC = (REPO / "examples" / "worker-spec.yml").read_text()
IMAGE = yaml.safe_load(WORKER_SPEC)["spec"]["containers"][0]["image"]

#: Healthy on /health (so the pod is Ready and the controller asks it), answers the other questions like
#: an idle scheduler, and never answers /api/v1/retire_workers.
HANGING_SCHEDULER = r'''
import json, os, signal, socketserver, threading
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
ANSWERS = {"/api/v1/adaptive_target": {"workers": 0}, "/api/v1/check_idle": {"idle_since": None}}

class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        request = self.rfile.readline().decode(errors="replace")
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        path = request.split(" ")[1] if " " in request else "/"
        if path.startswith("/api/v1/retire_workers"):
            print("retire_workers asked: hanging", flush=True)
            threading.Event().wait()
        body = json.dumps(ANSWERS.get(path.split("?")[0], {})).encode() if path.startswith("/api/") else b"ok"
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n" % len(body) + body)

class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

Server(("", 8787), Handler).serve_forever()
'''

SMALL = {"requests": {"cpu": "10m", "memory": "16M"}, "limits": {"cpu": "100m", "memory": "64M"}}
HANGING_TEMPLATE = yaml.safe_dump({"kind": "Pod", "spec": {"restartPolicy": "Never", "containers": [{
    "name": "dask-scheduler", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
    "command": ["python3", "-u", "-c", HANGING_SCHEDULER], "resources": SMALL}]}})
#: Workers that only have to exist and stop fast (their scheduler is no Dask scheduler).
SLEEPER = yaml.safe_dump({"kind": "Pod", "spec": {"restartPolicy": "Never", "containers": [{
    "name": "sleeper", "image": IMAGE, "imagePullPolicy": "IfNotPresent", "resources": SMALL,
    "command": ["python3", "-c", "import os, signal; signal.signal(signal.SIGTERM, lambda *_: os._exit(0)); "
                "signal.pause()"]}]}})


@pytest.mark.realnode
def test_scale_down_whose_scheduler_hangs_on_retire_keeps_status_and_deletes_only_the_excess(
        controller: ControllerProcess, cluster: Cluster, namespace: str, real_node: str,
        kubectl: Callable[..., str]) -> None:
    cluster.create_raw_request("hang", {"workers": "4", "worker-template": SLEEPER,
                                        "scheduler-template": HANGING_TEMPLATE})
    cluster.wait_phase("hang", "Running", timeout=240)
    assert len(cluster.wait_workers("hang", 4, timeout=180)) == 4
    deleted_before = metric_sum(controller.metrics(), "kubedask_pods_deleted_total")
    cluster.patch_data("hang", {"workers": "2"})
    wait_for("the scheduler to be asked to retire workers",
             lambda: "retire_workers asked" in kubectl("logs", "-n", namespace, "hang-scheduler"), timeout=60)

    # While the retire hangs, the cluster's loop goes on: the status says what was asked, and a worker
    # deleted by hand shows in it within seconds.
    def asked() -> ClusterStatus | None:
        status = cluster.status("hang")
        return status if status is not None and status.workers.requested == 2 else None

    status = wait_for("the status to show the scale-down asked for", asked, timeout=30)
    assert status.workers.created == 4, status  # nothing deleted yet: the retire hangs
    victim = cluster.worker_names("hang")[0]
    cluster.core.delete_namespaced_pod(victim, namespace)
    started = time.monotonic()
    def counted() -> ClusterStatus | None:
        now = cluster.status("hang")
        return now if now is not None and now.workers.created == 3 else None

    try:
        wait_for("the status to count the worker deleted by hand", counted, timeout=20)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nstatus now: {cluster.status('hang')}\nworkers: {cluster.worker_names('hang')}"
                             f"\ncontroller log:\n{controller.log_tail(30)}") from None
    print(f"status updated {time.monotonic() - started:.1f}s after a manual delete, retire still hanging")

    # The fallback, when it comes, deletes only what is still in excess: one pod (4 - 1 by hand - 2 kept).
    started = time.monotonic()
    survivors = cluster.wait_workers("hang", 2, timeout=400)
    deleted = metric_sum(controller.metrics(), "kubedask_pods_deleted_total") - deleted_before
    print(f"scale-down done {time.monotonic() - started:.1f}s later; the controller deleted {deleted:.0f} pod(s); "
          f"survivors {survivors}")
    assert deleted == 1, f"deleted {deleted} pods; only 1 was in excess"
    final = cluster.wait_phase("hang", "Running", requested=2, timeout=60)
    assert (final.workers.created, final.workers.running) == (2, 2)

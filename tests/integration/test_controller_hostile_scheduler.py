"""On the real node: schedulers that answer the controller's HTTP questions hostilely.

Each hostile cluster's scheduler-template runs a small server (the local Dask image's python3) that is
healthy on /health (so the pod is Ready and the controller asks it) and, on /api/v1/*, sends an endless
body, garbage, a slow drip, or nothing at all. One controller serves them and a normal cluster: its memory
stays bounded, the normal cluster keeps reconciling, each hostile cluster's status says what went wrong,
and the fallbacks hold (adapt keeps its target, an unknown idle time never shuts a cluster down, pods are
deleted without retiring when the scheduler cannot retire them).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from controller_harness import REPO, Cluster, ControllerProcess, wait_for
from kubedask.spec import Condition

pytestmark = pytest.mark.realnode
WORKER_SPEC = (REPO / "examples" / "worker-spec.yml").read_text()
IMAGE = yaml.safe_load(WORKER_SPEC)["spec"]["containers"][0]["image"]

HOSTILE_SERVER = r'''
import os, signal, socketserver, sys, time
MODE = os.environ["HOSTILE"]
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))

class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock, head = self.request, b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                return
            head += chunk
        path = head.split(b" ", 2)[1].decode(errors="replace")
        if not path.startswith("/api/v1"):  # the readiness probe: healthy
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            return
        sent = 0
        try:
            if MODE == "huge":  # an endless JSON-looking body, no length announced
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
                block = b'{"workers": [' * 4096
                while True:
                    sock.sendall(block)
                    sent += len(block)
            elif MODE == "garbage":  # a well-formed reply whose body is binary noise
                body = bytes(range(256)) * 8
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                             b"Connection: close\r\n\r\n" % len(body) + body)
                sent = len(body)
            elif MODE == "drip":  # headers, then a byte a second, forever
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
                while True:
                    sock.sendall(b" ")
                    sent += 1
                    time.sleep(1)
            elif MODE == "silent":  # accept, read, never answer
                while sock.recv(4096):
                    pass
        except OSError:
            pass
        print(f"{MODE} {path}: sent {sent} bytes before the client hung up", flush=True)

class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

Server(("", 8787), Handler).serve_forever()
'''

#: What each hostile cluster's SchedulerAPI condition must say (adaptive_target or check_idle, whichever
#: was asked last).
EXPECTED = {
    "huge": r"answered /(adaptive_target|check_idle) with a body over \d+ bytes",
    "garbage": r"answered /(adaptive_target|check_idle) with something that is not JSON",
    "drip": r"did not answer /(adaptive_target|check_idle) within 10 s",
    "silent": r"did not answer /(adaptive_target|check_idle) within 10 s",
}
#: The controller's resident memory may grow this much while it serves the hostile schedulers.
RSS_GROWTH_LIMIT_KIB = 64 * 1024


def hostile_scheduler_template(mode: str) -> str:
    return yaml.safe_dump({"kind": "Pod", "spec": {
        "restartPolicy": "Never",
        "containers": [{
            "name": "dask-scheduler", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
            "command": ["python3", "-u", "-c", HOSTILE_SERVER], "env": [{"name": "HOSTILE", "value": mode}],
            "resources": {"requests": {"cpu": "10m", "memory": "32M"}, "limits": {"cpu": "200m", "memory": "64M"}},
        }]}})


#: A worker that is no Dask worker (its scheduler is no Dask scheduler): it only has to exist and stop fast.
SLEEPER = yaml.safe_dump({"kind": "Pod", "spec": {
    "restartPolicy": "Never",
    "containers": [{
        "name": "sleeper", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "-c", "import os, signal; signal.signal(signal.SIGTERM, lambda *_: os._exit(0)); "
                    "signal.pause()"],
        "resources": {"requests": {"cpu": "10m", "memory": "16M"}, "limits": {"cpu": "100m", "memory": "64M"}},
    }]}})


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def scheduler_api(cluster: Cluster, name: str) -> Condition | None:
    status = cluster.status(name)
    return status.condition("SchedulerAPI") if status else None


def unanswered(cluster: Cluster, name: str) -> Callable[[], Condition | None]:
    def probe() -> Condition | None:
        condition = scheduler_api(cluster, name)
        return condition if condition and condition.status == "False" else None
    return probe


def test_hostile_schedulers_leave_the_controller_healthy_and_say_what_went_wrong(
        controller: ControllerProcess, namespace: str, api: Any, kubectl: Callable[..., str]) -> None:
    cluster = Cluster(api, namespace)
    assert controller.proc is not None
    pid = controller.proc.pid
    before = memory_kib(pid)

    adapt = {"minimum": 0, "maximum": 2, "interval": 2}
    for mode in EXPECTED:
        # "huge" also keeps one (sleeper) worker, so that later its scheduler is asked to retire it.
        cluster.create_raw_request(mode, {
            "adapt": json.dumps({**adapt, "minimum": 1} if mode == "huge" else adapt),
            "idle-timeout": "30", "worker-template": SLEEPER if mode == "huge" else WORKER_SPEC,
            "scheduler-template": hostile_scheduler_template(mode)})
    cluster.create_raw_request("normal", {"workers": "1", "idle-timeout": "3600", "worker-template": WORKER_SPEC})

    for mode, pattern in EXPECTED.items():
        condition = wait_for(f"{mode}'s SchedulerAPI condition", unanswered(cluster, mode), 180)
        assert condition.reason == "SchedulerUnanswered"
        assert re.search(pattern, condition.message), (mode, condition.message)
        print(f"{mode}: {condition.message}")

    # The normal cluster reconciles throughout: it runs, answers, and scales.
    cluster.wait_phase("normal", "Running", timeout=240)
    cluster.patch_data("normal", {"workers": "2"})
    assert len(cluster.wait_workers("normal", 2, timeout=180)) == 2
    answered = wait_for("normal's SchedulerAPI condition", lambda: scheduler_api(cluster, "normal"), 60)
    assert answered is not None
    assert answered.status == "True", answered

    # Hold the hostile schedulers for a while: several rounds of questions, each failing differently.
    started = time.monotonic()
    while time.monotonic() - started < 60:
        assert controller.healthy()
        time.sleep(5)
    after = memory_kib(pid)
    print(f"controller memory (KiB): before {before}, after {after}, growth {after['VmRSS'] - before['VmRSS']}")
    assert after["VmRSS"] - before["VmRSS"] < RSS_GROWTH_LIMIT_KIB
    assert after["VmHWM"] - before["VmRSS"] < RSS_GROWTH_LIMIT_KIB  # the peak too, not just the end

    # Fallbacks: adapt held the targets (the bounds' minimum), and an unknown idle time reaped nothing
    # although idle-timeout (30 s) has long passed.
    assert cluster.worker_names("huge") and not cluster.worker_names("garbage")
    for mode in EXPECTED:
        assert cluster.configmap(mode) is not None, f"{mode} was shut down on an unknown idle time"

    # Scaling the "huge" cluster down asks its scheduler to retire a worker: refused, the pod goes anyway.
    cluster.core.patch_namespaced_config_map("huge", namespace, {"data": {"adapt": None, "workers": "0"}})
    wait_for("huge's worker pod to be deleted", lambda: not cluster.worker_names("huge"), 120)
    refusals = [e.message for e in cluster.events("huge") if e.reason == "RetireFailed"]
    assert refusals and "with a body over" in refusals[0], refusals
    logs = kubectl("logs", "-n", namespace, "huge-scheduler")
    print("huge scheduler's log (tail):", *logs.splitlines()[-3:], sep="\n  ")
    assert controller.healthy()

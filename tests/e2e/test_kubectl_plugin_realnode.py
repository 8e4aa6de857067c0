"""``kubectl dask`` and dask-ctl discovery on the real node, as a user holding only the kubedask user role:
the scheduler's and a worker's logs, ``--job`` on a cluster without a job, the dashboard forwarded through
the API server answering 200 until Ctrl-C, and dask-ctl's way of scaling and deleting a discovered
cluster (``from_name(name)`` inside its event loop, ``scale``, ``close``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.controller_harness import (
    REPO,
    Cluster,
    ControllerProcess,
    kubedask_user,
    running_controller,
    wait_for,
)

pytestmark = pytest.mark.realnode
PYTHONPATH = os.pathsep.join(str(REPO / p) for p in ("client", "controller", "."))
WORKER_SPEC = (REPO / "examples" / "worker-spec.yml").read_text()


@pytest.fixture
def controller(kubeconfig: str, namespace: str, tmp_path: Path, real_node: str) -> Iterator[ControllerProcess]:
    yield from running_controller(kubeconfig, [namespace], tmp_path)


@pytest.fixture
def user(namespace: str, kubectl: Callable[..., str], user_kubeconfig: Callable[[str, str], str]) -> str:
    return kubedask_user(kubectl, user_kubeconfig, namespace)


@pytest.fixture
def running(controller: ControllerProcess, api: Any, namespace: str, kubectl: Callable[..., str]) -> Cluster:
    """The request ``demo`` (one worker from the classic worker-spec.yml), Running with its worker ready."""
    manifest = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "demo", "labels": {"kubedask.io/request": "cluster"}},
                "data": {"workers": "1", "worker-template": WORKER_SPEC}}
    kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))
    cluster = Cluster(api, namespace)
    wait_for("demo to run one ready worker",
             lambda: (s := cluster.status("demo")) is not None and s.phase == "Running" and s.workers.ready == 1,
             timeout=420)  # the machine's 2 cores are shared by every test session
    return cluster


def plugin_command(kubeconfig: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "kubedask.cli", *args, "--kubeconfig", kubeconfig]


def plugin(kubeconfig: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": PYTHONPATH, "NO_COLOR": "1"}
    return subprocess.run(plugin_command(kubeconfig, *args), capture_output=True, text=True, env=env, timeout=120,
                          cwd=REPO)


def test_logs_and_dashboard_as_a_user_role_account(running: Cluster, user: str, namespace: str) -> None:
    scheduler = plugin(user, "logs", "demo", "-n", namespace)
    assert scheduler.returncode == 0, scheduler.stderr
    assert "Scheduler at:" in scheduler.stdout
    worker = running.worker_names("demo")[0]
    suffix = worker.rsplit("-", 1)[1]
    # A ready pod may not have registered with the scheduler yet: the log shows it once it has.
    worker_log = wait_for("the worker's log to show its registration", lambda: (
        result if "Registered to:" in (result := plugin(user, "logs", "demo", "--worker", suffix, "-n", namespace,
                                                        "--tail", "200")).stdout else None), timeout=120, interval=2)
    assert worker_log.returncode == 0, worker_log.stderr
    job = plugin(user, "logs", "demo", "--job", "-n", namespace)
    assert job.returncode == 1 and job.stderr.count("\n") == 1 and "has no job" in job.stderr

    env = {**os.environ, "PYTHONPATH": PYTHONPATH, "NO_COLOR": "1"}
    proc = subprocess.Popen(plugin_command(user, "dashboard", "demo", "-n", namespace), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith(f"Dashboard of {namespace}/demo: http://127.0.0.1:"), (line, proc.stderr)
        link = line.split(": ", 1)[1].strip()
        with urllib.request.urlopen(link, timeout=60) as response:
            assert response.status == 200
            assert b"Dask" in response.read()
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_dask_ctl_discovers_scales_and_deletes_the_cluster(
        running: Cluster, user: str, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from kubedask.discovery import discover

    monkeypatch.setenv("KUBECONFIG", user)

    async def get_cluster(name: str) -> Any:
        # dask_ctl.lifecycle.get_cluster: discover, then cls.from_name(name) called inside its event loop.
        async for found, cls in discover():
            if found == name:
                return cls.from_name(name)
        raise AssertionError(f"discovery did not find {name}")

    cluster = asyncio.run(get_cluster(f"{namespace}/demo"))
    try:
        assert cluster.name == f"{namespace}/demo"
        cluster.scale(2)  # dask_ctl.lifecycle.scale_cluster
        wait_for("the scheduler to see 2 workers", lambda: len(cluster.scheduler_info["workers"]) == 2, timeout=240)
        assert running.status("demo").workers.requested == 2  # type: ignore[union-attr]
    finally:
        cluster.close()  # dask_ctl.lifecycle.delete_cluster
    wait_for("the request to be deleted", lambda: running.configmap("demo") is None, timeout=60)

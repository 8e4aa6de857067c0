"""The chaos controls of the local cluster (pause, resume, restart), on stand-in processes: no cluster."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from devcluster import controlplane, processes
from devcluster.cluster import Cluster, Ports
from devcluster.processes import ComponentError, Processes

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def procs(tmp_path: Path) -> Processes:
    return Processes(tmp_path)


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    monkeypatch.setenv("KUBEDASK_STATE", str(tmp_path))
    return Cluster(name="c", ports=Ports.pick(), real_node=False, simulated_nodes=0)


def test_a_paused_component_is_stopped_until_resumed(procs: Processes) -> None:
    pid = procs.start("etcd", SLEEPER)
    try:
        procs.pause("etcd")
        assert processes.is_stopped(pid)
        procs.resume("etcd")
        assert not processes.is_stopped(pid)
        assert procs.alive("etcd")
    finally:
        procs.stop("etcd")


def test_stopping_a_paused_component_does_not_wait_for_the_kill(procs: Processes) -> None:
    pid = procs.start("kube-apiserver", SLEEPER)
    procs.pause("kube-apiserver")
    procs.stop("kube-apiserver", timeout=30)  # SIGTERM reaches it: woken up, it exits at once
    assert not processes.is_running(pid)
    assert procs.pid("kube-apiserver") is None


def test_pausing_a_component_that_is_not_running_names_it(procs: Processes) -> None:
    with pytest.raises(ComponentError, match="kwok is not running"):
        procs.pause("kwok")


def test_only_control_plane_components_can_be_restarted(cluster: Cluster) -> None:
    with pytest.raises(ValueError, match=r"cannot restart 'kwok'; restartable: etcd, kube-apiserver"):
        controlplane.restart(cluster, "kwok")


def test_restart_stops_then_starts_and_retries_a_port_taken_meanwhile(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    starts: list[int] = []

    def start(c: Cluster) -> None:
        starts.append(c.processes.start("etcd", SLEEPER))
        if len(starts) == 1:
            raise ComponentError("etcd exited during start-up; ...\nbind: address already in use")

    old = cluster.processes.start("etcd", SLEEPER)
    monkeypatch.setitem(controlplane.RESTARTABLE, "etcd", start)
    try:
        controlplane.restart(cluster, "etcd", hard=True)
        assert not processes.is_running(old)
        assert len(starts) == 2 and not processes.is_running(starts[0])
        assert cluster.processes.pid("etcd") == starts[1] and cluster.processes.alive("etcd")
    finally:
        cluster.processes.stop("etcd", timeout=0)


def test_restart_gives_up_on_any_other_start_failure(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[Cluster] = []

    def start(c: Cluster) -> None:
        attempts.append(c)
        raise ComponentError("etcd did not become healthy within 30s")

    monkeypatch.setitem(controlplane.RESTARTABLE, "etcd", start)
    with pytest.raises(ComponentError, match="did not become healthy"):
        controlplane.restart(cluster, "etcd")
    assert len(attempts) == 1

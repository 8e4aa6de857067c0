"""Bring a local-cluster instance up, report on it, and take it down again."""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from collections.abc import Iterator

from devcluster import build, controlplane, kwok
from devcluster.cluster import Cluster, Ports
from devcluster.processes import ComponentError

DEFAULT_NAME = "kubedask"
# Stopped in this order: consumers of the API first, etcd last.
STOP_ORDER = ("kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd")


def say(message: str) -> None:
    print(f"devcluster: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def step(what: str) -> Iterator[None]:
    started = time.monotonic()
    say(f"{what} ...")
    yield
    say(f"{what}: done in {time.monotonic() - started:.1f}s")


def is_up(cluster: Cluster) -> bool:
    health = controlplane.health(cluster)
    return all(v == "ok" for v in health.values()) and cluster.processes.alive("kwok")


def up(name: str = DEFAULT_NAME, nodes: int = 3, real_node: bool = True) -> Cluster:
    """Start an instance (or return the healthy one already running under that name)."""
    existing = Cluster.load(name)
    if existing is not None:
        if is_up(existing) and existing.real_node == real_node:
            say(f"cluster {name!r} is already up")
            return existing
        say(f"cleaning up the leftovers of an earlier run of {name!r}")
        down(name)
    if not 0 <= nodes <= kwok.MAX_NODES:
        raise ValueError(f"--nodes must be between 0 and {kwok.MAX_NODES}, got {nodes}")

    with step("building binaries (cached after the first run)"):
        build.build()
    started = time.monotonic()
    cluster = Cluster(name=name, ports=Ports.pick(), real_node=real_node, simulated_nodes=nodes)
    cluster.save()
    if real_node:
        from devcluster import node

        node.claim(cluster)  # fails fast, naming the instance that holds this machine's real node
    try:
        with step("starting the control plane (etcd, kube-apiserver, controller-manager, scheduler)"):
            controlplane.start(cluster)
        with step(f"starting KWOK and {nodes} simulated node(s)"):
            kwok.start(cluster)
            kwok.register_nodes(cluster, nodes)
        if real_node:
            from devcluster import node  # the real node's runtime is only needed when asked for

            with step("starting the real node (containerd, kubelet, kube-proxy, CoreDNS)"):
                node.start_real_node(cluster)
    except BaseException:
        say(f"start-up failed; stopping what was started (logs kept in {cluster.dir / 'logs'})")
        stop_processes(cluster, keep_state=True)
        raise
    say(f"cluster {name!r} is up in {time.monotonic() - started:.1f}s")
    say(f"use it with:  export KUBECONFIG={cluster.kubeconfig}")
    return cluster


def stop_processes(cluster: Cluster, keep_state: bool = False) -> None:
    owns_node_address = False
    if cluster.real_node:
        from devcluster import node

        # Only the instance holding the real node may remove the shared node address.
        owns_node_address = node.owns_host_network(cluster)
        try:
            node.stop_real_node(cluster)
        except Exception as error:
            say(f"stopping the real node failed: {error}")
    procs = cluster.processes
    names = [n for n in STOP_ORDER if n in procs.names()]
    names = [n for n in procs.names() if n not in names] + names  # unknown extras go first
    for name in names:
        procs.stop(name)
    if owns_node_address:
        controlplane.remove_node_address()
    if not keep_state:
        shutil.rmtree(cluster.dir, ignore_errors=True)


def down(name: str = DEFAULT_NAME) -> bool:
    """Stop every process the instance started and remove its state. False if there was none."""
    cluster = Cluster.load(name)
    if cluster is None:
        return False
    started = time.monotonic()
    stop_processes(cluster)
    say(f"cluster {name!r} is down ({time.monotonic() - started:.1f}s)")
    return True


def status(name: str = DEFAULT_NAME) -> dict[str, str]:
    cluster = Cluster.load(name)
    if cluster is None:
        return {}
    result = controlplane.health(cluster)
    result["kwok"] = "ok" if cluster.processes.alive("kwok") else "not running"
    if cluster.real_node:
        from devcluster import node

        result.update(node.health(cluster))
    if result.get("kube-apiserver") == "ok":
        try:
            out = cluster.kubectl(
                "get", "nodes", "-o",
                "jsonpath={range .items[*]}{.metadata.name}="
                "{.status.conditions[?(@.type=='Ready')].status}{'\\n'}{end}",
            )
            lines = [line for line in out.splitlines() if line]
            ready = sum(1 for line in lines if line.endswith("=True"))
            result["nodes"] = f"{ready}/{len(lines)} Ready"
        except RuntimeError as error:
            result["nodes"] = f"unknown: {error}"
    return result


def healthy(health: dict[str, str]) -> bool:
    """Every component "ok" and every node Ready ("3/3 Ready")."""
    nodes = health.get("nodes", "")
    ready, _, total = nodes.partition(" ")[0].partition("/")
    return bool(health) and ready == total and all(v == "ok" for k, v in health.items() if k != "nodes")


__all__ = ["DEFAULT_NAME", "ComponentError", "down", "status", "up"]

"""Simulated nodes: KWOK plays the kubelet for nodes annotated ``kwok.x-k8s.io/node=fake``.

Simulated nodes carry the taint ``kwok.x-k8s.io/node=fake:NoSchedule``, so only pods that tolerate it
(scale tests) land there; everything else goes to the real node.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from devcluster import build, versions
from devcluster.cluster import Cluster

FAKE_ANNOTATION = "kwok.x-k8s.io/node"
FAKE_TAINT = {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}
POD_CIDR = "10.245.0.0/16"  # pod IPs KWOK hands out; never routed anywhere
GPU_RESOURCE = "nvidia.com/gpu"
MAX_NODES = 1000

# The stages (fake kubelet behaviour) KWOK v0.8 ships in its module instead of building them in.
STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)


def stage_files() -> list[Path]:
    # `go mod download` is a no-op when the module is cached, and prints where it lives.
    proc = subprocess.run(
        ["go", "mod", "download", "-json", f"sigs.k8s.io/kwok@{versions.KWOK}"], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"could not fetch the KWOK module for its stage files: {proc.stdout}{proc.stderr}")
    root = Path(json.loads(proc.stdout)["Dir"]) / "kustomize" / "stage"
    files = [root / s for s in STAGES]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"KWOK stage files missing (is the kwok module downloaded?): {missing}")
    return files


def node_manifest(index: int) -> dict[str, object]:
    name = f"kwok-node-{index}"
    capacity = {"cpu": "1000", "memory": "4Ti", "pods": "1000"}
    if index == 0:
        capacity[GPU_RESOURCE] = "8"  # one node advertises GPUs for GPU scheduling tests
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {FAKE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
        },
        "spec": {"taints": [FAKE_TAINT]},
        "status": {"capacity": capacity, "allocatable": capacity},
    }


def keep_simulated_pod_ips_local() -> None:
    """Make simulated pod IPs unreachable instead of routed to the default gateway.

    Nothing answers on them, but a client that tries (the controller asking a simulated scheduler) must
    fail at once on this machine rather than send packets off it. Idempotent; harmless to leave behind.
    """
    subprocess.run(["ip", "route", "replace", "unreachable", POD_CIDR], check=True, capture_output=True)


def start(cluster: Cluster) -> None:
    keep_simulated_pod_ips_local()
    kubeconfig = cluster.component_kubeconfig("kwok")
    argv: list[str | Path] = [
        build.binary("kwok"),
        "--kubeconfig", kubeconfig,
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={FAKE_ANNOTATION}=fake",
        "--cidr", POD_CIDR,
        "--node-ip", "10.245.255.254",
        "--server-address", f"127.0.0.1:{cluster.ports.kwok}",
        "--node-lease-duration-seconds", "40",
    ]
    for stage in stage_files():
        argv += ["--config", stage]
    cluster.processes.start("kwok", argv)
    cluster.processes.wait_healthy("kwok", lambda: _kwok_healthy(cluster), timeout=30)


def _kwok_healthy(cluster: Cluster) -> bool:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{cluster.ports.kwok}/healthz", timeout=2) as response:
        return bool(response.status == 200)


def register_nodes(cluster: Cluster, count: int) -> None:
    if not 0 <= count <= MAX_NODES:
        raise ValueError(f"--nodes must be between 0 and {MAX_NODES}, got {count}")
    if count == 0:
        return
    items = [node_manifest(i) for i in range(count)]
    node_list = {"apiVersion": "v1", "kind": "List", "items": items}
    cluster.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(node_list))
    cluster.kubectl("wait", "--for=condition=Ready", "node", "-l", "type=kwok", "--timeout=120s")


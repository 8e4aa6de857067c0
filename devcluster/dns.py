"""Cluster DNS for the real node: CoreDNS as a host process, reachable from pods at the DNS Service IP.

CoreDNS listens on the node address (a host-only address pods reach by local delivery). The usual
`kube-system/kube-dns` Service keeps the cluster DNS IP allocated and, through a selector-less
EndpointSlice pointing at the node address, kube-proxy routes the pods' queries to CoreDNS.
Only cluster.local (and the reverse zones) are served: there is no upstream forwarder, because
nothing from the local cluster may leave this machine.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

from devcluster import build
from devcluster.cluster import CLUSTER_DNS_IP, NODE_IP, Cluster, free_port

CLUSTER_DOMAIN = "cluster.local"
PROCESS = "coredns"


def corefile(kubeconfig: Path, health_port: int, ready_port: int) -> str:
    return f"""\
{CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {NODE_IP}
    errors
    health 127.0.0.1:{health_port}
    ready 127.0.0.1:{ready_port}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
}}
"""


def start_coredns(cluster: Cluster, workdir: Path) -> int:
    """Start CoreDNS; returns its readiness port (ready once the kubernetes plugin has synced)."""
    workdir.mkdir(parents=True, exist_ok=True)
    ready_port = free_port()
    path = workdir / "Corefile"
    # The admin kubeconfig: CoreDNS only reads Services, EndpointSlices, Pods and Namespaces here.
    path.write_text(corefile(cluster.kubeconfig, free_port(), ready_port))
    cluster.processes.start(PROCESS, [build.binary("coredns"), "-conf", path, "-dns.port", "53"])
    return ready_port


def resolves(name: str) -> bool:
    """A minimal A query to CoreDNS on the node address: True when it answers with a record."""
    query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    for label in name.rstrip(".").split("."):
        query += bytes([len(label)]) + label.encode()
    query += b"\x00\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1.0)
        sock.sendto(query, (NODE_IP, 53))
        answer = sock.recv(512)
    return answer[:2] == b"\x12\x34" and answer[3] & 0x0F == 0 and int.from_bytes(answer[6:8], "big") > 0


def service_manifests() -> list[dict[str, object]]:
    """kube-system/kube-dns (ClusterIP = the cluster DNS IP) and its EndpointSlice to the node address."""
    ports = [("dns", "UDP"), ("dns-tcp", "TCP")]
    labels = {
        "k8s-app": "kube-dns",
        "kubernetes.io/name": "CoreDNS",
        "app.kubernetes.io/managed-by": "devcluster",
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
            "spec": {
                "clusterIP": CLUSTER_DNS_IP,
                "ports": [{"name": n, "port": 53, "protocol": p, "targetPort": 53} for n, p in ports],
            },
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "kube-dns-host",
                "namespace": "kube-system",
                "labels": {
                    **labels,
                    "kubernetes.io/service-name": "kube-dns",
                    # Not the endpointslice controller's: it leaves slices it doesn't manage alone.
                    "endpointslice.kubernetes.io/managed-by": "devcluster.kubedask.io",
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True}}],
            "ports": [{"name": n, "port": 53, "protocol": p} for n, p in ports],
        },
    ]


def ensure_service(cluster: Cluster) -> None:
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": service_manifests()})
    proc = subprocess.run(
        [str(build.binary("kubectl")), "--kubeconfig", str(cluster.kubeconfig), "apply", "-f", "-"],
        input=manifest,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"creating the kube-dns Service failed: {proc.stderr.strip()}")

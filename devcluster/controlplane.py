"""The control plane: etcd, kube-apiserver, kube-controller-manager and kube-scheduler as host processes."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from devcluster import build, pki
from devcluster.cluster import (
    KUBERNETES_SERVICE_IP,
    NODE_BRIDGE,
    NODE_IP,
    POD_CIDR,
    SERVICE_CIDR,
    Cluster,
)
from devcluster.processes import ComponentError

# Metadata-level audit of every request (user, user agent, verb, resource), so tests and benchmarks
# can prove from the API server's own record what a client did; nodes' lease renewals are left out.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "None", "resources": [{"group": "coordination.k8s.io", "resources": ["leases"]}],
         "namespaces": ["kube-node-lease"]},
        {"level": "Metadata"},
    ],
}


def _insecure_get(url: str, cert: tuple[Path, Path] | None = None, timeout: float = 2.0) -> str:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    with urllib.request.urlopen(url, context=context, timeout=timeout) as response:
        return str(response.read().decode())


def ensure_certificates(cluster: Cluster) -> None:
    p = cluster.pki
    pki.ensure_ca(p)
    sans = [
        "127.0.0.1", NODE_IP, KUBERNETES_SERVICE_IP, "localhost", "kubernetes", "kubernetes.default",
        "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
    ]
    pki.issue(p, "apiserver", "kube-apiserver", sans=sans, server=True)
    pki.issue(p, "admin", "kubedask-admin", organization="system:masters")
    # The API server's identity towards kubelets (logs, exec, port-forward).
    pki.issue(p, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", organization="system:masters")
    pki.issue(p, "kube-controller-manager", "system:kube-controller-manager")
    pki.issue(p, "kube-scheduler", "system:kube-scheduler")
    pki.issue(p, "kwok", "kwok-controller", organization="system:masters")


def ensure_node_address() -> None:
    """Put the host-only node address on its own port-less bridge (idempotent)."""
    if subprocess.run(["ip", "link", "show", NODE_BRIDGE], capture_output=True).returncode != 0:
        subprocess.run(["ip", "link", "add", NODE_BRIDGE, "type", "bridge"], check=True)
    addresses = subprocess.run(["ip", "-4", "addr", "show", NODE_BRIDGE], capture_output=True, text=True).stdout
    if f"{NODE_IP}/" not in addresses:
        subprocess.run(["ip", "addr", "add", f"{NODE_IP}/32", "dev", NODE_BRIDGE], check=True)
    subprocess.run(["ip", "link", "set", NODE_BRIDGE, "up"], check=True)


def remove_node_address() -> None:
    subprocess.run(["ip", "link", "del", NODE_BRIDGE], capture_output=True)


def start_etcd(cluster: Cluster) -> None:
    procs, ports = cluster.processes, cluster.ports
    client = f"http://127.0.0.1:{ports.etcd_client}"
    procs.start(
        "etcd",
        [
            build.binary("etcd"),
            "--name", "devcluster",
            "--data-dir", cluster.dir / "etcd",
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", f"http://127.0.0.1:{ports.etcd_peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{ports.etcd_peer}",
            "--initial-cluster", f"devcluster=http://127.0.0.1:{ports.etcd_peer}",
            "--unsafe-no-fsync=true",  # a throw-away cluster: speed over durability
            "--quota-backend-bytes", str(4 * 1024**3),
            "--log-level", "warn",
        ],
    )
    procs.wait_healthy("etcd", lambda: '"health":"true"' in _insecure_get(f"{client}/health"), timeout=30)


def start_apiserver(cluster: Cluster) -> None:
    p = cluster.pki
    audit_policy = cluster.dir / "audit-policy.json"
    audit_policy.write_text(json.dumps(AUDIT_POLICY))
    cluster.processes.start(
        "kube-apiserver",
        [
            build.binary("kube-apiserver"),
            "--etcd-servers", f"http://127.0.0.1:{cluster.ports.etcd_client}",
            "--bind-address", cluster.bind_address,
            "--advertise-address", NODE_IP if cluster.real_node else "127.0.0.1",
            "--secure-port", str(cluster.ports.apiserver),
            "--tls-cert-file", p / "apiserver.crt",
            "--tls-private-key-file", p / "apiserver.key",
            "--client-ca-file", p / "ca.crt",
            "--authorization-mode", "Node,RBAC",
            "--enable-admission-plugins", "NodeRestriction",
            "--allow-privileged=true",
            "--service-cluster-ip-range", SERVICE_CIDR,
            "--service-node-port-range", "30000-32767",
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file", p / "sa.pub",
            "--service-account-signing-key-file", p / "sa.key",
            "--api-audiences", "https://kubernetes.default.svc.cluster.local",
            "--kubelet-client-certificate", p / "apiserver-kubelet-client.crt",
            "--kubelet-client-key", p / "apiserver-kubelet-client.key",
            "--kubelet-certificate-authority", p / "ca.crt",
            "--kubelet-preferred-address-types", "InternalIP",
            "--audit-policy-file", audit_policy,
            "--audit-log-path", cluster.dir / "logs" / "audit.log",
            "--audit-log-maxsize", "200",
            "--audit-log-maxbackup", "1",
            "--profiling=false",
            "--v", "1",
        ],
    )
    admin = (p / "admin.crt", p / "admin.key")
    cluster.processes.wait_healthy(
        "kube-apiserver", lambda: _insecure_get(f"{cluster.apiserver_url}/readyz", admin) == "ok", timeout=90
    )


def start_controller_manager(cluster: Cluster) -> None:
    p = cluster.pki
    kubeconfig = cluster.component_kubeconfig("kube-controller-manager")
    port = cluster.ports.controller_manager
    cluster.processes.start(
        "kube-controller-manager",
        [
            build.binary("kube-controller-manager"),
            "--kubeconfig", kubeconfig,
            "--authentication-kubeconfig", kubeconfig,
            "--authorization-kubeconfig", kubeconfig,
            "--bind-address", "127.0.0.1",
            "--secure-port", str(port),
            "--leader-elect=false",
            # All default controllers: garbage collector, endpointslice, disruption (PDB status),
            # serviceaccount(-token), namespace, replicaset, ...
            "--controllers", "*",
            "--use-service-account-credentials=true",
            "--service-account-private-key-file", p / "sa.key",
            "--root-ca-file", p / "ca.crt",
            "--cluster-signing-cert-file", p / "ca.crt",
            "--cluster-signing-key-file", p / "ca.key",
            "--cluster-cidr", POD_CIDR,
            "--service-cluster-ip-range", SERVICE_CIDR,
            "--allocate-node-cidrs=false",
            # On 2 busy cores KWOK's lease renewals can lag; a short grace period would flap simulated
            # nodes NotReady and taint their pods away in the middle of a test.
            "--node-monitor-grace-period", "300s",
            "--concurrent-gc-syncs", "50",  # many worker pods go at once when a request is deleted
            "--kube-api-qps", "200",
            "--kube-api-burst", "400",
            "--v", "1",
        ],
    )
    cluster.processes.wait_healthy(
        "kube-controller-manager", lambda: _insecure_get(f"https://127.0.0.1:{port}/healthz") == "ok", timeout=60
    )


def start_scheduler(cluster: Cluster) -> None:
    kubeconfig = cluster.component_kubeconfig("kube-scheduler")
    port = cluster.ports.scheduler
    config = cluster.dir / "kube-scheduler.yaml"
    # Higher client rate limits than the defaults: scale tests schedule 1000 pods at once.
    config.write_text(
        json.dumps(
            {
                "apiVersion": "kubescheduler.config.k8s.io/v1",
                "kind": "KubeSchedulerConfiguration",
                "clientConnection": {"kubeconfig": str(kubeconfig), "qps": 500, "burst": 1000},
                "leaderElection": {"leaderElect": False},
            }
        )
    )
    cluster.processes.start(
        "kube-scheduler",
        [
            build.binary("kube-scheduler"),
            "--config", config,
            "--authentication-kubeconfig", kubeconfig,
            "--authorization-kubeconfig", kubeconfig,
            "--bind-address", "127.0.0.1",
            "--secure-port", str(port),
            "--v", "1",
        ],
    )
    cluster.processes.wait_healthy(
        "kube-scheduler", lambda: _insecure_get(f"https://127.0.0.1:{port}/healthz") == "ok", timeout=60
    )


def start(cluster: Cluster) -> None:
    ensure_certificates(cluster)
    if cluster.real_node:
        ensure_node_address()
    cluster.write_kubeconfig(
        cluster.kubeconfig,
        "admin",
        {"client-certificate": str(cluster.pki / "admin.crt"), "client-key": str(cluster.pki / "admin.key")},
    )
    start_etcd(cluster)
    start_apiserver(cluster)
    start_controller_manager(cluster)
    start_scheduler(cluster)


def health(cluster: Cluster) -> dict[str, str]:
    """Each control-plane component's health, as a short word or error."""
    p = cluster.pki
    checks = {
        "etcd": f"http://127.0.0.1:{cluster.ports.etcd_client}/health",
        "kube-apiserver": f"{cluster.apiserver_url}/readyz",
        "kube-controller-manager": f"https://127.0.0.1:{cluster.ports.controller_manager}/healthz",
        "kube-scheduler": f"https://127.0.0.1:{cluster.ports.scheduler}/healthz",
    }
    result = {}
    for name, url in checks.items():
        if not cluster.processes.alive(name):
            result[name] = "not running"
            continue
        try:
            body = _insecure_get(url, (p / "admin.crt", p / "admin.key"))
            healthy = body.strip() == "ok" or '"health":"true"' in body  # etcd answers JSON
            result[name] = "ok" if healthy else body[:80]
        except Exception as error:
            result[name] = f"unhealthy: {error}"
    return result


#: What :func:`restart` can restart, each with the function that starts it and waits until it is healthy.
RESTARTABLE: dict[str, Callable[[Cluster], None]] = {
    "etcd": start_etcd,
    "kube-apiserver": start_apiserver,
    "kube-controller-manager": start_controller_manager,
    "kube-scheduler": start_scheduler,
}


def restart(cluster: Cluster, component: str, down_for: float = 0.0, hard: bool = False) -> float:
    """Stop one control-plane component and start it again with its state (etcd keeps its data).

    ``hard`` kills it (SIGKILL: no graceful shutdown, like a crashed process) instead of SIGTERM;
    ``down_for`` keeps it stopped that many extra seconds. Returns the seconds it was unavailable, from
    the stop until healthy again. Chaos tests use this on an instance of their own: every client of the
    instance loses its connections.
    """
    if component not in RESTARTABLE:
        raise ValueError(f"cannot restart {component!r}; restartable: {', '.join(RESTARTABLE)}")
    started = time.monotonic()
    cluster.processes.stop(component, timeout=0.0 if hard else 10.0)
    if down_for > 0:
        time.sleep(down_for)
    for attempt in range(3):
        try:
            RESTARTABLE[component](cluster)
            break
        except ComponentError as error:
            # Instance ports come from the ephemeral range: while the component is down, a client's
            # outgoing connection may briefly hold its port as a source port. That passes; retry.
            if attempt == 2 or "address already in use" not in str(error):
                raise
            cluster.processes.stop(component, timeout=0.0)
            time.sleep(1.0)
    return time.monotonic() - started

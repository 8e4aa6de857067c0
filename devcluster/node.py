"""The local cluster's real node: containerd + runc, bridge CNI, kubelet, kube-proxy and CoreDNS.

`start_real_node(cluster)` runs after the control plane is up; `stop_real_node(cluster)` runs before
it goes down (and before a new `up` over a killed run's state). Everything the node creates on the
host is found again from the instance's state directory and the kernel's own tables, so stopping
works even when every process of a killed run is already gone:
pods (via kubelet), containers and shims (via containerd), mounts, network namespaces, veths, the
pod bridge and iptables chains.

Only one real node can run per machine: the pod bridge, the iptables chains and the kubelet's
cgroups are machine-wide. A second instance fails early and names the one holding the node.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from devcluster import build, cni, dns, images, paths, pki
from devcluster.cluster import CLUSTER_DNS_IP, NODE_IP, POD_CIDR, REAL_NODE_NAME, Cluster, free_port
from devcluster.processes import ComponentError, log_tail

OWNER_FILE = Path("/run/kubedask-real-node.owner")
OWNER_LOCK = Path("/run/kubedask-real-node.lock")
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NODE_LABELS = "kubedask.io/node-type=real"
# Chain prefixes this node's components create (kube-proxy, kubelet, CNI portmap, our guard).
CHAIN_PREFIXES = ("KUBE-", "CNI-", "KUBEDASK-")


class NodeDirs:
    """Where the node keeps its state: under the instance's state directory, except image content."""

    def __init__(self, cluster: Cluster) -> None:
        self.root = cluster.dir / "node"
        # Image content outlives the instance (only one real node runs per machine, see claim()), so a
        # warm `up` needn't import the Dask image again; containers and tasks are removed at `down`.
        self.containerd_root = paths.cache_dir() / "node-containerd"
        self.containerd_state = self.root / "containerd" / "state"
        self.containerd_sock = self.root / "containerd" / "containerd.sock"
        self.containerd_config = self.root / "containerd" / "config.toml"
        self.cni_conf = self.root / "cni" / "net.d"
        self.cni_ipam = self.root / "cni" / "ipam"
        self.kubelet = self.root / "kubelet"
        self.kube_proxy = self.root / "kube-proxy"
        self.coredns = self.root / "coredns"

    def ctr(self) -> list[str]:
        return ["ctr", "--address", str(self.containerd_sock)]


def _say(msg: str) -> None:
    print(f"devcluster node: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# containerd


def containerd_config(dirs: NodeDirs) -> str:
    # Only the differences from containerd's defaults; containerd fills in the rest.
    return f"""\
version = 2
root = "{dirs.containerd_root}"
state = "{dirs.containerd_state}"

[grpc]
  address = "{dirs.containerd_sock}"

[plugins."io.containerd.grpc.v1.cri"]
  # The pause image can't be pulled; images.py builds one under this name.
  sandbox_image = "{images.PAUSE_TAG}"
  # This machine lacks CAP_SYS_RESOURCE: without this every sandbox fails ("can't get final child's
  # PID from pipe") because runc may not lower oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni.CNI_BIN_DIR}"
    conf_dir = "{dirs.cni_conf}"
    max_conf_num = 1

[plugins."io.containerd.internal.v1.opt"]
  path = "{dirs.root / "containerd" / "opt"}"
"""


def start_containerd(cluster: Cluster, dirs: NodeDirs) -> None:
    for d in (dirs.containerd_root, dirs.containerd_state, dirs.cni_conf, dirs.cni_ipam):
        d.mkdir(parents=True, exist_ok=True)
    dirs.containerd_config.write_text(containerd_config(dirs))
    cluster.processes.start(
        "containerd",
        ["containerd", "--config", dirs.containerd_config, "--log-level", "warn"],
        env={"PATH": HOST_PATH, "HOME": "/root"},
    )
    cluster.processes.wait_healthy(
        "containerd",
        lambda: subprocess.run([*dirs.ctr(), "version"], capture_output=True, timeout=5).returncode == 0,
        timeout=30,
    )


def ensure_images(dirs: NodeDirs, wanted: list[images.Image] | None = None) -> None:
    """Import the node's images unless containerd already has them (by tag and content)."""
    wanted = images.node_images() if wanted is None else wanted
    listed = subprocess.run(
        [*dirs.ctr(), "-n", "k8s.io", "images", "ls", "-q"], capture_output=True, text=True
    )
    have = set(listed.stdout.split())
    missing = [img for img in wanted if not set(img.tags) <= have]
    images.import_images(missing, dirs.ctr())
    # Older builds of our own images would pile up in the persistent content store; containerd's
    # garbage collector frees their layers once the tags are gone.
    current = {tag for img in wanted for tag in img.tags}
    stale = [
        ref
        for ref in have
        if ref.startswith(images.LOCAL_REPOS)
        and ref not in current
        and any(ref.split(":")[0] == tag.split(":")[0] for tag in current)
    ]
    if stale:
        subprocess.run([*dirs.ctr(), "-n", "k8s.io", "images", "rm", *stale], capture_output=True)


def _containers(dirs: NodeDirs) -> list[str]:
    out = subprocess.run(
        [*dirs.ctr(), "-n", "k8s.io", "containers", "ls", "-q"], capture_output=True, text=True
    )
    return out.stdout.split()


def _remove_containers(dirs: NodeDirs) -> list[Path]:
    """Kill and delete every container containerd knows; returns their network namespace paths."""
    netns: list[Path] = []
    for cid in _containers(dirs):
        info = subprocess.run(
            [*dirs.ctr(), "-n", "k8s.io", "containers", "info", cid], capture_output=True, text=True
        )
        try:
            spec = json.loads(info.stdout)["Spec"]
            for ns in spec["linux"]["namespaces"]:
                path = ns.get("path", "")
                if ns.get("type") == "network" and path.startswith(("/var/run/netns/", "/run/netns/")):
                    netns.append(Path(ns["path"]))
        except (ValueError, KeyError, TypeError):
            pass
        subprocess.run(
            [*dirs.ctr(), "-n", "k8s.io", "tasks", "kill", "-a", "-s", "SIGKILL", cid], capture_output=True
        )
        for _ in range(50):
            gone = subprocess.run(
                [*dirs.ctr(), "-n", "k8s.io", "tasks", "delete", "-f", cid], capture_output=True, text=True
            )
            if gone.returncode == 0 or "not found" in gone.stderr:
                break
            time.sleep(0.1)
        subprocess.run([*dirs.ctr(), "-n", "k8s.io", "containers", "delete", cid], capture_output=True)
    return netns


def _kill_shims(dirs: NodeDirs) -> None:
    """Shims detach from containerd; ours are the ones whose command line names our socket."""
    sock = str(dirs.containerd_sock).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and sock in argv:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), 9)


# ---------------------------------------------------------------------------------------------
# kubelet and kube-proxy


def node_certificates(cluster: Cluster) -> None:
    p = cluster.pki
    pki.issue(p, "kubelet", f"system:node:{REAL_NODE_NAME}", organization="system:nodes")
    pki.issue(
        p,
        "kubelet-serving",
        f"system:node:{REAL_NODE_NAME}",
        sans=[NODE_IP, "127.0.0.1", REAL_NODE_NAME, "localhost"],
        server=True,
    )
    pki.issue(p, "kube-proxy", "system:kube-proxy")


def kubelet_config(cluster: Cluster, dirs: NodeDirs, healthz_port: int) -> dict[str, object]:
    p = cluster.pki
    endpoint = f"unix://{dirs.containerd_sock}"
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "tlsCertFile": str(p / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(p / "kubelet-serving.key"),
        # The API server (client cert signed by the cluster CA) is authenticated by x509 and
        # authorized through SubjectAccessReview, like on a kubeadm node.
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(p / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": endpoint,
        "imageServiceEndpoint": endpoint,
        # No systemd on this machine, and cgroups are v1 (hybrid): kubelet 1.35 refuses v1 unless told.
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        # Without CAP_SYS_RESOURCE kubelet can't lower its own oom_score_adj below 0.
        "oomScoreAdj": 0,
        "clusterDomain": dns.CLUSTER_DOMAIN,
        "clusterDNS": [CLUSTER_DNS_IP],
        # Pods get only the cluster DNS (no host search domains or resolvers: nothing leaves the machine).
        "resolvConf": str(dirs.kubelet / "resolv.conf"),
        # The locally built images can never be pulled again: never garbage-collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "50Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "serializeImagePulls": False,
        "maxPods": 110,
        "registerNode": True,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "nodeStatusReportFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
        "volumeStatsAggPeriod": "0s",
    }


def start_kubelet(cluster: Cluster, dirs: NodeDirs) -> int:
    dirs.kubelet.mkdir(parents=True, exist_ok=True)
    (dirs.kubelet / "resolv.conf").write_text("")
    healthz = free_port()
    config = dirs.kubelet / "config.json"
    config.write_text(json.dumps(kubelet_config(cluster, dirs, healthz), indent=2))
    kubeconfig = cluster.component_kubeconfig("kubelet")
    cluster.processes.start(
        "kubelet",
        [
            build.binary("kubelet"),
            "--config",
            config,
            "--kubeconfig",
            kubeconfig,
            "--root-dir",
            dirs.kubelet / "root",
            "--cert-dir",
            dirs.kubelet / "pki",
            "--hostname-override",
            REAL_NODE_NAME,
            "--node-ip",
            NODE_IP,
            "--node-labels",
            NODE_LABELS,
            "--v",
            "1",
        ],
        env={"PATH": HOST_PATH, "HOME": "/root"},
    )
    return healthz


def start_kube_proxy(cluster: Cluster, dirs: NodeDirs) -> int:
    dirs.kube_proxy.mkdir(parents=True, exist_ok=True)
    healthz = free_port()
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(cluster.component_kubeconfig("kube-proxy"))},
        # No IPVS in this kernel; iptables mode (Debian's iptables is the nft backend).
        "mode": "iptables",
        "clusterCIDR": POD_CIDR,
        "hostnameOverride": REAL_NODE_NAME,
        "healthzBindAddress": f"127.0.0.1:{healthz}",
        "metricsBindAddress": f"127.0.0.1:{free_port()}",
        # NodePorts only on the node address, never on the machine's real interfaces.
        "nodePortAddresses": ["primary"],
        "iptables": {"localhostNodePorts": False},
        # Leave the machine's conntrack table size alone (no CAP_SYS_RESOURCE, no module parameters).
        "conntrack": {"maxPerCore": 0, "min": 0},
    }
    path = dirs.kube_proxy / "config.json"
    path.write_text(json.dumps(config, indent=2))
    cluster.processes.start(
        "kube-proxy",
        [build.binary("kube-proxy"), "--config", path, "--v", "1"],
        env={"PATH": HOST_PATH, "HOME": "/root"},
    )
    return healthz


def _http_ok(port: int, path: str) -> bool:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
        return bool(resp.status == 200)


def node_ready(cluster: Cluster) -> bool:
    out = cluster.kubectl("get", "node", REAL_NODE_NAME, "-o", "json", check=False, timeout=10)
    if not out:
        return False
    conditions = json.loads(out).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


# ---------------------------------------------------------------------------------------------
# ownership: one real node per machine


def claim(cluster: Cluster) -> None:
    """Fail early, naming the holder, if another instance runs this machine's real node; else take it.

    `up` may call this before starting anything else (the node address and bridge are shared too).
    The check-and-write happens under a lock, so two `up`s racing each other can't both win.
    """
    with _owner_lock():
        try:
            owner = OWNER_FILE.read_text().strip()
        except FileNotFoundError:
            owner = ""
        if owner and owner != str(cluster.dir) and _instance_alive(Path(owner)):
            raise ComponentError(
                f"real node: another local cluster ({owner}) holds this machine's real node; stop it "
                f"first (`python -m devcluster --name {Path(owner).name} down`) or use --no-real-node"
            )
        OWNER_FILE.write_text(str(cluster.dir))


def owns_host_network(cluster: Cluster) -> bool:
    """True unless another instance, still alive, holds the real node.

    `down` should only remove machine-wide pieces (the node address, bridge, chains) when this is true.
    """
    with _owner_lock():
        try:
            owner = OWNER_FILE.read_text().strip()
        except FileNotFoundError:
            return True
    return owner in ("", str(cluster.dir)) or not _instance_alive(Path(owner))


def _release(cluster: Cluster) -> None:
    with _owner_lock():
        if OWNER_FILE.exists() and OWNER_FILE.read_text().strip() == str(cluster.dir):
            OWNER_FILE.unlink()


@contextlib.contextmanager
def _owner_lock() -> Iterator[None]:
    with open(OWNER_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _instance_alive(state_dir: Path) -> bool:
    """Any process of that instance still running (it may be starting, before its containerd is up)."""
    for pid_file in (state_dir / "pids").glob("*.pid"):
        try:
            pid = int(pid_file.read_text())
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (OSError, ValueError):
            continue
        if stat.rsplit(")", 1)[-1].split()[0] != "Z":
            return True
    return False


# ---------------------------------------------------------------------------------------------
# the contract with `up` / `down`


def start_real_node(cluster: Cluster) -> None:
    """Bring up the real node and return once it is Ready (the control plane must be up)."""
    started = time.monotonic()
    dirs = NodeDirs(cluster)
    claim(cluster)
    stop_real_node(cluster, quiet=True, keep_claim=True)  # leftovers of a killed run
    cni.enable_forwarding()
    cni.install_guard()
    node_certificates(cluster)
    _say("building images (cached) ...")
    images.node_images()
    start_containerd(cluster, dirs)
    # The pause image first (every sandbox needs it); the big Dask image imports while the rest of the
    # node starts, and `up` returns only once both are in.
    ensure_images(dirs, [images.pause_image()])
    with ThreadPoolExecutor(1) as pool:
        dask_import = pool.submit(ensure_images, dirs, [images.dask_image()])
        cni.write_conflist(dirs.cni_conf, dirs.cni_ipam)
        dns.ensure_service(cluster)
        dns_ready = dns.start_coredns(cluster, dirs.coredns)
        kubelet_healthz = start_kubelet(cluster, dirs)
        proxy_healthz = start_kube_proxy(cluster, dirs)
        procs = cluster.processes
        procs.wait_healthy("kubelet", lambda: _http_ok(kubelet_healthz, "/healthz"), timeout=60)
        procs.wait_healthy("kubelet", lambda: node_ready(cluster), timeout=90)
        procs.wait_healthy("kube-proxy", lambda: _http_ok(proxy_healthz, "/healthz"), timeout=60)
        procs.wait_healthy(dns.PROCESS, lambda: _http_ok(dns_ready, "/ready"), timeout=60)
        dask_import.result()
    _say(f"real node {REAL_NODE_NAME} Ready in {time.monotonic() - started:.1f}s")


def _drain_pods(cluster: Cluster) -> None:
    """Let the kubelet stop the node's pods itself, so CNI tears each pod network down properly."""
    procs = cluster.processes
    if not (procs.alive("kubelet") and procs.alive("kube-apiserver")):
        return
    try:
        cluster.kubectl("cordon", REAL_NODE_NAME, check=False, timeout=10)
        selector = f"spec.nodeName={REAL_NODE_NAME}"
        cluster.kubectl(
            "delete",
            "pods",
            "-A",
            "--field-selector",
            selector,
            "--grace-period=1",
            "--wait=false",
            check=False,
            timeout=20,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            left = cluster.kubectl(
                "get",
                "pods",
                "-A",
                "--field-selector",
                selector,
                "-o",
                "name",
                check=False,
                timeout=10,
            )
            if not left.strip():
                return
            time.sleep(0.5)
    except subprocess.TimeoutExpired:
        pass


def _unmount_under(root: Path) -> None:
    """Unmount everything mounted below `root`, deepest first (pod volumes, rootfs, shm)."""
    for _ in range(3):
        points = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point == str(root) or point.startswith(f"{root}/"):
                points.append(point)
        if not points:
            return
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", point], capture_output=True)
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def _remove_cgroups() -> None:
    """kubelet's pod cgroups (v1 hierarchies), empty once the containers are gone."""
    for top in Path("/sys/fs/cgroup").glob("*/kubepods*"):
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: len(w[0]), reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def stop_real_node(cluster: Cluster, quiet: bool = False, keep_claim: bool = False) -> None:
    """Stop the real node and remove every trace of it from the host. Safe to call at any time.

    Call it before the control plane stops: with the API server up, pods are stopped by the kubelet.
    """
    dirs = NodeDirs(cluster)
    procs = cluster.processes
    if not dirs.root.exists() and not any(procs.alive(n) for n in ("kubelet", "containerd")):
        return
    if not owns_host_network(cluster):
        # Another live instance holds the node: the bridge, chains and the shared containerd root are
        # its own. Only this instance's own leftovers go.
        for name in ("kube-proxy", "kubelet", dns.PROCESS, "containerd"):
            procs.stop(name)
        _kill_shims(dirs)
        _unmount_under(dirs.root)
        subprocess.run(["rm", "-rf", "--one-file-system", str(dirs.root)], capture_output=True)
        return
    started = time.monotonic()
    if not quiet:
        _say("stopping the real node ...")
    _drain_pods(cluster)
    for name in ("kube-proxy", "kubelet", dns.PROCESS):
        procs.stop(name)
    netns: list[Path] = []
    if dirs.containerd_state.exists():
        if not procs.alive("containerd"):
            # A killed run: containerd's metadata still knows the containers, so ask it to clean them up.
            try:
                start_containerd(cluster, dirs)
            except ComponentError as error:
                _say(f"containerd did not start for clean-up, continuing: {error}")
        if procs.alive("containerd"):
            netns = _remove_containers(dirs)
    procs.stop("containerd")
    _kill_shims(dirs)
    for path in netns:
        subprocess.run(["umount", str(path)], capture_output=True)
        path.unlink(missing_ok=True)
    _unmount_under(dirs.root)
    _unmount_under(dirs.containerd_root)
    cni.remove_bridge()
    removed = cni.remove_chains(CHAIN_PREFIXES)
    _remove_cgroups()
    subprocess.run(["rm", "-rf", "--one-file-system", str(dirs.root)], capture_output=True)
    if not keep_claim:
        _release(cluster)
    if not quiet:
        _say(
            f"real node stopped in {time.monotonic() - started:.1f}s ({len(removed)} iptables chains removed)"
        )


def health(cluster: Cluster) -> dict[str, str]:
    """Each node component's state ("ok" when fine), merged into `python -m devcluster status`."""
    result = {
        n: ("ok" if cluster.processes.alive(n) else "not running")
        for n in ("containerd", "kubelet", "kube-proxy", dns.PROCESS)
    }
    try:
        result["real node"] = "ok" if node_ready(cluster) else f"{REAL_NODE_NAME} not Ready"
    except Exception as error:
        result["real node"] = f"unknown: {error}"
    return result


def failure_context(cluster: Cluster) -> str:
    """Log tails of the node's components, for an error message when something downstream fails."""
    return "\n".join(
        f"--- {n}:\n{log_tail(cluster.processes.log_path(n), 10)}"
        for n in ("containerd", "kubelet", "kube-proxy", dns.PROCESS)
    )

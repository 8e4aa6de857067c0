"""The real node's pod network: a bridge CNI conflist, IP forwarding, and a guard against off-machine traffic.

Pods live on one host-only bridge (10.244.0.0/24). The bridge plugin makes it the pods' gateway; there
is deliberately no masquerading, and a FORWARD guard rejects anything from the pods that would leave
through another interface, so pod traffic never leaves this machine. Pods reach the host (API server,
CoreDNS, kubelet) on the node address, which is local delivery and needs no forwarding.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

CNI_BIN_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins install here, not /opt/cni/bin
POD_BRIDGE = "kubedask-pods"
POD_SUBNET = "10.244.0.0/24"
GUARD_CHAIN = "KUBEDASK-POD-GUARD"
NETWORK_NAME = "kubedask"


def write_conflist(conf_dir: Path, ipam_dir: Path) -> Path:
    conf_dir.mkdir(parents=True, exist_ok=True)
    conflist = {
        "cniVersion": "1.0.0",
        "name": NETWORK_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": POD_BRIDGE,
                "isGateway": True,
                # No SNAT: pods have nowhere to go but this machine (see the FORWARD guard).
                "ipMasq": False,
                # Lets a pod reach itself through its own Service (kube-proxy masquerades that case).
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    # IP leases live in the instance's state, so a killed run leaks none into /var/lib.
                    "dataDir": str(ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    path = conf_dir / f"10-{NETWORK_NAME}.conflist"
    path.write_text(json.dumps(conflist, indent=2))
    return path


def _iptables(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True, check=check)


def enable_forwarding() -> None:
    """ip_forward is 0 at boot on this machine; pod traffic through the bridge needs it."""
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")


def install_guard() -> None:
    """REJECT forwarded pod packets that would leave through anything but the pod bridge (idempotent)."""
    if _iptables("-n", "-L", GUARD_CHAIN).returncode != 0:
        _iptables("-N", GUARD_CHAIN, check=True)
    _iptables("-F", GUARD_CHAIN, check=True)
    _iptables("-A", GUARD_CHAIN, "-o", POD_BRIDGE, "-j", "RETURN", check=True)
    _iptables("-A", GUARD_CHAIN, "-j", "REJECT", "--reject-with", "icmp-net-prohibited", check=True)
    jump = ["FORWARD", "-s", POD_SUBNET, "-j", GUARD_CHAIN]
    if _iptables("-C", *jump).returncode != 0:
        _iptables("-I", *jump, check=True)


def _rule_args(rule: str) -> list[str]:
    """`-A CHAIN ...` from iptables-save, as argv (quotes in comments are the only quoting used)."""
    import shlex

    return shlex.split(rule)[2:]


def remove_chains(prefixes: tuple[str, ...]) -> list[str]:
    """Delete every iptables/ip6tables chain whose name starts with one of `prefixes`, and the jumps to it.

    Catches what kube-proxy, kubelet, portmap and our guard leave behind after a killed run, even when
    the component that made them is gone. Returns the chains removed.
    """
    removed = []
    for binary in ("iptables", "ip6tables"):
        saved = subprocess.run([f"{binary}-save"], capture_output=True, text=True)
        if saved.returncode != 0:
            continue
        table = ""
        ours: dict[str, list[str]] = {}
        jumps: list[tuple[str, str]] = []
        for line in saved.stdout.splitlines():
            if line.startswith("*"):
                table = line[1:]
                ours.setdefault(table, [])
            elif line.startswith(":"):
                chain = line[1:].split()[0]
                if chain.startswith(prefixes):
                    ours[table].append(chain)
            elif line.startswith("-A "):
                chain = line.split()[1]
                target = line.split(" -j ")[-1].split()[0] if " -j " in line else ""
                if not chain.startswith(prefixes) and target.startswith(prefixes):
                    jumps.append((table, line))
        for table, line in jumps:
            args = _rule_args(line)
            subprocess.run(
                [binary, "-w", "5", "-t", table, "-D", line.split()[1], *args], capture_output=True
            )
        for table, chains in ours.items():
            for chain in chains:
                subprocess.run([binary, "-w", "5", "-t", table, "-F", chain], capture_output=True)
            for chain in chains:
                gone = subprocess.run([binary, "-w", "5", "-t", table, "-X", chain], capture_output=True)
                if gone.returncode == 0:
                    removed.append(f"{binary}/{table}/{chain}")
    return removed


def remove_bridge() -> None:
    """Delete the pod bridge and any veth still attached to it (their pods' netns is already gone)."""
    links = subprocess.run(["ip", "-o", "link", "show", "master", POD_BRIDGE], capture_output=True, text=True)
    for line in links.stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        subprocess.run(["ip", "link", "del", name], capture_output=True)
    subprocess.run(["ip", "link", "del", POD_BRIDGE], capture_output=True)

"""One local-cluster instance: its state directory, addresses, ports and kubeconfigs.

Everything an instance needs to be found again (by `status`, `down`, the pytest fixtures or a later
`up` cleaning after a killed run) is in ``<state root>/<name>/cluster.json``.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
from pathlib import Path

from devcluster.paths import state_root
from devcluster.processes import Processes

SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
CLUSTER_DNS_IP = "10.96.0.10"
POD_CIDR = "10.244.0.0/16"  # the real node's bridge takes 10.244.0.0/24 of it
# A host-only address (on a port-less bridge) for the real node: pods reach the API server and the
# kubelet through it, and nothing outside this machine can.
NODE_IP = "10.200.0.1"
NODE_BRIDGE = "kubedask0"
REAL_NODE_NAME = "kubedask-node"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclasses.dataclass
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int

    @classmethod
    def pick(cls) -> Ports:
        return cls(**{f.name: free_port() for f in dataclasses.fields(cls)})


@dataclasses.dataclass
class Cluster:
    name: str
    ports: Ports
    real_node: bool
    simulated_nodes: int

    # --- locations -------------------------------------------------------------------------------
    @property
    def dir(self) -> Path:
        return state_root() / self.name

    @property
    def pki(self) -> Path:
        return self.dir / "pki"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (client certificate in system:masters)."""
        return self.dir / "admin.kubeconfig"

    @property
    def processes(self) -> Processes:
        return Processes(self.dir)

    @property
    def bind_address(self) -> str:
        """Loopback, unless a real node's pods must reach the API server through the node address."""
        return NODE_IP if self.real_node else "127.0.0.1"

    @property
    def apiserver_url(self) -> str:
        return f"https://{self.bind_address}:{self.ports.apiserver}"

    # --- persistence -----------------------------------------------------------------------------
    @classmethod
    def state_file(cls, name: str) -> Path:
        return state_root() / name / "cluster.json"

    @classmethod
    def load(cls, name: str) -> Cluster | None:
        try:
            raw = json.loads(cls.state_file(name).read_text())
        except FileNotFoundError:
            return None
        raw["ports"] = Ports(**raw["ports"])
        return cls(**raw)

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_file(self.name).write_text(json.dumps(dataclasses.asdict(self), indent=2))

    # --- kubeconfigs -----------------------------------------------------------------------------
    def write_kubeconfig(
        self, path: Path, user: str, credentials: dict[str, str], namespace: str | None = None
    ) -> Path:
        """A kubeconfig for this cluster with one user (client certificate or token)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": self.name,
                    "cluster": {
                        "server": self.apiserver_url,
                        "certificate-authority": str(self.pki / "ca.crt"),
                    },
                }
            ],
            "users": [{"name": user, "user": credentials}],
            "contexts": [
                {
                    "name": self.name,
                    "context": {"cluster": self.name, "user": user, **({"namespace": namespace} if namespace else {})},
                }
            ],
            "current-context": self.name,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config, indent=2))  # JSON is valid YAML; no yaml dependency here
        path.chmod(0o600)
        return path

    def component_kubeconfig(self, component: str) -> Path:
        return self.write_kubeconfig(
            self.dir / f"{component}.kubeconfig",
            component,
            {
                "client-certificate": str(self.pki / f"{component}.crt"),
                "client-key": str(self.pki / f"{component}.key"),
            },
        )

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True, timeout: float | None = None) -> str:
        """Run the cluster's own kubectl as admin and return stdout; unless ``check`` is off, raise with
        kubectl's message on failure."""
        from devcluster import build  # late: `status`/`down` must work even if nothing was built

        proc = subprocess.run(
            [str(build.binary("kubectl")), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

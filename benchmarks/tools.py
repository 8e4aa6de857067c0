"""The three ways of getting Dask worker pods that the benchmark compares, behind one small interface.

- :class:`KubedaskTool`: ``python -m kubedask_controller`` (project venv) + request ConfigMaps;
- :class:`OperatorTool`: ``kopf run -m dask_kubernetes.operator.controller`` (its own venv) + DaskClusters;
- :class:`RawTool`: no controller; the runner creates and deletes bare pods in parallel (the API limit).

Each controller runs as its own ServiceAccount so the audit log attributes every request to it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from kubedask.spec import REQUEST_LABEL

from . import manifests, venvs
from .kube import Kube
from .processes import Controller, wait_until

REPO = Path(__file__).resolve().parents[1]
IDENTITY_NAMESPACE = "kube-system"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


class Tool(Protocol):
    name: str
    controller: Controller | None
    #: The audit log's username for this tool's controller (None: no controller).
    user: str | None
    #: The audit log's username of whatever sends this tool's requests (the raw baseline's own identity).
    audit_user: str | None

    def start(self, namespaces: Sequence[str]) -> None: ...
    def stop(self) -> None: ...
    def create(self, namespace: str, name: str, workers: int) -> None: ...
    def create_many(self, namespace: str, names: Sequence[str], workers: int) -> None: ...
    def scale(self, namespace: str, name: str, workers: int) -> None: ...
    def delete(self, namespace: str, name: str) -> None: ...
    def delete_all(self, namespace: str) -> None: ...


class _ControllerTool:
    """What both controllers share: an identity, a process, a health check, clean stop."""

    name = "?"
    service_account = "?"
    #: The controller's endpoint that answers 200 once it serves requests (measurements start after it).
    ready_path = "/healthz"

    def __init__(self, kube: Kube, identity_kubeconfig: Path, run_dir: Path) -> None:
        self.kube = kube
        self.kubeconfig = identity_kubeconfig
        self.run_dir = run_dir
        self.controller: Controller | None = None
        self.user: str | None = user_of(self.service_account)
        self.audit_user: str | None = self.user
        self._runs = 0

    def _argv(self, namespaces: Sequence[str], health_port: int) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def start(self, namespaces: Sequence[str]) -> None:
        self.stop()
        self._runs += 1
        port = free_port()
        self.controller = Controller(self.name, self._argv(namespaces, port), self._env(),
                                     self.run_dir / f"{self.name}-{self._runs}.log", cwd=REPO).start()
        url = f"http://127.0.0.1:{port}{self.ready_path}"

        def healthy() -> bool:
            assert self.controller is not None
            self.controller.check_alive()
            return http_ok(url)

        wait_until(f"the {self.name} controller's {self.ready_path}", healthy, timeout=90, interval=0.5)

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def create_many(self, namespace: str, names: Sequence[str], workers: int) -> None:
        failures = self.kube.create_many([self._request(namespace, n, workers) for n in names])
        if failures:
            raise RuntimeError(f"{len(failures)} requests could not be created: {failures[0]}")

    def create(self, namespace: str, name: str, workers: int) -> None:
        self.kube.create(self._request(namespace, name, workers))

    def _request(self, namespace: str, name: str, workers: int) -> manifests.Manifest:
        raise NotImplementedError


class KubedaskTool(_ControllerTool):
    name = "kubedask"
    service_account = "bench-kubedask"
    # Ready once it knows it leads: /healthz answers before the Lease is taken, and a request sent then
    # waited for the election (the first run of a size measured ~0.1 s more than the others).
    ready_path = "/readyz"

    def _argv(self, namespaces: Sequence[str], health_port: int) -> list[str]:
        # The runner's own interpreter is the project venv's (see docs/benchmarks/README.md).
        argv = [sys.executable, "-m", "kubedask_controller",
                "--health-port", str(health_port), "--metrics-port", str(free_port()),
                "--bind-host", "127.0.0.1", "--lease-namespace", namespaces[0], "--log-level", "INFO"]
        for namespace in namespaces:
            argv += ["--namespace", namespace]
        return argv

    def _env(self) -> dict[str, str]:
        path = os.pathsep.join(str(REPO / p) for p in ("client", "controller", "."))
        return {**super()._env(), **manifests.KUBEDASK_POLICY_ENV, "PYTHONPATH": path}

    def _request(self, namespace: str, name: str, workers: int) -> manifests.Manifest:
        return manifests.kubedask_request(name, namespace, workers)

    def scale(self, namespace: str, name: str, workers: int) -> None:
        self.kube.patch_configmap(namespace, name, manifests.kubedask_scale_patch(workers))

    def delete(self, namespace: str, name: str) -> None:
        self.kube.core.delete_namespaced_config_map(name, namespace, _preload_content=False)

    def delete_all(self, namespace: str) -> None:
        self.kube.core.delete_collection_namespaced_config_map(
            namespace, label_selector=REQUEST_LABEL, _preload_content=False)


class OperatorTool(_ControllerTool):
    name = "operator"
    service_account = "bench-operator"

    def _argv(self, namespaces: Sequence[str], health_port: int) -> list[str]:
        kopf = venvs.python("operator").parent / "kopf"
        argv = [str(kopf), "run", "--standalone", "-m", "dask_kubernetes.operator.controller",
                "--liveness", f"http://127.0.0.1:{health_port}/healthz"]
        for namespace in namespaces:
            argv += ["--namespace", namespace]
        return argv

    def _request(self, namespace: str, name: str, workers: int) -> manifests.Manifest:
        return manifests.operator_cluster(name, namespace, workers)

    def scale(self, namespace: str, name: str, workers: int) -> None:
        self.kube.patch_daskcluster(namespace, name, manifests.operator_scale_patch(workers))

    def delete(self, namespace: str, name: str) -> None:
        self.kube.custom.delete_namespaced_custom_object(
            "kubernetes.dask.org", "v1", namespace, "daskclusters", name, _preload_content=False)

    def delete_all(self, namespace: str) -> None:
        # Explicitly, while the operator runs: Kopf stops watching a namespace that is being deleted,
        # so its finalizers on DaskClusters would otherwise hold the namespace forever.
        self.kube.custom.delete_collection_namespaced_custom_object(
            "kubernetes.dask.org", "v1", namespace, "daskclusters", _preload_content=False)


class RawTool:
    """The limit: the runner itself creates the same pods with a plain parallel client.

    ``kube`` may act as an identity of its own (``audit_user``), so the audit log tells its requests
    from the runner's polling."""

    name = "raw"
    service_account = "bench-raw"
    controller: Controller | None = None
    user: str | None = None

    def __init__(self, kube: Kube, audit_user: str | None = None) -> None:
        self.kube = kube
        self.audit_user = audit_user

    def start(self, namespaces: Sequence[str]) -> None:
        pass

    def stop(self) -> None:
        pass

    def create(self, namespace: str, name: str, workers: int) -> None:
        self._create_pods(namespace, name, range(workers))

    def create_many(self, namespace: str, names: Sequence[str], workers: int) -> None:
        # One parallel batch for every cluster: no wait between clusters.
        pods = [manifests.raw_pod(name, namespace, i) for name in names for i in range(workers)]
        failures = self.kube.create_many(pods)
        if failures:
            raise RuntimeError(f"{len(failures)} pods could not be created: {failures[0]}")

    def _create_pods(self, namespace: str, name: str, indexes: range) -> None:
        failures = self.kube.create_many([manifests.raw_pod(name, namespace, i) for i in indexes])
        if failures:
            raise RuntimeError(f"{len(failures)} pods could not be created: {failures[0]}")

    def scale(self, namespace: str, name: str, workers: int) -> None:
        pods = self.kube.list_pods(namespace, manifests.worker_selector(name))
        live = sorted(p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp"))
        if len(live) > workers:
            failures = self.kube.delete_pods(namespace, live[workers:])
            if failures:
                raise RuntimeError(f"{len(failures)} pods could not be deleted: {failures[0]}")
        elif len(live) < workers:
            self._create_pods(namespace, name, range(len(live), workers))

    def delete(self, namespace: str, name: str) -> None:
        self.kube.core.delete_collection_namespaced_pod(
            namespace, label_selector=manifests.worker_selector(name), _preload_content=False)

    def delete_all(self, namespace: str) -> None:
        self.kube.core.delete_collection_namespaced_pod(
            namespace, label_selector=f"{manifests.BENCH_LABEL}=raw", _preload_content=False)


def install_operator_crds(kubectl: Callable[..., str], say: Callable[[str], None]) -> None:
    """Apply the CRDs shipped inside the installed dask-kubernetes package.

    ``operator/customresources/*.yaml`` are templates with ``$ref``s (resolved at the package's build);
    the resolved CRDs are the ones its Helm chart carries in ``crds/``.
    """
    package = venvs.site_packages("operator") / "dask_kubernetes" / "operator"
    folder = package / "deployment" / "helm" / "dask-kubernetes-operator" / "crds"
    for kind in ("daskcluster", "daskworkergroup", "daskjob", "daskautoscaler"):
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(folder / f"{kind}.yaml"))
    kubectl("wait", "--for=condition=Established", "crd", "daskclusters.kubernetes.dask.org",
            "daskworkergroups.kubernetes.dask.org", "--timeout=60s")
    say(f"operator CRDs applied from {folder}")


def user_of(service_account: str) -> str:
    return f"system:serviceaccount:{IDENTITY_NAMESPACE}:{service_account}"


def identity_kubeconfig(cluster: object, kube: Kube, service_account: str) -> Path:
    """A kubeconfig acting as ``kube-system/<service_account>`` with cluster-admin (see Kube)."""
    from devcluster import accounts
    from devcluster.cluster import Cluster

    assert isinstance(cluster, Cluster)
    path = accounts.service_account_kubeconfig(cluster, IDENTITY_NAMESPACE, service_account, duration="4h")
    kube.bind_cluster_admin(IDENTITY_NAMESPACE, service_account)
    return path


def git_describe() -> str:
    out = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "unknown"

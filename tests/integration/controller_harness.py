"""Shared helpers for the controller's integration tests (tests/integration/test_controller_*.py).

The controller runs as a real subprocess (``python -m kubedask_controller``) so tests can SIGKILL it;
cluster state is read through the admin ApiClient from tests/conftest.py. Every wait polls with a
deadline and says what it was waiting for when it gives up.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import yaml
from kubedask.spec import (
    PHASE_LABEL,
    REQUEST_LABEL,
    ClusterStatus,
    build_request_configmap,
    build_request_data,
    parse_status,
)

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")

#: Simulated (KWOK) nodes only: pods there "run" instantly and never touch the real node.
KWOK_TOLERATION = {"key": "kwok.x-k8s.io/node", "operator": "Equal", "value": "fake", "effect": "NoSchedule"}
SIMULATED_TEMPLATE: dict[str, Any] = {
    "kind": "Pod",
    "spec": {
        "tolerations": [KWOK_TOLERATION],
        "nodeSelector": {"type": "kwok"},
        "containers": [{"name": "dask-worker", "image": "ghcr.io/dask/dask:latest",
                        "args": ["dask-worker", "--nthreads", "1"]}],
    },
}


#: The policy the test cluster's admin gives its controllers: the defaults, plus the KWOK taint that
#: keeps ordinary pods off the simulated nodes (an admin's choice for this cluster, like a GPU taint),
#: and the label key ``foo`` of the classic examples/worker-spec.yml, which nothing in the test
#: namespaces selects on (labels are allowlisted: by default only ``user.kubedask.io/*``).
#: Tests that need more pass their own ``policy``; ``policy=None`` runs the controller's defaults.
SIMULATED_NODES_POLICY: dict[str, Any] = {
    "allowedTolerations": ["k8s.dask.org/dedicated", "k8s.dask.org_dedicated", "nvidia.com/gpu",
                           KWOK_TOLERATION["key"]],
    "allowedPodLabels": ["user.kubedask.io/*", "foo"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60, interval: float = 0.25) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last value: {last!r}")


class ControllerProcess:
    """``python -m kubedask_controller`` for some namespaces, with its log kept for failure messages."""

    def __init__(self, kubeconfig: str, namespaces: list[str], log_dir: Path, *,
                 leader_election: bool = False, lease_namespace: str | None = None,
                 extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None,
                 policy: dict[str, Any] | None = SIMULATED_NODES_POLICY) -> None:
        self.kubeconfig = kubeconfig
        self.namespaces = namespaces
        self.health_port = free_port()
        self.metrics_port = free_port()
        self.log_path = log_dir / f"controller-{self.health_port}.log"
        self.args = [sys.executable, "-m", "kubedask_controller", "--health-port", str(self.health_port),
                     "--metrics-port", str(self.metrics_port), "--bind-host", "127.0.0.1",
                     "--log-level", "DEBUG"]
        for ns in namespaces:
            self.args += ["--namespace", ns]
        if leader_election:
            self.args += ["--lease-namespace", lease_namespace or namespaces[0]]
        else:
            self.args += ["--no-leader-election"]
        if policy is not None:
            self.policy_path = log_dir / f"policy-{self.health_port}.yaml"
            self.policy_path.write_text(yaml.safe_dump(policy))
            self.args += ["--policy", str(self.policy_path)]
        self.args += extra_args or []
        self.env = {**os.environ, "KUBECONFIG": kubeconfig,
                    "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("client", "controller", ".")),
                    **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> ControllerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     cwd=REPO)
        log.close()
        if wait:
            wait_for("the controller's /healthz", self.healthy, timeout=60)
        return self

    def healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"controller exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return parse_prometheus(r.read().decode())

    def kill(self) -> None:
        """SIGKILL: no cleanup handlers, no lease release, exactly like a node or OOM kill."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def parse_prometheus(text: str) -> dict[str, float]:
    """``{'metric{labels}': value}`` for every sample line (enough for sums and deltas in tests)."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            samples[name] = float(value)
        except ValueError:
            continue
    return samples


def metric_sum(samples: dict[str, float], name: str, **labels: str) -> float:
    total = 0.0
    for key, value in samples.items():
        metric, _, rest = key.partition("{")
        if metric != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total


class Cluster:
    """Small typed helpers over the admin client for one namespace."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str) -> None:
        self.core = kubernetes.client.CoreV1Api(api)
        self.policy = kubernetes.client.PolicyV1Api(api)
        self.namespace = namespace

    def create_request(self, name: str, data: dict[str, str] | None = None, **kwargs: Any) -> dict[str, Any]:
        if data is None:
            kwargs.setdefault("worker_template", SIMULATED_TEMPLATE)
            data = build_request_data(**kwargs)
        body = build_request_configmap(name, self.namespace, data)
        self.core.create_namespaced_config_map(self.namespace, body)
        return body

    def create_raw_request(self, name: str, data: dict[str, str]) -> None:
        self.core.create_namespaced_config_map(self.namespace, {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {REQUEST_LABEL: "cluster"}}, "data": data})

    def patch_data(self, name: str, data: dict[str, str]) -> None:
        self.core.patch_namespaced_config_map(name, self.namespace, {"data": data})

    def configmap(self, name: str) -> Any:
        try:
            return self.core.read_namespaced_config_map(name, self.namespace)
        except kubernetes.client.exceptions.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def status(self, name: str) -> ClusterStatus | None:
        cm = self.configmap(name)
        return parse_status(cm.metadata.annotations) if cm else None

    def phase_label(self, name: str) -> str | None:
        cm = self.configmap(name)
        return (cm.metadata.labels or {}).get(PHASE_LABEL) if cm else None

    def pods(self, cluster: str, component: str | None = None, include_deleting: bool = False) -> list[Any]:
        selector = f"dask.org/cluster-name={cluster}"
        if component:
            selector += f",dask.org/component={component}"
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=selector).items
        return [p for p in pods if include_deleting or p.metadata.deletion_timestamp is None]

    def worker_names(self, cluster: str) -> list[str]:
        return sorted(p.metadata.name for p in self.pods(cluster, "worker"))

    def running_workers(self, cluster: str) -> list[str]:
        return sorted(p.metadata.name for p in self.pods(cluster, "worker") if p.status.phase == "Running")

    def events(self, name: str) -> list[Any]:
        return [e for e in self.core.list_namespaced_event(self.namespace).items
                if e.involved_object.name == name and e.involved_object.kind == "ConfigMap"]

    def wait_phase(
        self, name: str, phase: str, timeout: float = 60, requested: int | None = None
    ) -> ClusterStatus:
        """Wait for ``phase`` (and, if given, that many requested workers: after a scale the status may
        briefly still show the old count with the old phase, until the controller's pass writes it)."""
        def probe() -> ClusterStatus | None:
            status = self.status(name)
            if status is None or status.phase != phase:
                return None
            return status if requested is None or status.workers.requested == requested else None
        try:
            return wait_for(f"request {name} to reach phase {phase}", probe, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nstatus now: {self.status(name)}") from None

    def wait_workers(self, name: str, count: int, timeout: float = 60, running: bool = True) -> list[str]:
        def probe() -> list[str] | None:
            names = self.running_workers(name) if running else self.worker_names(name)
            # exact count, and nothing else still around (e.g. a duplicate that is not running)
            return names if len(names) == count and len(self.worker_names(name)) == count else None
        try:
            what = f"exactly {count} {'running ' if running else ''}workers of {name}"
            return wait_for(what, probe, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nworkers now: {self.worker_names(name)}") from None


def scatter_range(client: Any, total: int, chunk: int = 10_000) -> list[Any]:
    """``range(total)`` scattered in chunks: data that cannot be recomputed, so it survives only if the
    workers holding it hand it over. Numpy chunks, each one buffer on the wire: a list of ints is serialized
    element by element (30-50 s to scatter or gather 400,000 on this machine, against 0.2 s)."""
    import numpy as np

    return list(client.scatter([np.arange(i, min(i + chunk, total)) for i in range(0, total, chunk)]))


def gathered_sum(client: Any, chunks: list[Any]) -> int:
    """The sum of what :func:`scatter_range` scattered, gathered back from the workers."""
    return sum(int(c.sum()) for c in client.gather(chunks))


def load_yaml(text: str) -> Any:
    return yaml.safe_load(text)


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)


def running_controller(kubeconfig: str, namespaces: list[str], log_dir: Path, **kwargs: Any
                       ) -> Iterator[ControllerProcess]:
    """Generator body for fixtures: a started controller, stopped (and its log shown) afterwards."""
    controller = ControllerProcess(kubeconfig, namespaces, log_dir, **kwargs).start()
    try:
        yield controller
    finally:
        controller.stop()


def kubedask_user(kubectl: Callable[..., str], user_kubeconfig: Callable[[str, str], str], namespace: str,
                  account: str = "alice") -> str:
    """A kubeconfig for ServiceAccount ``account`` holding only the kubedask user role in ``namespace``."""
    kubectl("apply", "-f", str(REPO / "manifests" / "user-role.yaml"))
    path = user_kubeconfig(namespace, account)
    kubectl("create", "rolebinding", "dask-users", "-n", namespace, "--clusterrole=kubedask-user",
            f"--serviceaccount={namespace}:{account}")
    return path


class RecordingProxy:
    """A plain-HTTP reverse proxy in front of the API server that records every request it forwards.

    The controller is pointed at it (``kubeconfig``), so the test sees the controller's API traffic on
    the wire - verbs, paths, label selectors, response sizes - instead of trusting the code. Watches are
    streamed through unchanged.
    """

    def __init__(self, admin_kubeconfig: str, workdir: Path) -> None:
        import kubernetes.config

        self.upstream = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=admin_kubeconfig, client_configuration=self.upstream)
        self.port = free_port()
        self.requests: list[dict[str, Any]] = []
        self.kubeconfig = str(workdir / "proxy.kubeconfig")
        Path(self.kubeconfig).write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "proxy",
            "clusters": [{"name": "proxy", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
            "users": [{"name": "proxy", "user": {}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}],
        }))
        self._thread: Any = None
        self._loop: Any = None
        self._runner: Any = None
        self._session: Any = None

    def start(self) -> RecordingProxy:
        import asyncio
        import ssl
        import threading

        import aiohttp
        from aiohttp import web

        upstream = self.upstream
        context = ssl.create_default_context(cafile=upstream.ssl_ca_cert)
        if upstream.cert_file:
            context.load_cert_chain(upstream.cert_file, upstream.key_file)
        auth = upstream.api_key.get("authorization") or upstream.api_key.get("BearerToken")
        hop = {"host", "content-length", "transfer-encoding", "connection", "authorization"}

        async def forward(request: web.Request) -> web.StreamResponse:
            record = {"method": request.method, "path": request.path, "query": dict(request.query),
                      "time": time.time(), "bytes": 0, "status": None}
            self.requests.append(record)
            headers = {k: v for k, v in request.headers.items() if k.lower() not in hop}
            if auth:
                headers["Authorization"] = auth if " " in auth else f"Bearer {auth}"
            body = await request.read()
            # The kubernetes client sends JSON without a Content-Type (the API server assumes JSON);
            # aiohttp would add application/octet-stream, which the API server refuses.
            async with session.request(request.method, upstream.host + request.path_qs, headers=headers,
                                       data=body or None, ssl=context,
                                       skip_auto_headers=("Content-Type",)) as up:
                record["status"] = up.status
                response = web.StreamResponse(status=up.status, headers={
                    k: v for k, v in up.headers.items() if k.lower() not in hop})
                await response.prepare(request)
                try:
                    async for chunk in up.content.iter_any():
                        record["bytes"] += len(chunk)
                        await response.write(chunk)
                    await response.write_eof()
                except (ConnectionError, aiohttp.ClientError):
                    pass  # the controller closed a watch (e.g. killed): nothing to forward to
                return response

        ready = threading.Event()

        def run() -> None:
            nonlocal session
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)

            async def setup() -> None:
                nonlocal session
                session = self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
                app = web.Application(client_max_size=4 * 1024 * 1024)
                app.router.add_route("*", "/{tail:.*}", forward)
                self._runner = web.AppRunner(app, access_log=None)
                await self._runner.setup()
                await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

            self._loop.run_until_complete(setup())
            ready.set()
            self._loop.run_forever()

        session: Any = None
        self._thread = threading.Thread(target=run, daemon=True, name="recording-proxy")
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        import asyncio

        if self._loop is not None:
            for closing in (self._runner.cleanup(), self._session.close()):
                # Open watches may keep it busy; the thread is a daemon and ends with the test process.
                with contextlib.suppress(TimeoutError):
                    asyncio.run_coroutine_threadsafe(closing, self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)

    def since(self, moment: float) -> list[dict[str, Any]]:
        return [r for r in list(self.requests) if r["time"] >= moment]


WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def resource_of(path: str) -> str:
    """'/api/v1/namespaces/ns/pods/x' -> 'pods'; '/apis/coordination.k8s.io/v1/namespaces/ns/leases/y'
    -> 'leases'."""
    parts = [p for p in path.split("/") if p]
    if "namespaces" in parts:
        i = parts.index("namespaces")
        return parts[i + 2] if len(parts) > i + 2 else "namespaces"
    return parts[-1] if parts else ""

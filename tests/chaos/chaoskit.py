"""What the chaos tests share: waits that survive an API server going away, the end-of-round check, and a
proxy in front of the API server that records a controller's requests and can expire its watches.

The controller itself runs as in the integration tests (tests/integration/controller_harness.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import yaml
from controller_harness import Cluster, resource_of

T = TypeVar("T")

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def controller_env() -> dict[str, str]:
    """The controller's environment: by default the working tree's code (the harness's choice); with
    ``KUBEDASK_CHAOS_CONTROLLER_TREE`` (e.g. ``git archive`` of a commit, unpacked) that tree's code, to
    measure a commit while the working tree is being edited."""
    tree = os.environ.get("KUBEDASK_CHAOS_CONTROLLER_TREE")
    if not tree:
        return {}
    return {"PYTHONPATH": os.pathsep.join(str(Path(tree) / p) for p in ("client", "controller", "."))}


def eventually(what: str, probe: Callable[[], T | None], timeout: float = 120, interval: float = 0.25) -> T:
    """Poll ``probe`` until it returns something truthy. Unlike the harness's ``wait_for``, an exception
    (the API server is restarting) counts as "not yet"; the last one is reported on timeout."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except Exception as error:  # the fault under test: the next poll tries again
            last = error
        else:
            if value:
                return value
            last = value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last value: {last!r}")


def converged(cluster: Cluster, name: str, workers: int) -> str | None:
    """None when request ``name`` ends a round as it must, else what is still wrong.

    Exactly ``workers`` running worker pods and one scheduler, no duplicate and none being deleted; every
    pod, the Service and the PDB owned by this request (by uid); and the status true: Running, with
    counts equal to what exists.
    """
    request = cluster.configmap(name)
    if request is None:
        return "the request is gone"
    uid = request.metadata.uid
    pods = cluster.pods(name, include_deleting=True)
    workers_now = [p for p in pods if p.metadata.labels.get("dask.org/component") == "worker"]
    schedulers = [p for p in pods if p.metadata.labels.get("dask.org/component") == "scheduler"]
    deleting = [p.metadata.name for p in pods if p.metadata.deletion_timestamp is not None]
    running = [p for p in workers_now if p.status.phase == "Running"]
    if deleting:
        return f"{len(deleting)} pods still being deleted"
    if len(workers_now) != workers or len(running) != workers:
        return f"{len(workers_now)} worker pods ({len(running)} running), expected {workers}"
    if len(schedulers) != 1:
        return f"{len(schedulers)} scheduler pods"
    if len({p.metadata.name for p in pods}) != len(pods):
        return "duplicate pod names"
    unowned = [p.metadata.name for p in pods if [o.uid for o in p.metadata.owner_references or []] != [uid]]
    if unowned:
        return f"pods not owned by the request: {unowned[:5]}"
    for kind, obj in (("Service", cluster.core.read_namespaced_service(f"{name}-scheduler", cluster.namespace)),
                      ("PDB", cluster.policy.read_namespaced_pod_disruption_budget(f"{name}-scheduler",
                                                                                  cluster.namespace))):
        if [o.uid for o in obj.metadata.owner_references or []] != [uid]:
            return f"the {kind} is not owned by the request"
    status = cluster.status(name)
    if status is None:
        return "no status"
    counts = status.workers
    if status.phase != "Running" or (counts.requested, counts.created, counts.running, counts.ready) != (
            workers, workers, workers, workers):
        return f"status {status.phase} {counts} (expected Running with {workers} everywhere)"
    return None


def wait_converged(cluster: Cluster, name: str, workers: int, timeout: float = 180) -> float:
    """Wait for :func:`converged`; the seconds it took."""
    started = time.monotonic()
    problem: list[str | None] = ["not checked yet"]

    def done() -> bool:
        problem[0] = converged(cluster, name, workers)
        return problem[0] is None

    try:
        eventually(f"{name} to converge to {workers} workers", done, timeout=timeout, interval=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; still wrong: {problem[0]}") from None
    return time.monotonic() - started


def no_orphans(cluster: Cluster) -> list[str]:
    """Pods of the namespace whose owner request (by uid) no longer exists."""
    uids = {cm.metadata.uid for cm in cluster.core.list_namespaced_config_map(cluster.namespace).items}
    return [p.metadata.name for p in cluster.core.list_namespaced_pod(cluster.namespace).items
            if p.metadata.deletion_timestamp is None
            and not {o.uid for o in p.metadata.owner_references or []} & uids]


def delete_request(cluster: Cluster, name: str, timeout: float = 120) -> None:
    """Delete a request and wait until the garbage collector has removed its pods (keeps rounds light)."""
    cluster.core.delete_namespaced_config_map(name, cluster.namespace)
    eventually(f"{name}'s pods to be garbage-collected", lambda: not cluster.pods(name, include_deleting=True),
               timeout=timeout, interval=0.5)


#: The watch event the API server sends when a watch's resourceVersion is too old to resume from.
EXPIRED = {"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                       "message": "too old resource version (injected by the chaos proxy)",
                                       "reason": "Expired", "code": 410}}


@dataclass(eq=False)  # kept in a set by identity
class _Watch:
    resource: str
    expire: asyncio.Event
    swallowing: bool = False
    swallowed: int = 0
    #: The newest resourceVersion that came down this stream (forwarded or swallowed).
    newest: int = 0


@dataclass
class Record:
    method: str
    path: str
    query: dict[str, str]
    time: float
    status: int | None = None

    @property
    def resource(self) -> str:
        return str(resource_of(self.path))

    @property
    def is_write(self) -> bool:
        return self.method in WRITE_METHODS


@dataclass
class ChaosProxy:
    """A plain-HTTP reverse proxy in front of the API server for ONE controller.

    Records every request (so a test can count a replica's writes), and on demand makes the watches it
    carries lose events (``swallow``) and then expire with a 410 ERROR event (``expire``), as a real
    API server does when a watch falls behind its history.
    """

    admin_kubeconfig: str
    workdir: Path
    requests: list[Record] = field(default_factory=list)
    expired: dict[str, int] = field(default_factory=dict)
    port: int = 0

    def __post_init__(self) -> None:
        self.upstream = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=self.admin_kubeconfig, client_configuration=self.upstream)
        self._watches: set[_Watch] = set()
        self._horizon: dict[str, int] = {}  # resource -> resourceVersions below this are "compacted"
        #: Watches refused with 410 because they asked to resume from before the horizon.
        self.refused: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def kubeconfig(self) -> str:
        path = self.workdir / f"proxy-{self.port}.kubeconfig"
        if not path.exists():
            path.write_text(yaml.safe_dump({
                "apiVersion": "v1", "kind": "Config", "current-context": "proxy",
                "clusters": [{"name": "proxy", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
                "users": [{"name": "proxy", "user": {}}],
                "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}]}))
        return str(path)

    def writes_since(self, moment: float, *, leases: bool = False) -> list[Record]:
        return [r for r in list(self.requests) if r.time >= moment and r.is_write
                and (leases or r.resource != "leases")]

    def watches_since(self, moment: float) -> list[Record]:
        return [r for r in list(self.requests) if r.time >= moment and r.query.get("watch") in ("true", "1")]

    # --- faults (called from the test's thread) --------------------------------------------------
    def swallow(self) -> int:
        """From now on, the watches open at this moment forward no events (new watches are unaffected)."""
        return self._call(self._swallow)

    def expire(self) -> dict[str, int]:
        """End every swallowing (else every open) watch with a 410 ERROR event; per resource, how many."""
        return self._call(self._expire)

    def _swallow(self) -> int:
        for watch in self._watches:
            watch.swallowing = True
        return len(self._watches)

    def _expire(self) -> dict[str, int]:
        chosen = [w for w in self._watches if w.swallowing] or list(self._watches)
        counts: dict[str, int] = {}
        for watch in chosen:
            # From now on a watch that tries to resume from before what this stream carried is refused
            # with 410 too, as the API server refuses a compacted resourceVersion: only a fresh LIST helps.
            self._horizon[watch.resource] = max(self._horizon.get(watch.resource, 0), watch.newest)
            watch.expire.set()
            counts[watch.resource] = counts.get(watch.resource, 0) + 1
        for resource, n in counts.items():
            self.expired[resource] = self.expired.get(resource, 0) + n
        return counts

    def _call(self, fn: Callable[[], T]) -> T:
        assert self._loop is not None

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    # --- the proxy ---------------------------------------------------------------------------------
    def start(self) -> ChaosProxy:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True, name="chaos-proxy")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the chaos proxy did not start within 10 s")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.run(self._serve(ready))

    async def _serve(self, ready: threading.Event) -> None:
        import aiohttp
        from aiohttp import web

        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        up = self.upstream
        context = ssl.create_default_context(cafile=up.ssl_ca_cert)
        if up.cert_file:
            context.load_cert_chain(up.cert_file, up.key_file)
        token = up.api_key.get("authorization") or up.api_key.get("BearerToken")
        # Accept-Encoding is dropped: the proxy reads watch streams line by line, uncompressed.
        hop = {"host", "content-length", "transfer-encoding", "connection", "authorization", "accept-encoding"}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None),
                                         auto_decompress=False) as session:

            async def forward(request: web.Request) -> web.StreamResponse:
                record = Record(request.method, request.path, dict(request.query), time.time())
                self.requests.append(record)
                if self._compacted(record):
                    record.status = 200
                    self.refused[record.resource] = self.refused.get(record.resource, 0) + 1
                    return web.Response(status=200, content_type="application/json",
                                        body=json.dumps(EXPIRED).encode() + b"\n")
                headers = {k: v for k, v in request.headers.items() if k.lower() not in hop}
                if token:
                    headers["Authorization"] = token if " " in token else f"Bearer {token}"
                body = await request.read()
                try:
                    upstream = await session.request(request.method, up.host + request.path_qs, headers=headers,
                                                     data=body or None, ssl=context,
                                                     skip_auto_headers=("Content-Type", "Accept-Encoding"))
                except aiohttp.ClientError as error:  # the API server is down: say so, as a gateway does
                    record.status = 502
                    return web.Response(status=502, text=f"chaos proxy: upstream unreachable: {error}")
                async with upstream:
                    record.status = upstream.status
                    response = web.StreamResponse(status=upstream.status, headers={
                        k: v for k, v in upstream.headers.items() if k.lower() not in hop})
                    watching = record.query.get("watch") in ("true", "1") and upstream.status == 200
                    # The controller hanging up (killed, or ending a watch) ends the relay quietly.
                    with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                        await response.prepare(request)
                        if watching:
                            await self._relay_watch(record.resource, upstream, response)
                        else:
                            async for chunk in upstream.content.iter_any():
                                await response.write(chunk)
                        await response.write_eof()
                    return response

            app = web.Application(client_max_size=8 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", forward)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = runner.addresses[0][1]
            ready.set()
            await self._stopping.wait()
            for watch in list(self._watches):
                watch.expire.set()
            await runner.cleanup()

    def _compacted(self, record: Record) -> bool:
        """A watch asking to resume from a resourceVersion older than what an expired stream carried."""
        if record.query.get("watch") not in ("true", "1") or record.resource not in self._horizon:
            return False
        version = record.query.get("resourceVersion", "")
        return version.isdigit() and 0 < int(version) < self._horizon[record.resource]

    async def _relay_watch(self, resource: str, upstream: Any, response: Any) -> None:
        watch = _Watch(resource, asyncio.Event())
        self._watches.add(watch)
        expired = asyncio.ensure_future(watch.expire.wait())
        try:
            while True:
                line = asyncio.ensure_future(upstream.content.readline())
                done, _ = await asyncio.wait({line, expired}, return_when=asyncio.FIRST_COMPLETED)
                if expired in done:
                    line.cancel()
                    await response.write(json.dumps(EXPIRED).encode() + b"\n")
                    return
                data = line.result()
                if not data:
                    return
                with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
                    version = json.loads(data)["object"]["metadata"]["resourceVersion"]
                    watch.newest = max(watch.newest, int(version))
                if watch.swallowing:
                    watch.swallowed += 1
                else:
                    await response.write(data)
        finally:
            expired.cancel()
            self._watches.discard(watch)


class TcpOutage:
    """A TCP relay in front of the API server (TLS passes through untouched) that can fake its outage:
    every connection dropped at once, new ones refused for a while, as when kube-apiserver restarts.

    For a client only: the API server and its other clients see nothing, so this is safe on a shared
    instance.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._thread: threading.Thread | None = None

    def start(self) -> TcpOutage:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._listen())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name="tcp-outage")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the TCP relay did not start within 10 s")
        return self

    def outage(self, seconds: float) -> None:
        """Drop every connection, refuse new ones for ``seconds``, then accept again (blocks meanwhile)."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._drop(), self._loop).result(10)
        time.sleep(seconds)  # the outage itself
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)

    def stop(self) -> None:
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._drop(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _drop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._open):
            with contextlib.suppress(Exception):
                writer.transport.abort()  # a reset, like a process that died
        self._open.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._open |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._open -= {writer, up_writer}


def kubeconfig_via(admin_kubeconfig: str, port: int, path: Path) -> str:
    """A copy of ``admin_kubeconfig`` that reaches the API server through 127.0.0.1:``port`` (its serving
    certificate names 127.0.0.1)."""
    config = yaml.safe_load(Path(admin_kubeconfig).read_text())
    for entry in config["clusters"]:
        entry["cluster"]["server"] = f"https://127.0.0.1:{port}"
    path.write_text(yaml.safe_dump(config))
    return str(path)

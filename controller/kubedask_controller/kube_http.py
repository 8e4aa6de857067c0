"""The controller's hot path: pod creates and deletes, and the pod watch, as async HTTP on the event loop.

A 1,000-worker scale-up is 1,000 POSTs. Through the official client each one is a pool thread that
sanitises the manifest, serialises it and waits on urllib3 under the GIL, competing with the watch streams
for the same cores; here each is one ``json.dumps`` and a request on a kept-alive aiohttp connection (on
this project's devcluster: 4x less controller CPU and half the wall time for 100 creates). The pod watch
(:mod:`pod_watch`) reads its LIST pages and WATCH streams here too. Everything else stays on the official
client (:mod:`kube`).

The connection settings (server, CA, client certificate, bearer token and its refresh) are the official
client's own :class:`kubernetes.client.Configuration`, so a rotated service-account token is read the same
way. A configuration this path does not handle (a proxy, a TLS server-name override) gets ``None`` from
:func:`for_configuration` and the official client is used. Errors are raised as the official client's
:class:`ApiException` (status, reason, body), so callers tell them apart exactly as before.

The write guard (a replica paused past its lease must not send) is checked in
:meth:`_GuardedRequest.send`: after a connection is ready, right before the request's bytes are written.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import kubernetes
from kubernetes.client.exceptions import ApiException

Manifest = dict[str, Any]
Guard = Callable[[], None]

#: The guard of the write being sent from this task (None: not guarded).
_guard: contextvars.ContextVar[Guard | None] = contextvars.ContextVar("kubedask_write_guard", default=None)


class _GuardedRequest(aiohttp.ClientRequest):
    async def send(self, conn: Any) -> aiohttp.ClientResponse:
        guard = _guard.get()
        if guard is not None:
            guard()  # raises: nothing of this request has been written
        return await super().send(conn)


class _Connection:
    """One aiohttp session to the API server with the official client's settings (made on first use, inside
    the event loop)."""

    #: Seconds an idle connection is kept for the next request (aiohttp's default).
    keepalive = 15.0

    def __init__(self, configuration: kubernetes.client.Configuration, user_agent: str, connections: int) -> None:
        self.configuration = configuration
        self.base = configuration.host.rstrip("/")
        self.user_agent = user_agent
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None

    def _ssl(self) -> ssl.SSLContext | bool:
        config = self.configuration
        if not self.base.startswith("https://"):
            return False
        if not config.verify_ssl:
            return False
        context = ssl.create_default_context(cafile=config.ssl_ca_cert or None)
        if config.cert_file:
            context.load_cert_chain(config.cert_file, config.key_file or None)
        return context

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl(), limit=self.connections,
                                               keepalive_timeout=self.keepalive),
                request_class=_GuardedRequest,
                # (connect, read) as the official client's calls: a call must never hang a pass forever.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": self.user_agent}
        # As the official client authenticates: its auth settings (the in-cluster loader's "BearerToken", a
        # kubeconfig's token) call the configuration's refresh hook, so a projected token is re-read when due.
        settings: dict[str, dict[str, Any]] = dict(self.configuration.auth_settings())  # type: ignore[arg-type]
        for setting in settings.values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[str(setting["key"]).title()] = str(setting["value"])
        return headers

    @staticmethod
    def _raise_for(status: int, reason: str | None, text: str) -> None:
        if status >= 300:
            error = ApiException(status=status, reason=reason)
            error.body = text
            raise error


class PodWrites(_Connection):
    """Creates and deletes pods."""

    # A new request's creates that find no idle connection each pay a TLS handshake on the event loop: 11
    # of them held a 10-worker request's first create back 35 ms when the last writes were 20 s before. A
    # minute stays inside the API server's own idle timeout (on the devcluster a connection idle for 80 s
    # was reused, one idle for 105 s had been closed by the server, and aiohttp opened a new one cleanly).
    keepalive = 60.0

    def __init__(self, configuration: kubernetes.client.Configuration, user_agent: str, connections: int) -> None:
        super().__init__(configuration, user_agent, connections)
        #: One per connection: a create waiting for its turn holds no request body or aiohttp request yet.
        self._slots: asyncio.Semaphore | None = None

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._slots = asyncio.Semaphore(self.connections)
        return super()._session_now()

    async def _send(self, method: str, path: str, body: Manifest, guard: Guard | None) -> None:
        session = self._session_now()
        assert self._slots is not None
        async with self._slots:
            await self._send_now(session, method, path, body, guard)

    async def _send_now(self, session: aiohttp.ClientSession, method: str, path: str, body: Manifest,
                        guard: Guard | None) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        token = _guard.set(guard)
        try:
            async with session.request(method, self.base + path, data=data, headers=self._headers()) as response:
                self._raise_for(response.status, response.reason, await response.text(errors="replace"))
        finally:
            _guard.reset(token)

    async def create(self, manifest: Manifest, guard: Guard | None) -> None:
        await self._send("POST", f"/api/v1/namespaces/{manifest['metadata']['namespace']}/pods", manifest, guard)

    async def delete(self, namespace: str, name: str, options: Manifest, guard: Guard | None) -> None:
        await self._send("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", options, guard)



class Reads(_Connection):
    """GETs that may be long (a LIST page) or endless (a WATCH), never guarded: reads change nothing. Unlike
    the writes they are always made here (the controller has no other pod watch), so a proxy and a TLS
    server-name override are honoured as the official client would."""

    def _options(self) -> dict[str, Any]:
        config = self.configuration
        options: dict[str, Any] = {}
        if config.proxy:
            options.update(proxy=config.proxy, proxy_headers=config.proxy_headers)
        if getattr(config, "tls_server_name", None):
            options["server_hostname"] = config.tls_server_name
        return options

    async def get(self, path: str, params: dict[str, str]) -> Manifest:
        async with self._session_now().get(self.base + path, params=params, headers=self._headers(),
                                           **self._options()) as response:
            text = await response.text(errors="replace")
            self._raise_for(response.status, response.reason, text)
        decoded: Manifest = json.loads(text)
        return decoded

    async def stream(self, path: str, params: dict[str, str], read_timeout: float) -> AsyncIterator[Manifest]:
        """Each line of a WATCH response, decoded; ends when the server ends it (its timeoutSeconds). A
        silent connection is given up after ``read_timeout`` seconds (TimeoutError)."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=read_timeout)
        async with self._session_now().get(self.base + path, params=params, headers=self._headers(),
                                           timeout=timeout, **self._options()) as response:
            if response.status >= 300:
                self._raise_for(response.status, response.reason, await response.text(errors="replace"))
            pending = b""
            # Not readline(): aiohttp caps a line at its buffer size, and one pod can be larger.
            async for chunk in response.content.iter_any():
                pending += chunk
                if b"\n" not in chunk:
                    continue
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)


def handled(configuration: kubernetes.client.Configuration) -> bool:
    """Whether this module connects as the official client would (else only the official client knows how)."""
    return not (configuration.proxy or getattr(configuration, "tls_server_name", None)
                or not configuration.host.startswith(("http://", "https://")))


def for_configuration(configuration: kubernetes.client.Configuration, user_agent: str,
                      connections: int) -> PodWrites | None:
    """The fast path for ``configuration``, or None where only the official client knows how to connect."""
    return PodWrites(configuration, user_agent, connections) if handled(configuration) else None

"""The port-forward: local TCP listeners reaching a pod's ports through the API server.

It speaks the Kubernetes ``pods/portforward`` websocket protocol (``v4.channel.k8s.io``) in-process: no
``kubectl`` subprocess. Each accepted local TCP connection gets its own websocket, so one dropped or
broken connection (a scheduler restart, a proxy timeout) never takes the listener or other connections
with it; the next connection simply opens a new stream.

Surviving the API server going away (a restart, an upgrade): a stream it breaks ends its local connection
at once, and a silent one (no pong to the websocket heartbeat) within seconds, so Dask's comm notices and
connects again; a new connection that finds the API server down or unready retries with bounded backoff
(:class:`~kubedask.reconnect.Reconnect`) before it gives up, closes, and logs a warning naming the cause
(also kept in :attr:`PortForward.last_error`). After a break, new streams wait until the API server says it
is ready (``/readyz``). A restarted kube-apiserver serves a fraction of a second after it starts, ~2 s
before it is ready: until its authorizer has loaded RBAC it refuses requests with 403 (the devcluster's
controller-manager logs them after every restart), which the forward would report as a refusal. And the
Dask client's reconnect comes later that way, after the scheduler noticed its old connection end: when the
scheduler hears of that end only after the client registered again under the same id, it closes the new
connection as well (distributed's ``Scheduler.add_client``), and what the client had resubmitted is
cancelled (the likely cause of one CI failure; the kubelet ended the old connection 0.03-1 s after the API
server died on the devcluster).

Example:
    >>> forward = PortForward(configuration, "team-a", "analysis-scheduler", [8786, 8787])  # doctest: +SKIP
    >>> await forward.start()  # doctest: +SKIP
    >>> forward.address(8786)  # doctest: +SKIP
    'tcp://127.0.0.1:40123'
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import urllib.parse
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from kubernetes.client import Configuration

from .reconnect import GaveUp, Reconnect, with_retries

if TYPE_CHECKING:
    import aiohttp
# aiohttp itself is imported where it is used: it is ~0.15 s of a fresh ``from kubedask import KubeCluster``,
# and only a port-forward needs it.

logger = logging.getLogger(__name__)

PORTFORWARD_PROTOCOL = "v4.channel.k8s.io"
_CHUNK = 64 * 1024


#: Seconds between websocket pings; a stream whose pong is late by half of that is closed as dead.
HEARTBEAT = 10.0
#: Answers of an API server that is starting, overloaded or behind a restarting proxy: worth a retry.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


class PortForwardError(ConnectionError):
    """The API server refused or failed a port-forward stream."""


class NotReady(ConnectionError):
    """The API server answers, but its ``/readyz`` does not say ok yet (worth a retry)."""


def transient(error: BaseException) -> bool:
    """Whether opening a stream may succeed if tried again soon (the API server is down or not ready)."""
    import aiohttp
    if isinstance(error, aiohttp.WSServerHandshakeError):
        return error.status in TRANSIENT_STATUSES
    if isinstance(error, aiohttp.ClientSSLError):
        return False  # a certificate that does not verify will not verify on the next try either
    return isinstance(error, aiohttp.ClientConnectionError | asyncio.TimeoutError | ConnectionError)


def describe(error: BaseException, configuration: Configuration) -> str:
    """What went wrong opening a stream, in words that name the API server."""
    import aiohttp
    if isinstance(error, aiohttp.WSServerHandshakeError):
        return f"the API server at {configuration.host} answered HTTP {error.status} {error.message}"
    if isinstance(error, asyncio.TimeoutError):
        return f"the API server at {configuration.host} did not answer in time"
    if isinstance(error, NotReady):
        return f"the API server at {configuration.host} is not ready: {error}"
    return f"the API server at {configuration.host} is unreachable: {error}"


def portforward_url(configuration: Configuration, namespace: str, pod: str, port: int) -> str:
    """The API server URL of a pod's port-forward subresource for one port."""
    base = configuration.host.rstrip("/")
    path = f"/api/v1/namespaces/{urllib.parse.quote(namespace)}/pods/{urllib.parse.quote(pod)}/portforward"
    return f"{base}{path}?ports={int(port)}"


def ssl_context(configuration: Configuration) -> ssl.SSLContext | bool:
    """An SSL context with the same trust and client certificate as the kubernetes client uses."""
    if not configuration.host.startswith("https"):
        return False
    if not configuration.verify_ssl:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(
            cafile=configuration.ssl_ca_cert, cadata=getattr(configuration, "ca_cert_data", None)
        )
        if configuration.assert_hostname is False:
            context.check_hostname = False
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context


def auth_headers(configuration: Configuration) -> dict[str, str]:
    """The Authorization header of the configuration (token, exec plugin, or basic auth)."""
    headers: dict[str, str] = {}
    for setting in configuration.auth_settings().values():
        if isinstance(setting, dict) and setting.get("in") == "header" and setting.get("value"):
            headers[str(setting["key"])] = str(setting["value"])
    return headers


class PortForward:
    """Local TCP listeners on ``127.0.0.1`` forwarding to ports of one pod through the API server.

    The pod is looked up by name at every new connection, so a recreated scheduler pod with the same
    name is reached again without restarting the forward.
    """

    def __init__(
        self,
        configuration: Configuration,
        namespace: str,
        pod: str,
        ports: list[int],
        host: str = "127.0.0.1",
        reconnect: Reconnect | None = None,
        heartbeat: float | None = HEARTBEAT,
    ) -> None:
        self.configuration = configuration
        self.reconnect = reconnect or Reconnect()
        self.heartbeat = heartbeat
        #: Why the last connection could not be forwarded (None while the forward works).
        self.last_error: str | None = None
        self.namespace = namespace
        self.pod = pod
        self.ports = list(ports)
        self.host = host
        self.local_ports: dict[int, int] = {}
        self._servers: list[asyncio.Server] = []
        self._session: aiohttp.ClientSession | None = None
        self._connections: set[asyncio.Task[None]] = set()
        #: A stream broke or could not be opened: the next ones wait for ``/readyz`` first.
        self._unsure = False

    async def start(self) -> None:
        """Open one listener per remote port, each on a free local port."""
        import aiohttp
        self._session = aiohttp.ClientSession()
        for remote in self.ports:
            server = await asyncio.start_server(self._acceptor(remote), self.host, 0)
            self._servers.append(server)
            self.local_ports[remote] = server.sockets[0].getsockname()[1]
        logger.debug("port-forward %s/%s: %s", self.namespace, self.pod, self.local_ports)

    async def check(self, remote_port: int) -> None:
        """Open and close one stream, so a refused forward (RBAC, missing pod) is reported clearly now
        rather than as a connect timeout inside Dask.

        Raises:
            PortForwardError: the API server refused the stream or the pod's port is closed.
        """
        import aiohttp
        assert self._session is not None
        url = portforward_url(self.configuration, self.namespace, self.pod, remote_port)
        try:
            async with self._session.ws_connect(
                url,
                protocols=(PORTFORWARD_PROTOCOL,),
                headers=auth_headers(self.configuration),
                ssl=ssl_context(self.configuration),
                proxy=getattr(self.configuration, "proxy", None) or None,
            ) as ws:
                await ws.close()
        except aiohttp.WSServerHandshakeError as e:
            hint = ""
            if e.status in (401, 403):
                hint = (
                    f" The user needs 'get' and 'create' on pods/portforward in namespace {self.namespace!r}."
                )
            raise PortForwardError(
                f"the API server refused a port-forward to pod {self.namespace}/{self.pod} port "
                f"{remote_port}: HTTP {e.status} {e.message}.{hint}"
            ) from None
        except aiohttp.ClientError as e:
            raise PortForwardError(
                f"cannot port-forward to pod {self.namespace}/{self.pod} through the API server: {e}"
            ) from None

    def address(self, remote_port: int, scheme: str = "tcp") -> str:
        """The local address that reaches ``remote_port`` of the pod."""
        return f"{scheme}://{self.host}:{self.local_ports[remote_port]}"

    async def close(self) -> None:
        """Stop listening and drop the open connections."""
        for server in self._servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _acceptor(
        self, remote: int
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]]:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # close() cancels open connections; ending quietly keeps asyncio's server callback from
            # logging the cancellation as an error.
            with contextlib.suppress(asyncio.CancelledError):
                await self._accept(remote, reader, writer)

        return accept

    async def _accept(self, remote: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import aiohttp
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(remote, reader, writer)
        except (GaveUp, aiohttp.WSServerHandshakeError) as e:
            # No stream at all: the user's next step depends on why, so say it where they look.
            cause = str(e) if isinstance(e, GaveUp) else describe(e, self.configuration)
            self.last_error = f"port-forward to pod {self.namespace}/{self.pod} port {remote}: {cause}"
            logger.warning("%s; the local connection is closed", self.last_error)
        except Exception as e:
            # One connection's failure is that connection's business; the listener keeps accepting.
            logger.debug("port-forward connection to %s:%d ended: %r", self.pod, remote, e)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _open(self, remote: int) -> aiohttp.ClientWebSocketResponse:
        assert self._session is not None
        url = portforward_url(self.configuration, self.namespace, self.pod, remote)
        proxy = getattr(self.configuration, "proxy", None)
        return await self._session.ws_connect(
            url,
            protocols=(PORTFORWARD_PROTOCOL,),
            headers=auth_headers(self.configuration),
            ssl=ssl_context(self.configuration),
            proxy=proxy or None,
            autoping=True,
            heartbeat=self.heartbeat,
            max_msg_size=0,
        )

    async def _open_when_ready(self, remote: int) -> aiohttp.ClientWebSocketResponse:
        if self._unsure:
            await self._ready()
        try:
            return await self._open(remote)
        except Exception as e:
            self._unsure = self._unsure or transient(e)
            raise

    async def _ready(self) -> None:
        """Return once the API server's ``/readyz`` says ok; raise :class:`NotReady` (or a connection
        error) while it does not. An API server that will not tell (401, 403, 404) is taken as ready: the
        stream's own answer decides then."""
        import aiohttp
        assert self._session is not None
        async with self._session.get(
            f"{self.configuration.host.rstrip('/')}/readyz",
            headers=auth_headers(self.configuration),
            ssl=ssl_context(self.configuration),
            proxy=getattr(self.configuration, "proxy", None) or None,
            timeout=aiohttp.ClientTimeout(total=5),
        ) as response:
            if response.status == 200 or response.status in (401, 403, 404):
                self._unsure = False
                return
            raise NotReady(f"/readyz answered HTTP {response.status}")

    async def _serve(self, remote: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import aiohttp
        ws = await with_retries(lambda: self._open_when_ready(remote), self.reconnect, transient,
                                lambda e: describe(e, self.configuration))
        self.last_error = None
        async with ws:
            upstream = asyncio.ensure_future(_local_to_ws(reader, ws))
            try:
                await _ws_to_local(ws, writer, f"{self.namespace}/{self.pod}:{remote}")
            finally:
                local_closed = upstream.done()
                upstream.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await upstream
            broken = ws.exception() is not None or ws.close_code == aiohttp.WSCloseCode.ABNORMAL_CLOSURE
            if not local_closed and broken:
                # Not the pod's side ending the connection: the API server went away (restart, dead peer).
                # Dask only sees its comm closed; say here what happened to it.
                self._unsure = True
                self.last_error = (f"port-forward to pod {self.namespace}/{self.pod} port {remote}: the stream "
                                   f"through the API server at {self.configuration.host} broke "
                                   f"({ws.exception() or f'websocket close code {ws.close_code}'})")
                logger.warning("%s; its local connection is closed, new ones open new streams", self.last_error)


async def _local_to_ws(reader: asyncio.StreamReader, ws: aiohttp.ClientWebSocketResponse) -> None:
    while data := await reader.read(_CHUNK):
        await ws.send_bytes(b"\x00" + data)  # channel 0: data of the first (only) port
    await ws.close()


async def _ws_to_local(ws: aiohttp.ClientWebSocketResponse, writer: asyncio.StreamWriter, what: str) -> None:
    """Copy channel 0 to the local socket; report channel 1 (errors). Each channel starts with its port."""
    import aiohttp
    seen_header = {0: False, 1: False}
    error = b""
    async for message in ws:
        if message.type != aiohttp.WSMsgType.BINARY or not message.data:
            continue
        channel, payload = message.data[0], message.data[1:]
        if channel in seen_header and not seen_header[channel]:
            seen_header[channel] = True
            payload = payload[2:]  # the little-endian port number that opens every channel
        if channel == 0 and payload:
            writer.write(payload)
            await writer.drain()
        elif channel == 1 and payload:
            error += payload
    if error:
        raise ConnectionError(f"port-forward to {what} failed: {error.decode(errors='replace')}")

"""How the client reaches a scheduler: cluster DNS, an external address, or a port-forward.

The port-forward speaks the Kubernetes ``pods/portforward`` websocket protocol (``v4.channel.k8s.io``)
through the API server, in-process: no ``kubectl`` subprocess. Each accepted local TCP connection gets
its own websocket, so one dropped or broken connection (a scheduler restart, a proxy timeout) never takes
the listener or other connections with it; the next connection simply opens a new stream.

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
import os
import socket
import ssl
import urllib.parse
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from kubernetes.client import Configuration

from .errors import KubeClusterError

logger = logging.getLogger(__name__)

PORTFORWARD_PROTOCOL = "v4.channel.k8s.io"
_CHUNK = 64 * 1024


class PortForwardError(ConnectionError):
    """The API server refused or failed a port-forward stream."""


@dataclass(frozen=True)
class Route:
    """Where to connect: ``kind`` says how the address was found (``forward`` means none was)."""

    kind: Literal["dns", "external", "forward"]
    address: str | None = None


def running_in_cluster() -> bool:
    """True inside a Kubernetes pod (the kubelet sets ``KUBERNETES_SERVICE_HOST`` in every container).

    Outside a pod, looking up ``*.svc.cluster.local`` would only ask the host's resolver about a name it
    cannot know (and may send the query off the machine), so DNS is only tried in-cluster.
    """
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


async def resolves(address: str, retries: int, interval: float = 1.0) -> bool:
    """Whether the host of ``tcp://host:port`` resolves, trying ``retries`` times (DNS may lag a Service)."""
    host = host_of(address)
    loop = asyncio.get_running_loop()
    for attempt in range(max(1, retries)):
        try:
            await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            return True
        except OSError:
            if attempt + 1 < retries:
                await asyncio.sleep(interval)
    return False


async def choose_route(
    scheduler_address: str | None,
    external_address: str | None,
    *,
    in_cluster: bool,
    dns_retries: int,
) -> Route:
    """Pick how to reach the scheduler: cluster DNS in-cluster, else the external address, else forward.

    Example:
        >>> asyncio.run(choose_route("tcp://a.ns.svc.cluster.local:8786", "tcp://10.0.0.2:31234",
        ...                          in_cluster=False, dns_retries=1))
        Route(kind='external', address='tcp://10.0.0.2:31234')
    """
    if in_cluster and scheduler_address and await resolves(scheduler_address, dns_retries):
        return Route("dns", scheduler_address)
    if external_address:
        return Route("external", external_address)
    return Route("forward")


def host_of(address: str) -> str:
    """``tcp://host:port`` or ``http://host:port/path`` -> ``host``."""
    netloc = address.split("://", 1)[-1].split("/", 1)[0]
    return netloc.rsplit(":", 1)[0].strip("[]")


def port_of(address: str) -> int:
    """``tcp://host:port`` -> ``port``."""
    netloc = address.split("://", 1)[-1].split("/", 1)[0]
    return int(netloc.rsplit(":", 1)[1])


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
    ) -> None:
        self.configuration = configuration
        self.namespace = namespace
        self.pod = pod
        self.ports = list(ports)
        self.host = host
        self.local_ports: dict[int, int] = {}
        self._servers: list[asyncio.Server] = []
        self._session: aiohttp.ClientSession | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Open one listener per remote port, each on a free local port."""
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
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(remote, reader, writer)
        except Exception as e:
            # One connection's failure is that connection's business; the listener keeps accepting.
            logger.debug("port-forward connection to %s:%d ended: %r", self.pod, remote, e)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, remote: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._session is not None
        url = portforward_url(self.configuration, self.namespace, self.pod, remote)
        proxy = getattr(self.configuration, "proxy", None)
        async with self._session.ws_connect(
            url,
            protocols=(PORTFORWARD_PROTOCOL,),
            headers=auth_headers(self.configuration),
            ssl=ssl_context(self.configuration),
            proxy=proxy or None,
            autoping=True,
            max_msg_size=0,
        ) as ws:
            upstream = asyncio.ensure_future(_local_to_ws(reader, ws))
            try:
                await _ws_to_local(ws, writer, f"{self.namespace}/{self.pod}:{remote}")
            finally:
                upstream.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await upstream


async def _local_to_ws(reader: asyncio.StreamReader, ws: aiohttp.ClientWebSocketResponse) -> None:
    while data := await reader.read(_CHUNK):
        await ws.send_bytes(b"\x00" + data)  # channel 0: data of the first (only) port
    await ws.close()


async def _ws_to_local(ws: aiohttp.ClientWebSocketResponse, writer: asyncio.StreamWriter, what: str) -> None:
    """Copy channel 0 to the local socket; report channel 1 (errors). Each channel starts with its port."""
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


def local_scheduler_ip(host: str | None, interface: str | None, targets: Iterable[str] = ()) -> str:
    """The IP that pods use to reach a scheduler running in this process (``deploy_mode="local"``).

    In order: an explicit ``host`` (not a wildcard); the IPv4 address of ``interface``; the local address
    of the route towards each of ``targets`` that is not loopback (KubeCluster passes the address the API
    server advertises to pods, then the API server address of the kubeconfig); the local address of the
    default route. Finding a route sends no packet (a UDP socket is only "connected"). On the local
    development cluster the API server advertises the host-only node address, which is this machine, so
    that address is chosen; elsewhere pass ``host=`` or ``interface=`` when the guess is wrong.

    Example:
        >>> local_scheduler_ip("10.0.0.5", None)
        '10.0.0.5'
    """
    if host and host not in ("0.0.0.0", "::", ""):
        return host
    if interface:
        from distributed.utils import get_ip_interface

        return str(get_ip_interface(interface))  # type: ignore[no-untyped-call]
    for target in (*targets, "10.255.255.255"):
        if not target:
            continue
        try:
            target_ip = socket.gethostbyname(target)
        except OSError:
            continue
        if target_ip.startswith("127."):
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.connect((target_ip, 9))
            except OSError:
                continue
            ip = str(s.getsockname()[0])
        if not ip.startswith("127."):
            return ip
    raise KubeClusterError(
        "cannot find an address for workers to reach the local scheduler; pass host='<IP reachable from "
        "pods>' or interface='<network interface>'"
    )

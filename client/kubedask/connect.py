"""How the client reaches a scheduler: cluster DNS, an external address, or a port-forward.

Example:
    >>> asyncio.run(choose_route("tcp://a.ns.svc.cluster.local:8786", "tcp://10.0.0.2:31234",
    ...                          in_cluster=False, dns_retries=1))
    Route(kind='external', address='tcp://10.0.0.2:31234')
"""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import dataclass
from typing import Literal

from kubernetes.client import Configuration

from .portforward import PortForward
from .spec import DASHBOARD_PORT, SCHEDULER_PORT, ClusterStatus, scheduler_name


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


@dataclass
class Connection:
    """How this client reaches a remote scheduler: its address, the dashboard's, and any forward to close."""

    address: str
    route: str
    dashboard: tuple[str, int] | None = None
    forward: PortForward | None = None


async def reach_scheduler(
    status: ClusterStatus, configuration: Configuration, namespace: str, cluster: str, dns_retries: int
) -> Connection:
    """Find (or open, through a port-forward) the way to a remote cluster's scheduler and dashboard.

    Raises:
        PortForwardError: a port-forward was needed and the API server refused it.
    """
    route = await choose_route(
        status.scheduler_address, status.external_address, in_cluster=running_in_cluster(), dns_retries=dns_retries
    )
    dashboard = None
    if route.address is not None and route.kind == "dns" and status.dashboard_address:
        dashboard = (host_of(status.dashboard_address), port_of(status.dashboard_address))
    if route.address is not None and dashboard is not None:
        return Connection(route.address, route.kind, dashboard)
    # The dashboard (and, without a route, the scheduler too) goes through the API server.
    forward = PortForward(configuration, namespace, scheduler_name(cluster), [SCHEDULER_PORT, DASHBOARD_PORT])
    await forward.start()
    try:
        if route.address is None:
            await forward.check(SCHEDULER_PORT)
    except BaseException:
        await forward.close()
        raise
    address = route.address or forward.address(SCHEDULER_PORT)
    return Connection(address, route.kind, (forward.host, forward.local_ports[DASHBOARD_PORT]), forward)


def with_forward_error(exc: BaseException, forward: PortForward | None) -> BaseException:
    """``exc`` again, with the port-forward's last error in its message if it has one: a connection made
    through a forward fails as a bare timeout or reset, and only the forward knows why (the pod went, the
    API server refused the stream)."""
    cause = forward.last_error if forward is not None else None
    if cause is None or not isinstance(exc, OSError):
        return exc
    return OSError(f"{exc} (the port-forward to the scheduler reported: {cause})")

"""``deploy_mode="local"``: the scheduler runs in this process and workers in pods connect back to it.

Example:
    >>> local_scheduler_ip("10.0.0.5", None)
    '10.0.0.5'
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

from .connect import host_of, port_of
from .errors import KubeClusterError
from .kube import Api


async def start_local_scheduler(
    host: str | None, port: int, interface: str | None, protocol: str, dashboard_address: str | None,
    security: Any, idle_timeout: Any,
) -> Any:
    """Start a ``distributed.Scheduler`` in this process (the caller closes it)."""
    from distributed import Scheduler

    scheduler = Scheduler(
        # distributed refuses host and interface together; the configured host is only a default.
        host=None if interface else host,
        port=port,
        interface=interface,
        protocol=protocol if "://" in protocol else f"{protocol}://",
        dashboard_address=dashboard_address,
        security=security,
        idle_timeout=idle_timeout,
    )
    await scheduler
    return scheduler


async def local_worker_address(
    api: Api, apiserver: str, scheduler_address: str, protocol: str, host: str | None, interface: str | None
) -> str:
    """The address pods use to reach the in-process scheduler listening at ``scheduler_address``."""
    # Towards the address the API server advertises to pods first: pods reach it by construction.
    targets = [*await api.apiserver_endpoints(), host_of(apiserver)]
    ip = local_scheduler_ip(host, interface, targets)
    return f"{protocol.split('://')[0]}://{ip}:{port_of(scheduler_address)}"


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

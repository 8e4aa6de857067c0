# mypy: disallow-untyped-calls=False
# (distributed has no type hints; formatting the dashboard link with its config is the point here.)
"""``kubectl dask dashboard NAME``: forward the scheduler's dashboard through the API server (the client's
own port-forward, no kubectl subprocess), print the link, and keep forwarding until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from typing import Protocol

from distributed.utils import format_dashboard_link

from .. import spec
from ..portforward import PortForward, PortForwardError
from .context import CliError, Context


class Forward(Protocol):
    """What the command needs of :class:`~kubedask.portforward.PortForward` (a fake in tests)."""

    host: str
    local_ports: dict[int, int]

    async def start(self) -> None: ...
    async def check(self, remote_port: int) -> None: ...
    async def close(self) -> None: ...


OpenForward = Callable[[str, str, list[int]], Forward]


def api_server_forward(ctx: Context) -> OpenForward:
    def open_forward(namespace: str, pod: str, ports: list[int]) -> Forward:
        assert ctx.kube.configuration is not None
        return PortForward(ctx.kube.configuration, namespace, pod, ports)

    return open_forward


async def until_interrupted() -> None:
    """Return at the first Ctrl-C (SIGINT) or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def run(ctx: Context, name: str, open_forward: OpenForward | None = None,
              stopped: Callable[[], Awaitable[None]] = until_interrupted) -> None:
    view_data = (await ctx.request(name)).get("data") or {}
    where = f"{ctx.namespace}/{name}"
    if (view_data.get(spec.KEY_DEPLOY_MODE) or "remote") == "local":
        raise CliError(f"the scheduler of {where} runs in its client's process (deploy-mode local); "
                       f"its dashboard is served there (cluster.dashboard_link)")
    pod = spec.scheduler_name(name)
    async with ctx.calling(f"read pod {pod!r} in namespace {ctx.namespace!r}"):
        if await ctx.api().read_pod(pod) is None:
            raise CliError(f"the scheduler pod {ctx.namespace}/{pod} does not exist (yet); "
                           f"`kubectl dask describe {name}` shows why")
    forward = (open_forward or api_server_forward(ctx))(ctx.namespace, pod, [spec.DASHBOARD_PORT])
    await forward.start()
    try:
        try:
            await forward.check(spec.DASHBOARD_PORT)
        except PortForwardError as e:
            raise CliError(str(e)) from None
        link = format_dashboard_link(forward.host, forward.local_ports[spec.DASHBOARD_PORT])
        ctx.print(f"Dashboard of {where}: {link}")
        print("Forwarding through the Kubernetes API server; press Ctrl-C to stop.", file=ctx.err)
        ctx.out.flush()
        await stopped()
    finally:
        with contextlib.suppress(Exception):
            await forward.close()

"""``kubectl dask scale NAME N``: set the worker count (and turn the controller's adaptivity off), the same
change as ``KubeCluster.scale(N)``."""

from __future__ import annotations

from .. import spec
from ..request_io import RequestIO
from .context import CliError, Context

#: The group the unsuffixed ``workers`` / ``worker-template`` keys describe; the only one a request has
#: until named worker groups exist.
DEFAULT_GROUP = "default"


async def run(ctx: Context, name: str, workers: int, group: str = DEFAULT_GROUP) -> None:
    if workers < 0:
        raise CliError(f"cannot scale to {workers} workers: give a number of workers of 0 or more")
    if workers > spec.MAX_WORKERS:
        raise CliError(f"cannot scale to {workers} workers: at most {spec.MAX_WORKERS} are allowed")
    request = await ctx.request(name)
    if group != DEFAULT_GROUP:
        raise CliError(f"cluster {ctx.namespace}/{name} has no worker group {group!r}: its only group is "
                       f"{DEFAULT_GROUP!r} (the request's workers and worker-template keys)")
    adaptive = bool((request.get("data") or {}).get(spec.KEY_ADAPT))
    async with ctx.calling(f"patch configmap {name!r} in namespace {ctx.namespace!r}"):
        await RequestIO(ctx.api(), name).set_workers(workers)
    note = " (adaptive scaling turned off)" if adaptive else ""
    ctx.print(f"daskcluster {ctx.namespace}/{name} scaled to {workers} workers{note}")

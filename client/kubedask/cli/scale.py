"""``kubectl dask scale NAME N``: set the worker count (and turn the controller's adaptivity off), the same
change as ``KubeCluster.scale(N)``."""

from __future__ import annotations

from .. import spec
from ..request_io import RequestIO
from .context import CliError, Context

#: The group the unsuffixed ``workers`` / ``worker-template`` keys describe.
DEFAULT_GROUP = spec.DEFAULT_GROUP


async def run(ctx: Context, name: str, workers: int, group: str = DEFAULT_GROUP) -> None:
    if workers < 0:
        raise CliError(f"cannot scale to {workers} workers: give a number of workers of 0 or more")
    if workers > spec.MAX_WORKERS:
        raise CliError(f"cannot scale to {workers} workers: at most {spec.MAX_WORKERS} are allowed")
    request = await ctx.request(name)
    data = request.get("data") or {}
    named = (g for base, g in filter(None, map(spec.split_group_key, data)) if base == spec.KEY_WORKER_TEMPLATE)
    groups = [DEFAULT_GROUP, *sorted(named)]
    if group not in groups:
        raise CliError(f"cluster {ctx.namespace}/{name} has no worker group {group!r}: its groups are "
                       f"{', '.join(map(repr, groups))} ('default' is the request's workers and worker-template keys; "
                       f"a group GROUP is added with the keys workers.GROUP and worker-template.GROUP)")
    adaptive = group == DEFAULT_GROUP and bool(data.get(spec.KEY_ADAPT))
    async with ctx.calling(f"patch configmap {name!r} in namespace {ctx.namespace!r}"):
        await RequestIO(ctx.api(), name).set_workers(workers, group)
    note = " (adaptive scaling turned off)" if adaptive else ""
    where = "" if group == DEFAULT_GROUP else f" in group {group}"
    ctx.print(f"daskcluster {ctx.namespace}/{name} scaled to {workers} workers{where}{note}")

"""``kubectl dask get [NAME] [-n NS | -A] [-o wide|json|yaml]``: the clusters and their state at a glance.

Example (output)::

    $ kubectl dask get -n team-a
    NAME       PHASE     WORKERS   SCHEDULER                                         DASHBOARD   AGE
    analysis   Running   3/3       tcp://analysis-scheduler.team-a.svc.cluster.local:8786   ...   5m
"""

from __future__ import annotations

from .context import CliError, Context
from .output import as_list, dump, table
from .view import HEADERS, WIDE_HEADERS, ClusterView


async def views(ctx: Context, name: str | None) -> list[ClusterView]:
    """The requests to show, sorted by namespace and name."""
    if name is not None:
        if ctx.all_namespaces:
            raise CliError("a cluster name cannot be combined with -A/--all-namespaces; give its namespace with -n")
        return [ClusterView.of(await ctx.request(name))]
    if ctx.all_namespaces:
        async with ctx.calling("list configmaps at the cluster scope"):
            requests = await ctx.kube.list_requests(None)
    else:
        async with ctx.calling(f"list configmaps in namespace {ctx.namespace!r}"):
            requests = await ctx.kube.list_requests(ctx.namespace)
    found = [ClusterView.of(r) for r in requests]
    return sorted(found, key=lambda v: (v.namespace, v.name))


def render(ctx: Context, found: list[ClusterView], single: bool) -> str | None:
    """The text to print, or None when there is nothing (then kubectl's ``No resources found`` goes to
    stderr, so a script reading stdout sees an empty list)."""
    if ctx.output in ("json", "yaml"):
        objects = [v.to_object() for v in found]
        return dump(objects[0] if single else as_list(objects), ctx.output)
    if not found:
        return None
    wide = ctx.output == "wide"
    headers = list(WIDE_HEADERS if wide else HEADERS)
    rows = [v.row(wide) for v in found]
    colour_column = 1
    if ctx.all_namespaces:
        headers.insert(0, "NAMESPACE")
        rows = [[v.namespace, *row] for v, row in zip(found, rows, strict=True)]
        colour_column = 2
    return table(headers, rows, colour_column=colour_column, colour=ctx.colour)


async def run(ctx: Context, name: str | None) -> None:
    found = await views(ctx, name)
    text = render(ctx, found, single=name is not None)
    if text is None:
        where = "any namespace" if ctx.all_namespaces else f"namespace {ctx.namespace!r}"
        print(f"No kubedask clusters found in {where}.", file=ctx.err)
        return
    ctx.print(text)

"""Scenarios 6 and 7 (docs/benchmarks/README.md): what creating workers costs the API server, and many
clusters under one controller.

6. API requests per worker created: one cluster of ``api_workers`` per tool, every request its
   identity sent from the create until ``api_settle`` seconds after all workers ran (the last status
   write), from the API server's audit log, WATCH calls excluded; with the controller's CPU seconds.
7. ``many_clusters`` x ``many_workers`` at once (10,000 pods): time to all Running, the controller's peak
   RSS and CPU seconds, the tools one after another in fresh namespaces and controller processes.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from . import audit, manifests
from .processes import Footprint, wait_until
from .scenarios import (
    ALL_DASK_PODS,
    Context,
    _delete_namespaces,
    _poll_interval,
    _running_at_least,
    _start_controllers,
    _stop_controllers,
    _wait_counts,
    _wait_gone,
    _wait_no_deployments,
)
from .tools import Tool

Result = dict[str, Any]


def cpu_per_1000(before: Footprint, after: Footprint, workers: int) -> float | None:
    """The controller's CPU seconds between two readings, per 1,000 workers created meanwhile."""
    return round((after.cpu_seconds - before.cpu_seconds) * 1000 / workers, 2) if workers else None


def _footprint(tool: Tool) -> Footprint | None:
    return tool.controller.footprint() if tool.controller is not None else None


def _controller_figures(before: Footprint | None, after: Footprint | None, workers: int) -> Result:
    if before is None or after is None:
        return {}
    return {"rss_mib": after.rss_mib, "rss_mib_peak": after.rss_peak_mib,
            "cpu_seconds": round(after.cpu_seconds - before.cpu_seconds, 2),
            "cpu_seconds_per_1000_workers": cpu_per_1000(before, after, workers)}


def _requests(ctx: Context, tool: Tool, offset: audit.Mark, start: dt.datetime, end: dt.datetime,
              workers: int) -> Result:
    if ctx.audit is None or not tool.audit_user:
        return {}
    time.sleep(1.0)  # the audit log is written just after each response
    events = (e for e in ctx.audit.events_since(offset) if (e.get("user") or {}).get("username") == tool.audit_user)
    return audit.count(events, [tool.audit_user], start, end)[tool.audit_user].per_worker(workers)


# --- 6: API requests per worker created ---------------------------------------------------------------

def api_requests(ctx: Context) -> Result:
    if ctx.audit is None:
        return {"skipped": "no audit log (not a local devcluster instance)"}
    plan, n = ctx.plan, ctx.plan.api_workers
    namespaces = {name: ctx.namespace(name, "api") for name in ctx.tools}
    _start_controllers(ctx, namespaces)
    result: Result = {}
    try:
        time.sleep(2)  # past the controllers' start (initial LISTs, the Lease), before any request exists
        for name, tool in ctx.tools.items():
            namespace, cluster = namespaces[name], "api"
            ctx.say(f"scenario 6: {name}: {n} workers, counting its API requests")
            offset, before = ctx.audit.mark(), _footprint(tool)
            start, began = dt.datetime.now(dt.UTC), time.monotonic()
            tool.create(namespace, cluster, n)
            seconds, counts = _wait_counts(ctx, f"{name}: {n} workers Running", namespace,
                                           manifests.worker_selector(cluster), _running_at_least(n),
                                           _poll_interval(n))
            running_after = None if seconds is None else round(time.monotonic() - began, 2)
            time.sleep(plan.api_settle)
            end, after = dt.datetime.now(dt.UTC), _footprint(tool)
            entry = {"seconds": running_after, "running": counts.running, "settle_seconds": plan.api_settle,
                     **_requests(ctx, tool, offset, start, end, n), **_controller_figures(before, after, n)}
            result[name] = entry
            ctx.say(f"  {name}: {entry.get('requests_per_worker')} requests per worker "
                    f"({entry.get('requests')} in all), {entry.get('cpu_seconds_per_1000_workers', '-')} CPU s "
                    f"per 1,000 workers")
            tool.delete(namespace, cluster)
            _wait_gone(ctx, namespace, f"{manifests.CLUSTER_LABEL}={cluster}")
            _wait_no_deployments(ctx, namespace, f"{manifests.CLUSTER_LABEL}={cluster}")
            ctx.checkpoint()
    finally:
        _stop_controllers(ctx, namespaces)
    return result


# --- 7: many clusters under one controller ------------------------------------------------------------

def many_clusters(ctx: Context, result: Result) -> Result:
    """Fills ``result`` tool by tool (checkpointed): a run cut short keeps the tools it finished."""
    names = [f"many-{i:03d}" for i in range(ctx.plan.many_clusters)]
    namespaces = {name: ctx.namespace(name, "many") for name in ctx.tools}
    try:
        for name, tool in ctx.tools.items():
            _many_for(ctx, name, tool, namespaces[name], names, result)
    finally:
        # Left until the end (their pods are gone): idle objects cost the next tool nothing.
        _delete_namespaces(ctx, list(namespaces.values()))
    return result


def _many_for(ctx: Context, name: str, tool: Tool, namespace: str, names: list[str], result: Result) -> None:
    plan = ctx.plan
    want = plan.many_clusters * plan.many_workers
    ctx.kube.create_namespace(namespace)
    tool.start([namespace])
    try:
        if tool.controller is not None:
            time.sleep(2)  # past its start, before any request exists
        offset = ctx.audit.mark() if ctx.audit else audit.Mark(0, 0)
        before = _footprint(tool)
        ctx.say(f"scenario 7: {name}: {plan.many_clusters} clusters x {plan.many_workers} workers")
        start, began = dt.datetime.now(dt.UTC), time.monotonic()
        tool.create_many(namespace, names, plan.many_workers)
        seconds, running = _wait_light(ctx, f"{name}: {want} workers Running", namespace, want, plan.many_timeout)
        total = None if seconds is None else round(time.monotonic() - began, 2)
        after = _footprint(tool)
        entry: Result = {"clusters": plan.many_clusters, "workers": want, "seconds": total, "running": running,
                         **_controller_figures(before, after, want)}
        usage = _requests(ctx, tool, offset, start, dt.datetime.now(dt.UTC), want)
        if usage:
            entry["requests_per_worker"] = usage["requests_per_worker"]
        result[name] = entry
        ctx.say(f"  {name}: {running}/{want} Running after {total}s; peak RSS {entry.get('rss_mib_peak', '-')} "
                f"MiB, {entry.get('cpu_seconds', '-')} CPU s")
        ctx.checkpoint()
    finally:
        try:
            tool.delete_all(namespace)
            _wait_light_gone(ctx, namespace)
            # The operator's 10,000 Deployments and ReplicaSets outlive its pods in the garbage collector's
            # queue: the next tool should not pay for them.
            wait_until(f"deployments in {namespace} to be gone",
                       lambda: ctx.kube.count_owned_workloads(namespace, manifests.CLUSTER_LABEL) == 0,
                       plan.many_timeout, 5.0)
        except Exception as exc:  # the namespace deletion at the end catches the rest
            ctx.say(f"  cleaning up {namespace}: {exc!r}")
        tool.stop()


def _wait_light(ctx: Context, what: str, namespace: str, want: int, timeout: float) -> tuple[float | None, int]:
    """Seconds until ``want`` worker pods run (None on timeout), and how many last ran; polled with
    metadata-only LISTs every few seconds (a few percent of a minutes-long ramp)."""
    last = 0

    def probe() -> bool:
        nonlocal last
        last = ctx.kube.pod_counts_light(namespace, "dask.org/component=worker").running
        return last >= want

    try:
        return wait_until(what, probe, timeout, _poll_interval(want) if want <= 1000 else 3.0), last
    except TimeoutError as exc:
        ctx.say(f"  {exc}")
        return None, last


def _wait_light_gone(ctx: Context, namespace: str) -> None:
    def gone() -> bool:
        counts = ctx.kube.pod_counts_light(namespace, ALL_DASK_PODS)
        return counts.live + counts.deleting == 0

    try:
        wait_until(f"pods in {namespace} to be gone", gone, ctx.plan.many_timeout, 3.0)
    except TimeoutError as exc:
        ctx.say(f"  {exc}")

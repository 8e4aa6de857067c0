"""Benchmark scenarios 1 to 5 (docs/benchmarks/README.md describes them; 6 and 7 are in scenarios_scale).

Each takes the run's :class:`Context` and returns a JSON-able dict.

Tools are measured one after another on the same cluster, interleaved per size, so slow drift of the
shared machine's load affects all of them alike; every wait is bounded by ``plan.timeout`` and a
timeout is recorded as a result, not raised, so one stuck tool cannot sink the whole run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import audit, manifests
from .kube import Kube, PodCounts
from .plan import Plan
from .pod_timer import PodTimer
from .processes import wait_until
from .tools import Tool

Result = dict[str, Any]
ALL_DASK_PODS = "dask.org/component"  # both tools label scheduler and worker pods with it


@dataclasses.dataclass
class Context:
    plan: Plan
    kube: Kube
    tools: dict[str, Tool]
    audit: audit.AuditLog | None
    run_dir: Path
    say: Callable[[str], None]
    #: Saves the results gathered so far (long scenarios call it between phases).
    checkpoint: Callable[[], None] = lambda: None

    def namespace(self, tool: str, scenario: str) -> str:
        return f"bench-{tool}-{scenario}".replace("_", "-")


def _wait_counts(ctx: Context, what: str, namespace: str, selector: str,
                 done: Callable[[PodCounts], bool], interval: float, timeout: float | None = None
                 ) -> tuple[float | None, PodCounts]:
    """Seconds until ``done(counts)``, or None on timeout; and the last counts (for the record)."""
    last = PodCounts(0, 0, 0)

    def probe() -> bool:
        nonlocal last
        last = ctx.kube.pod_counts(namespace, selector)
        return done(last)

    try:
        return wait_until(what, probe, timeout or ctx.plan.timeout, interval), last
    except TimeoutError as exc:
        ctx.say(f"  {exc}")
        return None, last


def _live_at_least(n: int) -> Callable[[PodCounts], bool]:
    return lambda counts: counts.live >= n


def _running_at_least(n: int) -> Callable[[PodCounts], bool]:
    return lambda counts: counts.running >= n


def _poll_interval(pods: int) -> float:
    # The resolution a size needs: 10 workers run in about 0.4 s, so a 0.25 s poll decided their ratio; a
    # LIST of 1000 pods costs the API server too, and a second is resolution enough for a 15 s start.
    return 0.05 if pods <= 10 else 0.1 if pods <= 100 else 1.0


def _wait_gone(ctx: Context, namespace: str, selector: str) -> None:
    _wait_counts(ctx, f"pods {selector} in {namespace} to be gone", namespace, selector,
                 lambda c: c.live + c.deleting == 0, 2.0)


def _wait_no_deployments(ctx: Context, namespace: str, selector: str) -> None:
    try:
        wait_until(f"deployments {selector} in {namespace} to be gone",
                   lambda: ctx.kube.count_owned_workloads(namespace, selector) == 0, ctx.plan.timeout, 1.0)
    except TimeoutError as exc:
        ctx.say(f"  {exc}")


def _start_controllers(ctx: Context, namespaces: dict[str, str]) -> None:
    # A namespace left by an interrupted run holds its requests and pods: measured afresh, not on top of them.
    leftovers = [n for n in namespaces.values() if ctx.kube.namespace_exists(n)]
    if leftovers:
        ctx.say(f"  deleting namespaces left by an earlier run: {', '.join(leftovers)}")
        _delete_namespaces(ctx, leftovers)
    for name, tool in ctx.tools.items():
        ctx.kube.create_namespace(namespaces[name])
        if tool.user:
            ctx.say(f"  starting the {name} controller for {namespaces[name]}")
        tool.start([namespaces[name]])


def _stop_controllers(ctx: Context, namespaces: dict[str, str]) -> None:
    # Clusters first (while their controller runs: the operator removes its own finalizers), then the
    # namespaces (all at once: each takes the namespace controller seconds), then the controllers.
    for name, tool in ctx.tools.items():
        try:
            tool.delete_all(namespaces[name])
        except Exception as exc:  # cleanup goes on; the namespace deletion below catches the rest
            ctx.say(f"  cleaning up {namespaces[name]}: {exc!r}")
    for name in ctx.tools:
        _wait_gone(ctx, namespaces[name], ALL_DASK_PODS)
    _delete_namespaces(ctx, [namespaces[name] for name in ctx.tools])
    for tool in ctx.tools.values():
        tool.stop()


def _namespace_gone(kube: Kube, namespace: str) -> bool:
    return not kube.namespace_exists(namespace)


def _delete_namespace(ctx: Context, namespace: str) -> None:
    _delete_namespaces(ctx, [namespace])


def _delete_namespaces(ctx: Context, namespaces: list[str]) -> None:
    """Delete them all, then wait until each is gone (the next measurement starts on a quiet API)."""
    for namespace in namespaces:
        ctx.kube.delete_namespace(namespace)
    for namespace in namespaces:
        try:
            wait_until(f"namespace {namespace} to be deleted",
                       functools.partial(_namespace_gone, ctx.kube, namespace), ctx.plan.timeout, 1.0)
        except TimeoutError as exc:
            stripped = ctx.kube.strip_dask_finalizers(namespace)
            ctx.say(f"  {exc}; removed {stripped} stuck operator finalizers")


# --- 1 and 2: start-up time and scale-down -----------------------------------------------------------

def startup_and_scale_down(ctx: Context) -> tuple[Result, Result]:
    """Scenario 1 (request -> N workers Running) and, on the ``scale_from`` cluster, scenario 2.

    Every size runs ``plan.repeats`` times per tool, interleaved (:func:`interleaved`), and the median
    is reported: a second of noise from the shared machine would otherwise decide a ratio.
    """
    plan = ctx.plan
    namespaces = {name: ctx.namespace(name, "startup") for name in ctx.tools}
    _start_controllers(ctx, namespaces)
    startup: Result = {str(n): {name: [] for name in ctx.tools} for n in plan.startup_sizes}
    scale_down: Result = {}
    try:
        for n in plan.startup_sizes:
            for rep, name in interleaved(list(ctx.tools), plan.repeats):
                tool = ctx.tools[name]
                namespace, cluster = namespaces[name], f"n{n}-{rep}"
                run = _measure_startup(ctx, tool, namespace, cluster, n)
                startup[str(n)][name].append(run)
                if n == plan.scale_from and "scale_down" in plan.scenarios and rep == plan.repeats - 1 \
                        and run["seconds"] is not None:
                    scale_down[name] = _scale_down(ctx, tool, namespace, cluster)
                tool.delete(namespace, cluster)
                _wait_gone(ctx, namespace, f"{manifests.CLUSTER_LABEL}={cluster}")
                # The operator's Deployments and ReplicaSets outlive its pods in the garbage
                # collector's queue; the next measurement should not pay for them.
                _wait_no_deployments(ctx, namespace, f"{manifests.CLUSTER_LABEL}={cluster}")
    finally:
        _stop_controllers(ctx, namespaces)
    return {n: {name: summarise(runs) for name, runs in by_tool.items()} for n, by_tool in startup.items()}, \
        scale_down


def interleaved(tools: list[str], repeats: int) -> list[tuple[int, str]]:
    """The runs of one size in the order they are measured, as (repeat, tool): every tool once per
    round, who goes first rotating (whoever follows the operator's cleanup pays for its tail), so the
    machine's drift over the minutes of a size touches every tool alike."""
    order: list[tuple[int, str]] = []
    for rep in range(repeats):
        first = rep % len(tools) if tools else 0
        order += [(rep, tool) for tool in tools[first:] + tools[:first]]
    return order


def summarise(runs: list[Result]) -> Result:
    """The median run's figures plus every run's seconds; a timeout in any run is reported as such."""
    if not runs:
        return {"seconds": None, "running": 0}
    if any(r["seconds"] is None for r in runs):
        return {**next(r for r in runs if r["seconds"] is None), "runs": [r["seconds"] for r in runs]}
    ordered = sorted(runs, key=lambda r: float(r["seconds"]))
    median = ordered[(len(ordered) - 1) // 2]
    return {**median, "runs": [r["seconds"] for r in runs]}


def _measure_startup(ctx: Context, tool: Tool, namespace: str, cluster: str, n: int) -> Result:
    """Request -> the n-th worker pod created, and Running, timed by a watch (pod_timer) started before."""
    ctx.say(f"scenario 1: {tool.name}: request {n} workers")
    with PodTimer(ctx.kube, namespace, manifests.worker_selector(cluster)) as timer:
        started = time.monotonic()
        tool.create(namespace, cluster, n)
        created, _ = timer.wait(_live_at_least(n), ctx.plan.timeout)
        running, counts = timer.wait(_running_at_least(n), max(1.0, started + ctx.plan.timeout - time.monotonic()))

    def since_start(at: float | None) -> float | None:
        return None if at is None else round(at - started, 3)

    total = since_start(running)
    if total is None:
        ctx.say(f"  timed out after {ctx.plan.timeout:.0f}s waiting for {tool.name}: {n} workers Running "
                f"(last: {counts!r})")
    ctx.say(f"  {tool.name}: {counts.running}/{n} Running after {total}s")
    return {"seconds": total, "created_seconds": since_start(created), "running": counts.running}


def _scale_down(ctx: Context, tool: Tool, namespace: str, cluster: str) -> Result:
    target = ctx.plan.scale_to
    ctx.say(f"scenario 2: {tool.name}: scale {ctx.plan.scale_from} -> {target}")
    selector = manifests.worker_selector(cluster)
    started = time.monotonic()
    tool.scale(namespace, cluster, target)
    seconds, counts = _wait_counts(ctx, f"{tool.name}: {target} workers left", namespace, selector,
                                   lambda c: c.converged(target), _poll_interval(ctx.plan.scale_from),
                                   timeout=ctx.plan.scale_down_timeout)
    total = None if seconds is None else round(time.monotonic() - started, 2)
    ctx.say(f"  {tool.name}: {counts.live} live, {counts.deleting} terminating after {total}s")
    return {"seconds": total, "live": counts.live, "terminating": counts.deleting}


# --- 3: API load at rest -----------------------------------------------------------------------------

def idle_load(ctx: Context) -> Result:
    """Scenario 3: each controller's requests per minute with ``idle_clusters`` clusters at rest."""
    if ctx.audit is None:
        return {"skipped": "no audit log (not a local devcluster instance)"}
    plan = ctx.plan
    controllers = {n: t for n, t in ctx.tools.items() if t.user}
    namespaces = {name: ctx.namespace(name, "idle") for name in controllers}
    offset = ctx.audit.mark()
    sub = dataclasses.replace(ctx, tools=controllers)
    _start_controllers(sub, namespaces)
    result: Result = {}
    try:
        names = [f"idle-{i:03d}" for i in range(plan.idle_clusters)]
        for name, tool in controllers.items():
            ctx.say(f"scenario 3: {name}: {plan.idle_clusters} clusters of 1 worker")
            tool.create_many(namespaces[name], names, 1)
        for name in controllers:
            _wait_counts(ctx, f"{name}: idle workers Running", namespaces[name], "dask.org/component=worker",
                         _running_at_least(plan.idle_clusters), 1.0)
        ctx.say(f"scenario 3: settling {plan.idle_settle:.0f}s, then counting requests for "
                f"{plan.idle_window:.0f}s")
        time.sleep(plan.idle_settle)
        start = dt.datetime.now(dt.UTC)
        time.sleep(plan.idle_window)
        end = dt.datetime.now(dt.UTC)
        users = {t.user: n for n, t in controllers.items() if t.user}
        events = [e for e in ctx.audit.events_since(offset) if (e.get("user") or {}).get("username") in users]
        window = audit.count(events, users, start, end)
        lifetime = audit.count(events, users)
        for user, name in users.items():
            result[name] = {
                "user": user, "window_seconds": plan.idle_window, "clusters": plan.idle_clusters,
                "at_rest": window[user].as_dict(plan.idle_window / 60),
                "whole_scenario": lifetime[user].as_dict(0),
            }
            at_rest = result[name]["at_rest"]
            ctx.say(f"  {name}: {at_rest['reads_per_minute']} reads/min, "
                    f"{at_rest['writes_per_minute']} writes/min at rest")
    finally:
        _stop_controllers(sub, namespaces)
    return result


# --- 4: footprint ------------------------------------------------------------------------------------

def footprint(ctx: Context, result: Result) -> Result:
    """Scenario 4: RSS and CPU of each controller with many clusters, then among unrelated objects.

    Fills ``result`` phase by phase (checkpointed), so a run cut short keeps the phases it finished."""
    controllers = {n: t for n, t in ctx.tools.items() if t.user}
    result.update({name: {} for name in controllers})
    unrelated_ns = "bench-unrelated"
    for name, tool in controllers.items():
        result[name]["clean"] = _footprint_phase(ctx, tool, ctx.namespace(name, "footprint"), delete_ns=True)
        ctx.checkpoint()
    if controllers:
        _fill_unrelated(ctx, unrelated_ns)
        try:
            for name, tool in controllers.items():
                result[name]["unrelated"] = _footprint_phase(ctx, tool, unrelated_ns, delete_ns=False)
                clean, busy = result[name]["clean"], result[name]["unrelated"]
                if clean.get("rss_mib") and busy.get("rss_mib"):
                    result[name]["rss_ratio_unrelated_to_clean"] = round(
                        busy["rss_mib"] / clean["rss_mib"], 3)
                ctx.checkpoint()
        finally:
            ctx.kube.delete_namespace(unrelated_ns)
    return result


def _fill_unrelated(ctx: Context, namespace: str) -> None:
    plan = ctx.plan
    ctx.kube.create_namespace(namespace)
    nodes = ctx.kube.node_names()
    if not nodes:
        raise RuntimeError("no simulated nodes for the unrelated pods")
    ctx.say(f"scenario 4: filling {namespace} with {plan.unrelated_configmaps} ConfigMaps and "
            f"{plan.unrelated_pods} pods")
    started = time.monotonic()
    batch = 1000  # bounded memory for the manifests and a progress line per batch
    for kind, total in (("ConfigMap", plan.unrelated_configmaps), ("Pod", plan.unrelated_pods)):
        for first in range(0, total, batch):
            indexes = range(first, min(total, first + batch))
            if kind == "ConfigMap":
                items = [manifests.unrelated_configmap(namespace, i) for i in indexes]
            else:
                items = [manifests.unrelated_pod(namespace, i, nodes[i % len(nodes)]) for i in indexes]
            failures = ctx.kube.create_many(items)
            conflicts = [f for f in failures if getattr(f, "status", None) != 409]
            if conflicts:
                raise RuntimeError(f"could not create unrelated {kind}s: {conflicts[0]}")
            ctx.say(f"  {indexes.stop}/{total} {kind}s ({time.monotonic() - started:.0f}s)")


def _footprint_phase(ctx: Context, tool: Tool, namespace: str, delete_ns: bool) -> Result:
    plan = ctx.plan
    ctx.kube.create_namespace(namespace)
    offset = ctx.audit.mark() if ctx.audit else audit.Mark(0, 0)
    label = "among unrelated objects" if not delete_ns else "clean namespace"
    ctx.say(f"scenario 4: {tool.name}: {plan.footprint_clusters} x {plan.footprint_workers} workers, {label}")
    tool.start([namespace])
    assert tool.controller is not None
    result: Result = {}
    try:
        time.sleep(2)  # past the initial LIST/WATCH burst, before any request exists
        base = tool.controller.footprint()
        names = [f"fp-{i:03d}" for i in range(plan.footprint_clusters)]
        started = time.monotonic()
        tool.create_many(namespace, names, plan.footprint_workers)
        want = plan.footprint_clusters * plan.footprint_workers
        seconds, counts = _wait_counts(ctx, f"{tool.name}: {want} workers Running", namespace,
                                       "dask.org/component=worker", _running_at_least(want),
                                       _poll_interval(want))
        loaded = tool.controller.footprint()
        time.sleep(plan.footprint_window)
        rest = tool.controller.footprint()
        result = {
            "rss_mib_idle_start": base.rss_mib, "rss_mib": max(loaded.rss_mib, rest.rss_mib),
            "cpu_seconds_to_converge": round(loaded.cpu_seconds - base.cpu_seconds, 2),
            "cpu_seconds_total": rest.cpu_seconds,
            "cpu_seconds_per_minute_at_rest": round(
                (rest.cpu_seconds - loaded.cpu_seconds) * 60 / plan.footprint_window, 3),
            "workers_running": counts.running,
            "converge_seconds": None if seconds is None else round(time.monotonic() - started, 2),
        }
        if ctx.audit and tool.user:
            usage = audit.count(ctx.audit.events_since(offset), [tool.user])[tool.user]
            result["unselected_list_watch"] = dict(usage.unselected_list_watch)
        ctx.say(f"  {tool.name}: RSS {result['rss_mib']} MiB, CPU {result['cpu_seconds_to_converge']}s to "
                f"converge, {result['cpu_seconds_per_minute_at_rest']} CPU s/min at rest")
        for name in names:
            tool.delete(namespace, name)
        _wait_gone(ctx, namespace, ALL_DASK_PODS)
    finally:
        if delete_ns:
            _delete_namespace(ctx, namespace)
        tool.stop()
    return result


# --- 5: real node cold start -------------------------------------------------------------------------

PROBE = Path(__file__).with_name("coldstart_probe.py")
PROBE_MARKER = "coldstart-seconds="
PROBE_IMPORT_MARKER = "import-seconds="


def parse_probe_output(stdout: str, marker: str = PROBE_MARKER) -> float | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(marker):
            return float(line.removeprefix(marker))
    return None


def cold_start(ctx: Context, pythons: dict[str, tuple[str, dict[str, str]]]) -> Result:
    """Scenario 5: ``KubeCluster(...)`` to ``wait_for_workers(2)`` on the real node, median of N.

    The tools take turns (:func:`interleaved`), so the shared machine's load drifts over both alike; each
    run's load average and client import seconds are kept beside its figure."""
    plan = ctx.plan
    if plan.cold_start_repeats <= 0:
        return {"skipped": f"{plan.mode} mode"}
    nodes = ctx.kube.ready_real_nodes()
    if not nodes:
        return {"skipped": "no real node"}
    result: Result = {"node": nodes[0]}
    controllers = {n: t for n, t in ctx.tools.items() if n in pythons}
    namespaces = {name: ctx.namespace(name, "coldstart") for name in controllers}
    sub = dataclasses.replace(ctx, tools=controllers)
    runs: dict[str, list[float]] = {name: [] for name in controllers}
    imports: dict[str, list[float]] = {name: [] for name in controllers}
    loads: dict[str, list[float]] = {name: [] for name in controllers}
    errors: dict[str, list[str]] = {name: [] for name in controllers}
    _start_controllers(sub, namespaces)
    try:
        for i, name in interleaved(list(controllers), plan.cold_start_repeats):
            python, env = pythons[name]
            ctx.say(f"scenario 5: {name}: cold start {i + 1}/{plan.cold_start_repeats}")
            load = round(os.getloadavg()[0], 2)
            proc = subprocess.run([python, str(PROBE), name, namespaces[name], f"cold-{i}"], env=env,
                                  capture_output=True, text=True, timeout=plan.timeout)
            seconds = parse_probe_output(proc.stdout)
            if proc.returncode == 0 and seconds is not None:
                runs[name].append(seconds)
                imports[name].append(parse_probe_output(proc.stdout, PROBE_IMPORT_MARKER) or 0.0)
                loads[name].append(load)
                ctx.say(f"  {name}: workers connected after {seconds:.1f}s (load average {load})")
            else:
                errors[name].append((proc.stderr or proc.stdout)[-500:])
                ctx.say(f"  {name}: failed: {errors[name][-1][-200:]}")
        for name in controllers:
            done = runs[name]
            result[name] = {"median_seconds": round(statistics.median(done), 2) if done else None,
                            "max_seconds": max(done) if done else None, "runs": done,
                            "import_seconds": imports[name], "load_averages": loads[name],
                            "errors": errors[name]}
    finally:
        _stop_controllers(sub, namespaces)
    return result

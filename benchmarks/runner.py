"""One benchmark run: get a cluster, set up the tools, run the chosen scenarios, write the report.

Results are written after every scenario, so an interrupted run still leaves what it measured.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import machine, report, scenarios, scenarios_scale, tools, venvs
from .audit import AuditLog
from .kube import Kube
from .plan import Plan

STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"[bench {time.monotonic() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


@dataclasses.dataclass
class Options:
    plan: Plan
    cluster_name: str
    out_dir: Path
    run_dir: Path
    keep_cluster: bool
    plot: bool
    command: str
    #: Add this run's scenarios to an existing result file (e.g. scenario 5 on the real-node cluster).
    merge: bool = False


def _cluster(options: Options) -> tuple[Any, bool]:
    """The devcluster instance (started if not up) and whether this run started it."""
    from devcluster import lifecycle
    from devcluster.cluster import Cluster

    existing = Cluster.load(options.cluster_name)
    if existing is not None and lifecycle.is_up(existing):
        say(f"reusing running cluster {options.cluster_name!r} ({existing.dir})")
        return existing, False
    say(f"starting cluster {options.cluster_name!r} with {options.plan.nodes} simulated nodes")
    return lifecycle.up(options.cluster_name, nodes=options.plan.nodes, real_node=False), True


def run(options: Options) -> Path:
    plan = options.plan
    options.run_dir.mkdir(parents=True, exist_ok=True)
    cluster, started_here = _cluster(options)
    kube = Kube(str(cluster.kubeconfig))
    chosen: dict[str, tools.Tool] = {}
    clients: list[Kube] = []  # the raw baseline's own identity
    results: dict[str, Any] = {"meta": {}, "plan": dataclasses.asdict(plan), "scenarios": {}, "notes": []}
    try:
        capacity = len(kube.node_names()) * 1000
        if capacity < plan.pods_needed():
            raise SystemExit(f"the cluster's simulated nodes hold {capacity} pods; this plan needs "
                             f"{plan.pods_needed()} (start it with --nodes {plan.pods_needed() // 1000 + 1})")
        operator_version = None
        for name in plan.tools:
            if name == "raw":
                raw_kube = Kube(str(tools.identity_kubeconfig(cluster, kube, tools.RawTool.service_account)))
                clients.append(raw_kube)
                chosen[name] = tools.RawTool(raw_kube, tools.user_of(tools.RawTool.service_account))
                continue
            tool_class = tools.KubedaskTool if name == "kubedask" else tools.OperatorTool
            if name == "operator":
                venvs.ensure("operator", say)
                operator_version = venvs.package_version("operator", "dask-kubernetes")
                tools.install_operator_crds(cluster.kubectl, say)
            identity = tools.identity_kubeconfig(cluster, kube, tool_class.service_account)
            chosen[name] = tool_class(kube, identity, options.run_dir)
        meta = {
            "mode": plan.mode, "date": machine.now(), "machine": machine.describe_machine(),
            "versions": machine.versions(tools.git_describe(), operator_version),
            "command": options.command, "cluster": options.cluster_name,
            "simulated_nodes": len(kube.node_names()), "logs": str(options.run_dir),
        }
        results["meta"] = meta
        previous = options.out_dir / f"{_stem(plan)}.json"
        if options.merge and previous.exists():
            results.update(merge_base(json.loads(previous.read_text()), meta, plan.scenarios))
        audit_path = cluster.dir / "logs" / "audit.log"
        ctx = scenarios.Context(plan=plan, kube=kube, tools=chosen,
                                audit=AuditLog(audit_path) if audit_path.exists() else None,
                                run_dir=options.run_dir, say=say)
        plot_python = _plot_python(options)

        def save() -> None:
            report.write(results, options.out_dir, _stem(plan), plot_python)

        ctx.checkpoint = save
        _run_scenarios(ctx, results["scenarios"], save)
        save()
        say(f"results: {options.out_dir / _stem(plan)}.{{json,md,png}}")
        return options.out_dir / f"{_stem(plan)}.json"
    finally:
        for tool in chosen.values():
            tool.stop()
        for client in clients:
            client.close()
        kube.close()
        if started_here and not options.keep_cluster:
            from devcluster import lifecycle

            say(f"stopping cluster {options.cluster_name!r}")
            lifecycle.down(options.cluster_name)


def merge_base(previous: dict[str, Any], meta: dict[str, Any], scenarios: tuple[str, ...]
               ) -> dict[str, Any]:
    """The earlier run's scenarios that this run does not measure again, each attributed to that run
    in the notes (this run's meta heads the report)."""
    kept = {k: v for k, v in previous.get("scenarios", {}).items() if k not in scenarios and k != "errors"}
    before = previous.get("meta", {})
    notes = [n for n in previous.get("notes", []) if n.split(":")[0] in kept]
    notes += [f"{k}: from an earlier run, `{before.get('command')}` on cluster {before.get('cluster')!r} at "
              f"{before.get('date')}" for k in kept if not any(n.startswith(f"{k}:") for n in notes)]
    return {"scenarios": kept, "notes": notes, "meta": meta}


def _run_scenarios(ctx: scenarios.Context, out: dict[str, Any], save: Callable[[], None]) -> None:
    plan = ctx.plan
    steps: list[tuple[str, Callable[[], object]]] = []
    if "startup" in plan.scenarios or "scale_down" in plan.scenarios:
        def startup() -> None:
            out["startup"], scale_down = scenarios.startup_and_scale_down(ctx)
            if "scale_down" in plan.scenarios:
                out["scale_down"] = scale_down
        steps.append(("1+2 start-up and scale-down", startup))
    if "api_requests" in plan.scenarios:
        steps.append(("6 API requests per worker",
                      lambda: out.__setitem__("api_requests", scenarios_scale.api_requests(ctx))))
    if "idle_load" in plan.scenarios:
        steps.append(("3 API load at rest", lambda: out.__setitem__("idle_load", scenarios.idle_load(ctx))))
    if "footprint" in plan.scenarios:
        steps.append(("4 footprint", lambda: scenarios.footprint(ctx, out.setdefault("footprint", {}))))
    if "many_clusters" in plan.scenarios:
        steps.append((f"7 {plan.many_clusters} clusters x {plan.many_workers} workers",
                      lambda: scenarios_scale.many_clusters(ctx, out.setdefault("many_clusters", {}))))
    if "cold_start" in plan.scenarios:
        steps.append(("5 real node cold start",
                      lambda: out.__setitem__("cold_start", scenarios.cold_start(ctx, _probe_pythons(ctx)))))
    for title, step in steps:
        say(f"=== scenario {title} ===")
        began = time.monotonic()
        try:
            step()
        except Exception as exc:  # one broken scenario must not lose the others' results
            say(f"scenario {title} failed: {exc!r}")
            out.setdefault("errors", {})[title] = repr(exc)[:1000]
        say(f"=== scenario {title}: {time.monotonic() - began:.0f}s ===")
        save()


def _probe_pythons(ctx: scenarios.Context) -> dict[str, tuple[str, dict[str, str]]]:
    pythons: dict[str, tuple[str, dict[str, str]]] = {}
    for name, tool in ctx.tools.items():
        if isinstance(tool, tools.KubedaskTool):
            env = {**os.environ, "KUBECONFIG": str(tool.kubeconfig),
                   "PYTHONPATH": os.pathsep.join(str(tools.REPO / p) for p in ("client", "controller", "."))}
            pythons[name] = (sys.executable, env)
        elif isinstance(tool, tools.OperatorTool):
            env = {**os.environ, "KUBECONFIG": str(tool.kubeconfig)}
            pythons[name] = (str(venvs.python("operator")), env)
    return pythons


def _plot_python(options: Options) -> Path | None:
    if not options.plot:
        return None
    try:
        return venvs.ensure("plot", say)
    except Exception as exc:  # the JSON and Markdown are still worth having
        say(f"no plot: could not prepare matplotlib ({exc!r})")
        return None


def _stem(plan: Plan) -> str:
    return "results" if plan.mode == "full" else f"results-{plan.mode}"

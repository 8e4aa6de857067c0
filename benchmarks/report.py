"""Turn a run's results into ratios, a Markdown report and (via the plot venv) a PNG.

Absolute seconds on a shared 2-core machine are noisy; the ratios to the raw baseline, measured
minutes apart on the same cluster, are the figures to quote.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

Result = dict[str, Any]


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return round(numerator / denominator, 2)


def ratios(scenarios: Mapping[str, Any]) -> Result:
    """kubedask/raw, operator/raw and kubedask/operator, each against the baseline measured in the same
    run (None where missing): seconds for scenarios 1, 2 and 7, requests per worker for 6, and the
    controllers' CPU seconds per 1,000 workers and cold start (no raw there) as kubedask/operator."""
    out: Result = {}
    for n, by_tool in (scenarios.get("startup") or {}).items():
        out[f"startup_{n}"] = _tool_ratios(by_tool)
    if scenarios.get("scale_down"):
        out["scale_down"] = _tool_ratios(scenarios["scale_down"])
    api = _measured(scenarios.get("api_requests"))
    if api:
        out["api_requests"] = _tool_ratios(api, "requests_per_worker")
        out["api_cpu_per_1000_workers"] = _tool_ratios(api, "cpu_seconds_per_1000_workers")
    many = _measured(scenarios.get("many_clusters"))
    if many:
        out["many_clusters"] = _tool_ratios(many)
        out["many_cpu_per_1000_workers"] = _tool_ratios(many, "cpu_seconds_per_1000_workers")
    cold = _measured(scenarios.get("cold_start"))
    if cold:
        out["cold_start"] = _tool_ratios(cold, "median_seconds")
    return out


def _measured(entry: Any) -> Mapping[str, Any] | None:
    return entry if isinstance(entry, Mapping) and entry and "skipped" not in entry else None


def _value(entry: Any, key: str) -> Any:
    return entry.get(key) if isinstance(entry, Mapping) else None


def _tool_ratios(by_tool: Mapping[str, Any], key: str = "seconds") -> Result:
    k, o, r = (_value(by_tool.get(t), key) for t in ("kubedask", "operator", "raw"))
    return {"kubedask/raw": ratio(k, r), "operator/raw": ratio(o, r), "kubedask/operator": ratio(k, o)}


def _fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}{suffix}"
    return f"{value}{suffix}"


def _time_cell(entry: Any) -> str:
    if not isinstance(entry, Mapping):
        return "—"
    if entry.get("seconds") is None:
        return f"timeout ({entry.get('running', entry.get('live', '?'))} reached)"
    return _fmt(entry["seconds"], " s")


def markdown(results: Mapping[str, Any]) -> str:
    meta, scenarios = results["meta"], results["scenarios"]
    rat = results.get("ratios") or ratios(scenarios)
    lines = [
        f"# kubedask benchmarks ({meta['mode']} run)",
        "",
        f"- date: {meta['date']}",
        f"- machine: {meta['machine']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        f"- command: `{meta['command']}`",
        "",
        "Ratios are the figures to quote: absolute seconds on a shared 2-core machine are noisy.",
        "",
    ]
    startup = scenarios.get("startup")
    if startup:
        repeats = (results.get("plan") or {}).get("repeats")
        lines += ["## 1. Request to N workers Running (simulated nodes)", "",
                  *([f"Each figure is the median of {repeats} runs, the tools interleaved.", ""] if repeats else []),
                  "| N | kubedask | operator | raw | kubedask/raw | operator/raw | kubedask/operator |",
                  "|---|---|---|---|---|---|---|"]
        for n, by_tool in startup.items():
            r = rat.get(f"startup_{n}", {})
            cells = " | ".join(_time_cell(by_tool.get(t)) for t in ("kubedask", "operator", "raw"))
            lines.append(f"| {n} | {cells}"
                         + f" | {_fmt(r.get('kubedask/raw'))} | {_fmt(r.get('operator/raw'))}"
                         + f" | {_fmt(r.get('kubedask/operator'))} |")
        lines.append("")
    scale = scenarios.get("scale_down")
    if scale:
        r = rat.get("scale_down", {})
        lines += ["## 2. Scale-down convergence (simulated nodes)", "",
                  "| kubedask | operator | raw | kubedask/raw | operator/raw |", "|---|---|---|---|---|",
                  "| " + " | ".join(_time_cell(scale.get(t)) for t in ("kubedask", "operator", "raw"))
                  + f" | {_fmt(r.get('kubedask/raw'))} | {_fmt(r.get('operator/raw'))} |", ""]
    idle = scenarios.get("idle_load")
    if idle:
        lines += ["## 3. API requests at rest (audit log, per controller identity)", ""]
        if "skipped" in idle:
            lines += [f"Skipped: {idle['skipped']}", ""]
        else:
            lines += ["| controller | clusters | reads/min | writes/min | writes/min without Leases | "
                      "Lease writes/min | writes at rest by call | unselected LIST/WATCH (whole scenario) |",
                      "|---|---|---|---|---|---|---|---|"]
            for name, entry in idle.items():
                rest, whole = entry["at_rest"], entry["whole_scenario"]
                writes = ", ".join(f"{c}: {k}" for c, k in rest["by_call"].items()
                                   if c.split()[0] in ("create", "update", "patch", "delete")) or "none"
                unselected = ", ".join(
                    f"{c}: {k}" for c, k in whole["unselected_list_watch"].items()) or "none"
                lines.append(f"| {name} | {entry['clusters']} | {rest['reads_per_minute']} | "
                             f"{rest['writes_per_minute']} | {rest['writes_excluding_leases_per_minute']} | "
                             f"{_fmt(rest.get('lease_writes_per_minute'))} | {writes} | {unselected} |")
            lines.append("")
    fp = scenarios.get("footprint")
    if fp:
        lines += ["## 4. Controller footprint", "",
                  "| controller | namespace | RSS MiB | CPU s to converge | CPU s/min at rest | "
                  "converge s | unselected LIST/WATCH |", "|---|---|---|---|---|---|---|"]
        for name, phases in fp.items():
            for phase in ("clean", "unrelated"):
                e = phases.get(phase)
                if not e:
                    continue
                unselected = ", ".join(f"{c}: {k}" for c, k in (e.get("unselected_list_watch") or {}).items())
                lines.append(f"| {name} | {phase} | {_fmt(e.get('rss_mib'))} | "
                             f"{_fmt(e.get('cpu_seconds_to_converge'))} | "
                             f"{_fmt(e.get('cpu_seconds_per_minute_at_rest'))} | "
                             f"{_fmt(e.get('converge_seconds'))}"
                             f" | {unselected or 'none'} |")
        lines.append("")
        for name, phases in fp.items():
            if phases.get("rss_ratio_unrelated_to_clean") is not None:
                lines.append(f"- {name}: RSS among unrelated objects / clean = "
                             f"{phases['rss_ratio_unrelated_to_clean']}")
        lines.append("")
    cold = scenarios.get("cold_start")
    if cold:
        lines += ["## 5. Real node cold start (KubeCluster to wait_for_workers(2))", ""]
        if "skipped" in cold:
            lines += [f"Skipped: {cold['skipped']}", ""]
        else:
            lines += ["| tool | median s | max s | runs |", "|---|---|---|---|"]
            for name, e in cold.items():
                if isinstance(e, Mapping):
                    lines.append(f"| {name} | {_fmt(e.get('median_seconds'))} | {_fmt(e.get('max_seconds'))} | "
                                 f"{e.get('runs')} |")
            lines += ["", f"kubedask/operator (median): {_fmt(rat.get('cold_start', {}).get('kubedask/operator'))}",
                      ""]
    lines += _api_section(scenarios.get("api_requests"), rat)
    lines += _many_section(scenarios.get("many_clusters"), rat)
    lines += _cpu_section(scenarios, rat)
    if results.get("notes"):
        lines += ["## Notes", "", *[f"- {n}" for n in results["notes"]], ""]
    return "\n".join(lines)


def _api_section(api: Any, rat: Mapping[str, Any]) -> list[str]:
    if not api:
        return []
    lines = ["## 6. API requests per worker created (audit log, WATCH calls excluded)", ""]
    if "skipped" in api:
        return [*lines, f"Skipped: {api['skipped']}", ""]
    r = rat.get("api_requests", {})
    lines += [f"kubedask/raw {_fmt(r.get('kubedask/raw'))}, operator/raw {_fmt(r.get('operator/raw'))}.", "",
              "| tool | workers | s to Running | requests | per worker | per worker without Lease calls | "
              "writes per worker | requests by call |", "|---|---|---|---|---|---|---|---|"]
    for name, e in api.items():
        calls = ", ".join(f"{c}: {k}" for c, k in (e.get("by_call") or {}).items()) or "—"
        lines.append(f"| {name} | {e.get('workers', '—')} | {_time_cell(e)} | {_fmt(e.get('requests'))} | "
                     f"{_fmt(e.get('requests_per_worker'))} | {_fmt(e.get('requests_per_worker_excluding_leases'))} | "
                     f"{_fmt(e.get('writes_per_worker'))} | {calls} |")
    return [*lines, ""]


def _many_section(many: Any, rat: Mapping[str, Any]) -> list[str]:
    if not many:
        return []
    first = next(iter(many.values()))
    r = rat.get("many_clusters", {})
    return ["## 7. {} clusters x {} workers under one controller (simulated nodes)".format(
                first.get("clusters", "?"), (first.get("workers") or 0) // max(1, first.get("clusters") or 1)),
            "", f"Time to all Running: kubedask/raw {_fmt(r.get('kubedask/raw'))}, operator/raw "
                f"{_fmt(r.get('operator/raw'))}, kubedask/operator {_fmt(r.get('kubedask/operator'))}.", "",
            "| tool | s to all Running | peak RSS MiB | RSS MiB at the end | CPU s | requests per worker |",
            "|---|---|---|---|---|---|",
            *(f"| {name} | {_time_cell(e)} | {_fmt(e.get('rss_mib_peak'))} | {_fmt(e.get('rss_mib'))} | "
              f"{_fmt(e.get('cpu_seconds'))} | {_fmt(e.get('requests_per_worker'))} |" for name, e in many.items()),
            ""]


def _cpu_section(scenarios: Mapping[str, Any], rat: Mapping[str, Any]) -> list[str]:
    api, many = _measured(scenarios.get("api_requests")) or {}, _measured(scenarios.get("many_clusters")) or {}
    names = [n for n in ("kubedask", "operator") if n in api or n in many]
    if not names:
        return []
    lines = ["## 8. Controller CPU seconds per 1,000 workers created", "",
             "| controller | one cluster (scenario 6) | many clusters (scenario 7) |", "|---|---|---|"]
    for name in names:
        lines.append(f"| {name} | {_fmt(_value(api.get(name), 'cpu_seconds_per_1000_workers'))} | "
                     f"{_fmt(_value(many.get(name), 'cpu_seconds_per_1000_workers'))} |")
    one, lots = rat.get("api_cpu_per_1000_workers", {}), rat.get("many_cpu_per_1000_workers", {})
    return [*lines, "", f"kubedask/operator: {_fmt(one.get('kubedask/operator'))} (one cluster), "
                        f"{_fmt(lots.get('kubedask/operator'))} (many clusters)", ""]


def write(results: Result, out_dir: Path, stem: str, plot_python: Path | None) -> list[Path]:
    """Write ``stem.json`` and ``stem.md`` (and ``stem.png`` when a plot python is given)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results["ratios"] = ratios(results["scenarios"])
    json_path = out_dir / f"{stem}.json"
    json_path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    md_path = out_dir / f"{stem}.md"
    written = [json_path, md_path]
    png_path = out_dir / f"{stem}.png"
    if plot_python is not None:
        proc = subprocess.run([str(plot_python), str(Path(__file__).with_name("plot.py")), str(json_path),
                               str(png_path)], capture_output=True, text=True)
        if proc.returncode == 0:
            written.append(png_path)
        else:
            results.setdefault("notes", []).append(f"plot failed: {proc.stderr.strip()[-300:]}")
    md = markdown(results)
    if png_path in written:
        md += f"\n![benchmark plot]({png_path.name})\n"
    md_path.write_text(md)
    return written

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


def _seconds(entry: Any) -> float | None:
    return entry.get("seconds") if isinstance(entry, Mapping) else None


def ratios(scenarios: Mapping[str, Any]) -> Result:
    """kubedask/raw, operator/raw and kubedask/operator for scenarios 1 and 2 (None where missing)."""
    out: Result = {}
    for n, by_tool in (scenarios.get("startup") or {}).items():
        out[f"startup_{n}"] = _tool_ratios(by_tool)
    if scenarios.get("scale_down"):
        out["scale_down"] = _tool_ratios(scenarios["scale_down"])
    return out


def _tool_ratios(by_tool: Mapping[str, Any]) -> Result:
    k, o, r = (_seconds(by_tool.get(t)) for t in ("kubedask", "operator", "raw"))
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
        lines += ["## 1. Request to N workers Running (simulated nodes)", "",
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
                      "writes at rest by call | unselected LIST/WATCH (whole scenario) |",
                      "|---|---|---|---|---|---|---|"]
            for name, entry in idle.items():
                rest, whole = entry["at_rest"], entry["whole_scenario"]
                writes = ", ".join(f"{c}: {k}" for c, k in rest["by_call"].items()
                                   if c.split()[0] in ("create", "update", "patch", "delete")) or "none"
                unselected = ", ".join(
                    f"{c}: {k}" for c, k in whole["unselected_list_watch"].items()) or "none"
                lines.append(f"| {name} | {entry['clusters']} | {rest['reads_per_minute']} | "
                             f"{rest['writes_per_minute']} | {rest['writes_excluding_leases_per_minute']} | "
                             f"{writes} | {unselected} |")
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
            lines += ["| tool | median s | runs |", "|---|---|---|"]
            for name, e in cold.items():
                if isinstance(e, Mapping):
                    lines.append(f"| {name} | {_fmt(e.get('median_seconds'))} | {e.get('runs')} |")
            lines.append("")
    if results.get("notes"):
        lines += ["## Notes", "", *[f"- {n}" for n in results["notes"]], ""]
    return "\n".join(lines)


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

"""Draw a results JSON as a PNG: ``python plot.py results.json out.png``.

Runs in the cached ``plot`` venv (matplotlib is not a project dependency), so it imports nothing from
the project: only the JSON written by report.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display here
import matplotlib.pyplot as plt  # after choosing the backend

TOOLS = ("kubedask", "operator", "raw")
COLOURS = {"kubedask": "#1f77b4", "operator": "#ff7f0e", "raw": "#7f7f7f"}


def _seconds(entry: Any) -> float:
    return float(entry["seconds"]) if isinstance(entry, dict) and entry.get("seconds") is not None else 0.0


def _label_missing(ax: Any, xs: list[float], entries: list[Any]) -> None:
    """Say why a bar is missing: a timeout is a result, not a zero."""
    for x, entry in zip(xs, entries, strict=True):
        if isinstance(entry, dict) and entry.get("seconds") is None:
            ax.text(x, 0, "timeout", rotation=90, ha="center", va="bottom", fontsize=8)


def draw(results: dict[str, Any], out: Path) -> None:
    scenarios = results["scenarios"]
    startup = scenarios.get("startup") or {}
    scale = scenarios.get("scale_down") or {}
    footprint = scenarios.get("footprint") or {}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    width = 0.27

    ax = axes[0]
    sizes = list(startup)
    for i, tool in enumerate(TOOLS):
        entries = [startup[n].get(tool) for n in sizes]
        xs = [x + (i - 1) * width for x in range(len(sizes))]
        ax.bar(xs, [_seconds(e) for e in entries], width, label=tool, color=COLOURS[tool])
        _label_missing(ax, xs, entries)
    ax.set_xticks(range(len(sizes)), [f"N={n}" for n in sizes])
    ax.set_yscale("symlog", linthresh=1.0)  # 10 and 1000 workers on one chart
    ax.set_ylabel("seconds to N workers Running")
    ax.set_title("1. request -> N workers Running")
    ax.legend()

    ax = axes[1]
    tools = [t for t in TOOLS if t in scale]
    ax.bar(tools, [_seconds(scale[t]) for t in tools], color=[COLOURS[t] for t in tools])
    _label_missing(ax, list(range(len(tools))), [scale[t] for t in tools])
    ax.set_ylabel("seconds to converge")
    ax.set_title("2. scale-down")

    ax = axes[2]
    names = list(footprint)
    for i, phase in enumerate(("clean", "unrelated")):
        values = [float((footprint[n].get(phase) or {}).get("rss_mib") or 0) for n in names]
        ax.bar([x + (i - 0.5) * width for x in range(len(names))], values, width,
               label="clean namespace" if phase == "clean" else "+ unrelated objects",
               color="#2ca02c" if phase == "clean" else "#d62728")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("controller RSS (MiB)")
    ax.set_title("4. footprint")
    ax.legend()

    meta = results.get("meta", {})
    fig.suptitle(f"kubedask benchmarks, {meta.get('mode', '?')} run, {meta.get('date', '?')}")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    draw(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))

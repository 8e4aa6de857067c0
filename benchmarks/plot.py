"""Draw a results JSON as a PNG: ``python plot.py results.json out.png``.

Runs in the cached ``plot`` venv (matplotlib is not a project dependency), so it imports nothing from
the project: only the JSON written by report.py.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import matplotlib

matplotlib.use("Agg")  # no display here
import matplotlib.pyplot as plt  # after choosing the backend

TOOLS = ("kubedask", "operator", "raw")
COLOURS = {"kubedask": "#1f77b4", "operator": "#ff7f0e", "raw": "#7f7f7f"}
WIDTH = 0.27  # of one bar in a group of bars


class Series(NamedTuple):
    """One bar per name in a panel of paired bars: its legend label, heights, and colour (one, or one per name)."""

    label: str
    values: list[float]
    colour: str | list[str]
    alpha: float | None = None


def _seconds(entry: Any) -> float:
    return float(entry["seconds"]) if isinstance(entry, dict) and entry.get("seconds") is not None else 0.0


def _label_missing(ax: Any, xs: list[float], entries: list[Any]) -> None:
    """Say why a bar is missing: a timeout is a result, not a zero."""
    for x, entry in zip(xs, entries, strict=True):
        if isinstance(entry, dict) and entry.get("seconds") is None:
            ax.text(x, 0, "timeout", rotation=90, ha="center", va="bottom", fontsize=8)


def _bars(ax: Any, by_tool: dict[str, Any], key: str, ylabel: str, title: str, tools: tuple[str, ...] = TOOLS) -> None:
    """A panel of one bar per tool measured; a missing figure (timeout, not measured) is labelled, not drawn as 0."""
    names = [t for t in tools if isinstance(by_tool.get(t), dict)]
    values = [by_tool[t].get(key) for t in names]
    ax.bar(names, [float(v) if v is not None else 0.0 for v in values], color=[COLOURS[t] for t in names])
    for x, value in enumerate(values):
        if value is None:
            ax.text(x, 0, "timeout" if key == "seconds" else "n/a", rotation=90, ha="center", va="bottom",
                    fontsize=8)
        else:
            ax.text(x, float(value), f"{float(value):g}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)


def _not_measured(ax: Any, title: str, why: str = "not measured in this run") -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _paired_bars(ax: Any, names: Sequence[str], series: tuple[Series, Series], ylabel: str, title: str) -> None:
    """Two bars per name side by side, one of each series, with a legend naming the series."""
    for i, bars in enumerate(series):
        ax.bar([x + (i - 0.5) * WIDTH for x in range(len(names))], bars.values, WIDTH, label=bars.label,
               color=bars.colour, alpha=bars.alpha)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()


def _measured(entry: Any) -> dict[str, Any] | None:
    return entry if isinstance(entry, dict) and entry and "skipped" not in entry else None


def draw(results: dict[str, Any], out: Path) -> None:
    scenarios = results["scenarios"]
    startup = scenarios.get("startup") or {}
    fig, grid = plt.subplots(2, 4, figsize=(22, 9))
    axes = list(grid.flat)

    ax = axes[0]
    sizes = list(startup)
    measured = [t for t in TOOLS if any(t in startup[n] for n in sizes)]
    for i, tool in enumerate(measured):
        entries = [startup[n].get(tool) for n in sizes]
        xs = [x + (i - (len(measured) - 1) / 2) * WIDTH for x in range(len(sizes))]
        ax.bar(xs, [_seconds(e) for e in entries], WIDTH, label=tool, color=COLOURS[tool])
        _label_missing(ax, xs, entries)
    ax.set_xticks(range(len(sizes)), [f"N={n}" for n in sizes])
    ax.set_yscale("symlog", linthresh=1.0)  # 10 and 1000 workers on one chart
    ax.set_ylabel("seconds to N workers Running (median)")
    ax.set_title("1. request -> N workers Running")
    ax.legend()

    scale = scenarios.get("scale_down")
    if scale:
        _bars(axes[1], scale, "seconds", "seconds to converge", "2. scale-down")
    else:
        _not_measured(axes[1], "2. scale-down")

    idle = _measured(scenarios.get("idle_load"))
    if idle:
        names = list(idle)
        at_rest = [idle[n]["at_rest"] for n in names]
        _paired_bars(axes[2], names, (
            Series("writes besides the Lease",
                   [float(r.get("writes_excluding_leases_per_minute") or 0) for r in at_rest], "#9467bd"),
            Series("Lease writes", [float(r.get("lease_writes_per_minute") or 0) for r in at_rest], "#8c564b"),
        ), "writes per minute at rest", "3. writes at rest")
    else:
        _not_measured(axes[2], "3. writes at rest")

    footprint = scenarios.get("footprint") or {}
    if footprint:
        names = list(footprint)
        rss = {phase: [float((footprint[n].get(phase) or {}).get("rss_mib") or 0) for n in names]
               for phase in ("clean", "unrelated")}
        _paired_bars(axes[3], names, (Series("clean namespace", rss["clean"], "#2ca02c"),
                                      Series("+ unrelated objects", rss["unrelated"], "#d62728")),
                     "controller RSS (MiB)", "4. footprint")
    else:
        _not_measured(axes[3], "4. footprint")

    cold = _measured(scenarios.get("cold_start"))
    if cold:
        names = [n for n in TOOLS if isinstance(cold.get(n), dict)]
        colours = [COLOURS[n] for n in names]
        _paired_bars(axes[4], names, (
            Series("median", [float(cold[n].get("median_seconds") or 0) for n in names], colours, 1.0),
            Series("max", [float(cold[n].get("max_seconds") or 0) for n in names], colours, 0.5),
        ), "seconds to 2 workers connected", "5. real node cold start")
    else:
        _not_measured(axes[4], "5. real node cold start",
                      (scenarios.get("cold_start") or {}).get("skipped", "not measured"))

    api = _measured(scenarios.get("api_requests"))
    if api:
        _bars(axes[5], api, "requests_per_worker", "API requests per worker (no WATCH)",
              "6. API requests per worker created")
    else:
        _not_measured(axes[5], "6. API requests per worker created")

    many = _measured(scenarios.get("many_clusters"))
    if many:
        first = next(iter(many.values()))
        peaks = ", ".join(f"{n} {e['rss_mib_peak']:g} MiB" for n, e in many.items() if e.get("rss_mib_peak"))
        _bars(axes[6], many, "seconds", "seconds to all Running",
              f"7. {first.get('workers')} workers in {first.get('clusters')} clusters"
              + (f"\npeak RSS: {peaks}" if peaks else ""))
    else:
        _not_measured(axes[6], "7. many clusters")

    controllers = [n for n in ("kubedask", "operator") if (api and n in api) or (many and n in many)]
    if controllers:
        one, several = ([float(((source or {}).get(n) or {}).get("cpu_seconds_per_1000_workers") or 0)
                         for n in controllers] for source in (api, many))
        _paired_bars(axes[7], controllers, (Series("one cluster (6)", one, "#17becf"),
                                            Series("many clusters (7)", several, "#bcbd22")),
                     "controller CPU s per 1,000 workers", "8. controller CPU per 1,000 workers")
    else:
        _not_measured(axes[7], "8. controller CPU per 1,000 workers")

    meta = results.get("meta", {})
    fig.suptitle(f"kubedask benchmarks, {meta.get('mode', '?')} run, {meta.get('date', '?')}")
    fig.tight_layout()
    fig.savefig(out, dpi=100)


if __name__ == "__main__":
    draw(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))

"""Ratios and the Markdown report, from a results dict shaped like a real run's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks import report


def results() -> dict[str, Any]:
    return {
        "meta": {"mode": "full", "date": "2026-11-27 10:15 UTC", "machine": "test box",
                 "versions": {"kubedask": "abc123", "kubernetes": "v1.35.4"},
                 "command": "python -m benchmarks"},
        "scenarios": {
            "startup": {"10": {"kubedask": {"seconds": 3.0}, "operator": {"seconds": 9.0},
                               "raw": {"seconds": 2.0}},
                        "1000": {"kubedask": {"seconds": 30.0}, "operator": {"seconds": None, "running": 612},
                                 "raw": {"seconds": 25.0}}},
            "scale_down": {"kubedask": {"seconds": 8.0}, "raw": {"seconds": 4.0}},
            "idle_load": {"kubedask": {"clusters": 50, "at_rest": {
                "reads_per_minute": 12.0, "writes_per_minute": 12.0,
                "writes_excluding_leases_per_minute": 0.0,
                "by_call": {"get leases": 12, "update leases": 12}, "unselected_list_watch": {}},
                "whole_scenario": {"unselected_list_watch": {}}}},
            "footprint": {"kubedask": {"clean": {"rss_mib": 100.0}, "unrelated": {"rss_mib": 104.0},
                                       "rss_ratio_unrelated_to_clean": 1.04}},
            "cold_start": {"skipped": "no real node"},
        },
    }


def test_ratios_are_relative_to_raw_and_missing_where_a_tool_timed_out() -> None:
    r = report.ratios(results()["scenarios"])
    assert r["startup_10"] == {"kubedask/raw": 1.5, "operator/raw": 4.5, "kubedask/operator": 0.33}
    assert r["startup_1000"]["kubedask/raw"] == 1.2
    assert r["startup_1000"]["operator/raw"] is None
    assert r["scale_down"]["kubedask/raw"] == 2.0


def test_markdown_shows_every_scenario_with_its_ratios_and_timeouts() -> None:
    md = report.markdown(results())
    assert "| 10 | 3 s | 9 s | 2 s | 1.5 | 4.5 | 0.33 |" in md
    assert "timeout (612 reached)" in md
    assert "update leases: 12" in md
    assert "RSS among unrelated objects / clean = 1.04" in md
    assert "Skipped: no real node" in md
    assert "v1.35.4" in md and "test box" in md


def test_write_produces_json_and_markdown_without_a_plot(tmp_path: Path) -> None:
    written = report.write(results(), tmp_path, "results-quick", plot_python=None)
    assert [p.name for p in written] == ["results-quick.json", "results-quick.md"]
    saved = json.loads((tmp_path / "results-quick.json").read_text())
    assert saved["ratios"]["startup_10"]["operator/raw"] == 4.5


def test_repeated_runs_report_the_median_and_any_timeout() -> None:
    from benchmarks.scenarios import summarise

    runs = [{"seconds": 3.0, "running": 10}, {"seconds": 1.0, "running": 10}, {"seconds": 2.0, "running": 10}]
    assert summarise(runs) == {"seconds": 2.0, "running": 10, "runs": [3.0, 1.0, 2.0]}
    stuck: list[dict[str, Any]] = [{"seconds": 1.0, "running": 10}, {"seconds": None, "running": 7}]
    assert summarise(stuck) == {"seconds": None, "running": 7, "runs": [1.0, None]}


def test_a_merged_run_keeps_earlier_scenarios_it_does_not_measure_and_credits_them() -> None:
    from benchmarks.runner import merge_base

    earlier = results()
    earlier["meta"].update(cluster="kubedask", command="python -m benchmarks --scenarios cold_start")
    meta = {"command": "python -m benchmarks --merge", "cluster": "bench", "date": "2026-11-27 10:40 UTC"}
    merged = merge_base({**earlier, "ratios": {"old": 1}}, meta,
                        ("startup", "scale_down", "idle_load", "footprint"))
    assert set(merged["scenarios"]) == {"cold_start"}
    assert merged["meta"] == meta
    assert merged["notes"] == [
        "cold_start: from an earlier run, `python -m benchmarks --scenarios cold_start` "
        "on cluster 'kubedask' at 2026-11-27 10:15 UTC"]

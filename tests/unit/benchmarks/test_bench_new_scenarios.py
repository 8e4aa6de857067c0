"""The pure parts of scenarios 1 (interleaved medians), 3 (Lease writes), 5 (max), 6 (requests per worker),
7 (many clusters) and 8 (CPU per 1,000 workers): counting, ordering, ratios and their report."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from test_bench_audit import CONTROLLER, event
from test_bench_report import results

from benchmarks import audit, plan, processes, report
from benchmarks.__main__ import parse, parse_many
from benchmarks.scenarios import interleaved, summarise
from benchmarks.scenarios_scale import cpu_per_1000

RAW = "system:serviceaccount:kube-system:bench-raw"


def test_every_tool_runs_once_per_round_and_who_goes_first_rotates() -> None:
    order = interleaved(["kubedask", "operator", "raw"], 3)
    assert order == [(0, "kubedask"), (0, "operator"), (0, "raw"),
                     (1, "operator"), (1, "raw"), (1, "kubedask"),
                     (2, "raw"), (2, "kubedask"), (2, "operator")]
    assert interleaved(["kubedask"], 2) == [(0, "kubedask"), (1, "kubedask")]
    assert interleaved([], 3) == []


def test_the_median_of_three_interleaved_runs_is_the_middle_one() -> None:
    runs = {"kubedask": [5.0, 3.0, 4.0], "raw": [3.5, 3.0, 9.0]}
    summary = {t: summarise([{"seconds": s, "running": 10} for s in r]) for t, r in runs.items()}
    assert summary["kubedask"]["seconds"] == 4.0 and summary["raw"]["seconds"] == 3.5
    assert report.ratios({"startup": {"1000": summary}})["startup_1000"]["kubedask/raw"] == 1.14


def test_requests_per_worker_exclude_watches_and_count_lease_calls_apart() -> None:
    events = [*(event("create", "pods", audit_id=f"c{i}") for i in range(10)),
              event("list", "pods", audit_id="l"), event("patch", "configmaps", audit_id="p"),
              event("watch", "pods", audit_id="w", stage="ResponseStarted"),
              event("watch", "pods", audit_id="w"), event("update", "leases", audit_id="u"),
              event("create", "pods", audit_id="r", user=RAW)]
    usage = audit.count(events, [CONTROLLER, RAW])
    mine = usage[CONTROLLER].per_worker(10)
    assert (mine["requests"], mine["watches"], mine["writes"]) == (13, 1, 12)
    assert mine["requests_per_worker"] == 1.3
    assert mine["requests_per_worker_excluding_leases"] == 1.2
    assert mine["by_call"] == {"create pods": 10, "list pods": 1, "patch configmaps": 1, "update leases": 1}
    assert usage[RAW].per_worker(1)["requests_per_worker"] == 1.0


def test_lease_writes_at_rest_are_reported_per_minute_beside_the_other_writes() -> None:
    events = [*(event("update", "leases", audit_id=f"u{i}") for i in range(8)),
              event("get", "leases", audit_id="g"), event("patch", "configmaps", audit_id="p")]
    rest = audit.count(events, [CONTROLLER])[CONTROLLER].as_dict(minutes=2)
    assert rest["lease_writes_per_minute"] == 4.0
    assert rest["writes_excluding_leases_per_minute"] == 0.5


def test_cpu_seconds_per_thousand_workers_and_the_peak_rss_come_from_proc() -> None:
    before, after = processes.Footprint(100.0, 10.0), processes.Footprint(180.0, 34.0, 200.0)
    assert cpu_per_1000(before, after, 10_000) == 2.4
    assert cpu_per_1000(before, after, 0) is None
    status = "VmPeak:\t 900000 kB\nVmHWM:\t  262144 kB\nVmRSS:\t  131072 kB\n"
    assert processes.parse_rss_kib(status, "VmHWM") == 262144
    assert processes.parse_rss_kib(status) == 131072


def new_results() -> dict[str, Any]:
    out = results()
    out["plan"] = {"repeats": 3}
    out["scenarios"]["api_requests"] = {
        "kubedask": {"workers": 1000, "seconds": 20.0, "requests": 1050, "requests_per_worker": 1.05,
                     "requests_per_worker_excluding_leases": 1.048, "writes_per_worker": 1.02,
                     "by_call": {"create pods": 1000, "patch configmaps": 3}, "cpu_seconds_per_1000_workers": 4.0},
        "operator": {"workers": 1000, "seconds": 90.0, "requests": 6200, "requests_per_worker": 6.2,
                     "cpu_seconds_per_1000_workers": 40.0},
        "raw": {"workers": 1000, "seconds": 15.0, "requests": 1000, "requests_per_worker": 1.0},
    }
    out["scenarios"]["many_clusters"] = {
        "kubedask": {"clusters": 100, "workers": 10_000, "seconds": 200.0, "running": 10_000,
                     "rss_mib_peak": 210.5, "rss_mib": 190.0, "cpu_seconds": 30.0,
                     "cpu_seconds_per_1000_workers": 3.0, "requests_per_worker": 1.04},
        "operator": {"clusters": 100, "workers": 10_000, "seconds": None, "running": 4321,
                     "rss_mib_peak": 600.0, "cpu_seconds": 500.0, "cpu_seconds_per_1000_workers": 50.0},
        "raw": {"clusters": 100, "workers": 10_000, "seconds": 160.0, "running": 10_000},
    }
    out["scenarios"]["cold_start"] = {"node": "n1", "kubedask": {"median_seconds": 3.5, "max_seconds": 5.2,
                                                                 "runs": [3.5, 3.4, 5.2, 3.6, 3.1]},
                                      "operator": {"median_seconds": 21.0, "max_seconds": 30.0, "runs": [21.0]}}
    out["scenarios"]["idle_load"]["kubedask"]["at_rest"]["lease_writes_per_minute"] = 4.0
    return out


def test_ratios_of_the_new_scenarios_are_against_the_same_runs_baseline() -> None:
    r = report.ratios(new_results()["scenarios"])
    assert r["api_requests"] == {"kubedask/raw": 1.05, "operator/raw": 6.2, "kubedask/operator": 0.17}
    assert r["many_clusters"] == {"kubedask/raw": 1.25, "operator/raw": None, "kubedask/operator": None}
    assert r["many_cpu_per_1000_workers"]["kubedask/operator"] == 0.06
    assert r["api_cpu_per_1000_workers"]["kubedask/operator"] == 0.1
    assert r["cold_start"]["kubedask/operator"] == 0.17
    assert "api_requests" not in report.ratios({"api_requests": {"skipped": "no audit log"}})


def test_markdown_shows_the_new_scenarios() -> None:
    md = report.markdown(new_results())
    assert "median of 3 runs, the tools interleaved" in md
    assert "| kubedask | 1000 | 20 s | 1050 | 1.05 | 1.048 | 1.02 | create pods: 1000, patch configmaps: 3 |" in md
    assert "kubedask/raw 1.05, operator/raw 6.2." in md
    assert "## 7. 100 clusters x 100 workers under one controller" in md
    assert "| kubedask | 200 s | 210.5 | 190 | 30 | 1.04 |" in md
    assert "| operator | timeout (4321 reached) | 600 |" in md
    assert "kubedask/raw 1.25, operator/raw —" in md
    assert "| kubedask | 4 | 3 |" in md and "| operator | 40 | 50 |" in md  # CPU s per 1,000 workers
    assert "| kubedask | 3.5 | 5.2 | [3.5, 3.4, 5.2, 3.6, 3.1] |" in md
    assert "kubedask/operator (median): 0.17" in md
    assert "| kubedask | 50 | 12.0 | 12.0 | 0.0 | 4 |" in md  # writes at rest: besides the Lease, the Lease


def test_sizes_and_runs_are_set_from_the_command_line() -> None:
    options = parse(["--quick", "--repeats", "3", "--many", "2x10", "--api-workers", "10",
                     "--cold-start-runs", "2", "--scenarios", "startup,many_clusters,api_requests"])
    p = options.plan
    assert (p.repeats, p.many_clusters, p.many_workers, p.api_workers, p.cold_start_repeats) == (3, 2, 10, 10, 2)
    assert p.pods_needed() == 2 * 11
    assert parse_many("100X100") == (100, 100)
    with pytest.raises(ValueError, match="CLUSTERSxWORKERS"):
        parse_many("100")


def test_the_full_plan_measures_ten_thousand_workers_and_three_runs_of_every_size() -> None:
    full = plan.full()
    assert (full.many_clusters, full.many_workers, full.api_workers, full.repeats) == (100, 100, 1000, 3)
    assert full.nodes * 1000 >= full.pods_needed() >= 100 * 101
    quick = plan.quick()
    assert {"many_clusters", "api_requests"} <= set(quick.scenarios)
    assert quick.many_clusters * quick.many_workers <= 10 and quick.api_workers <= 5
    with pytest.raises(ValueError, match="at least 1"):
        dataclasses.replace(quick, repeats=0)

"""Smoke test of the benchmark runner: ``python -m benchmarks --quick`` against the local cluster.

Proves every scenario's code path runs end to end and writes its report; the figures themselves are
the full run's business (docs/benchmarks/), not this test's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_quick_run_measures_every_scenario_and_writes_its_report(devcluster_instance: Any,
                                                                 tmp_path: Path) -> None:
    if devcluster_instance is None:
        pytest.skip("the runner reads the local devcluster's audit log (not with --existing-cluster)")
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("client", "controller", "."))}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--no-plot", "--cluster", devcluster_instance.name,
         "--output", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "=== scenario 1+2 start-up and scale-down ===" in proc.stderr  # progress is shown

    results = json.loads((tmp_path / "results-quick.json").read_text())
    scenarios = results["scenarios"]
    assert "errors" not in scenarios, scenarios.get("errors")
    for tool in ("kubedask", "raw"):
        assert scenarios["startup"]["3"][tool]["running"] == 3
        assert scenarios["startup"]["3"][tool]["seconds"] is not None
        assert len(scenarios["startup"]["3"][tool]["runs"]) == 2  # the median of interleaved runs
        assert scenarios["scale_down"][tool]["live"] == 1
        many = scenarios["many_clusters"][tool]
        assert (many["clusters"], many["workers"], many["running"]) == (2, 6, 6) and many["seconds"] is not None
    # Scenario 6: the raw baseline's own identity sent exactly one create per worker.
    api = scenarios["api_requests"]
    assert api["raw"]["requests_per_worker"] == 1.0 and api["raw"]["by_call"] == {"create pods": 3}
    assert api["kubedask"]["by_call"]["create pods"] == 4  # the scheduler pod too
    assert api["kubedask"]["requests_per_worker"] >= 4 / 3
    assert api["kubedask"]["cpu_seconds_per_1000_workers"] is not None
    many = scenarios["many_clusters"]["kubedask"]
    assert many["rss_mib_peak"] >= many["rss_mib"] > 0 and many["cpu_seconds_per_1000_workers"] is not None
    assert results["ratios"]["api_requests"]["kubedask/raw"] is not None
    assert results["ratios"]["many_clusters"]["kubedask/raw"] is not None
    assert "lease_writes_per_minute" in scenarios["idle_load"]["kubedask"]["at_rest"]
    idle = scenarios["idle_load"]["kubedask"]
    assert idle["user"] == "system:serviceaccount:kube-system:bench-kubedask"
    assert idle["whole_scenario"]["by_call"].get("create pods", 0) >= 2  # it did see the controller
    footprint = scenarios["footprint"]["kubedask"]
    assert footprint["clean"]["rss_mib"] > 0 and footprint["unrelated"]["rss_mib"] > 0
    assert footprint["clean"]["workers_running"] == 4
    assert scenarios["cold_start"] == {"skipped": "quick mode"}
    assert results["ratios"]["startup_3"]["kubedask/raw"] is not None
    assert results["meta"]["versions"]["kubernetes"].startswith("v1.")
    md = (tmp_path / "results-quick.md").read_text()
    assert "| 3 |" in md and "## 6. API requests per worker" in md and "## 7. 2 clusters x 3 workers" in md
    assert "## 8. Controller CPU seconds per 1,000 workers" in md

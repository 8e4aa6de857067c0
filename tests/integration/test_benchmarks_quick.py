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
        assert scenarios["scale_down"][tool]["live"] == 1
    idle = scenarios["idle_load"]["kubedask"]
    assert idle["user"] == "system:serviceaccount:kube-system:bench-kubedask"
    assert idle["whole_scenario"]["by_call"].get("create pods", 0) >= 2  # it did see the controller
    footprint = scenarios["footprint"]["kubedask"]
    assert footprint["clean"]["rss_mib"] > 0 and footprint["unrelated"]["rss_mib"] > 0
    assert footprint["clean"]["workers_running"] == 4
    assert scenarios["cold_start"] == {"skipped": "quick mode"}
    assert results["ratios"]["startup_3"]["kubedask/raw"] is not None
    assert results["meta"]["versions"]["kubernetes"].startswith("v1.")
    assert "| 3 |" in (tmp_path / "results-quick.md").read_text()

"""How the runner starts each controller (no cluster needed: only the command lines)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from benchmarks import tools
from benchmarks.kube import Kube


def test_kubedask_controller_watches_exactly_the_benchmark_namespaces(tmp_path: Path) -> None:
    tool = tools.KubedaskTool(cast(Kube, None), tmp_path / "id.kubeconfig", tmp_path)
    argv = tool._argv(["bench-a", "bench-b"], health_port=18080)
    assert argv[1:3] == ["-m", "kubedask_controller"]
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--namespace"] == ["bench-a", "bench-b"]
    assert argv[argv.index("--health-port") + 1] == "18080"
    assert argv[argv.index("--bind-host") + 1] == "127.0.0.1"
    # Leader election stays on, as deployed: its Lease renewals show up (separately) in scenario 3.
    assert "--no-leader-election" not in argv
    env: dict[str, Any] = tool._env()
    assert env["KUBECONFIG"] == str(tmp_path / "id.kubeconfig")
    assert "client" in env["PYTHONPATH"] and "controller" in env["PYTHONPATH"]


def test_operator_runs_from_its_own_venv_with_kopf_standalone(tmp_path: Path) -> None:
    tool = tools.OperatorTool(cast(Kube, None), tmp_path / "id.kubeconfig", tmp_path)
    argv = tool._argv(["bench-o"], health_port=18081)
    assert Path(argv[0]).parent.parent.name == "operator"  # ~/.cache/kubedask/bench-venvs/operator
    assert argv[1:5] == ["run", "--standalone", "-m", "dask_kubernetes.operator.controller"]
    assert argv[argv.index("--namespace") + 1] == "bench-o"
    assert argv[argv.index("--liveness") + 1] == "http://127.0.0.1:18081/healthz"


def test_each_controller_has_its_own_audit_identity(tmp_path: Path) -> None:
    controllers = (tools.KubedaskTool, tools.OperatorTool)
    users = {cls(cast(Kube, None), tmp_path, tmp_path).user for cls in controllers}
    assert users == {"system:serviceaccount:kube-system:bench-kubedask",
                     "system:serviceaccount:kube-system:bench-operator"}
    assert tools.RawTool(cast(Kube, None)).user is None

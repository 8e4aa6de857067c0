"""The architecture holds by check, not by goodwill: pure layers stay pure, and the code is lint- and type-clean."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONTROLLER = REPO / "controller" / "kubedask_controller"
CLIENT = REPO / "client" / "kubedask"

# Modules that turn data into data: no API client, no Kopf, so they unit-test without a cluster.
PURE_CONTROLLER_MODULES = ("builders.py", "reconcile.py", "policy.py", "status.py")
IO_PACKAGES = ("kopf", "kubernetes", "aiohttp")


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", PURE_CONTROLLER_MODULES)
def test_pure_controller_modules_do_no_io(module: str) -> None:
    assert not imported_packages(CONTROLLER / module) & set(IO_PACKAGES)


def test_the_shared_schema_needs_only_pydantic_and_yaml() -> None:
    for path in (CLIENT / "spec").glob("*.py"):
        third_party = imported_packages(path) - set(sys.stdlib_module_names) - {"__future__"}
        assert third_party <= {"pydantic", "yaml"}, path.name


def test_the_client_never_imports_the_controller() -> None:
    for path in CLIENT.glob("*.py"):
        assert "kubedask_controller" not in imported_packages(path), path.name
        assert "kopf" not in imported_packages(path), path.name


def test_code_is_ruff_clean() -> None:
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_packages_are_mypy_strict_clean() -> None:
    packages = ["client", "controller", "devcluster", "benchmarks"]
    proc = subprocess.run([sys.executable, "-m", "mypy", *packages], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_git_tracks_nothing_that_gitignore_excludes() -> None:
    """Build artefacts (bytecode, egg-info) in git are rewritten by every install and dirty every tree."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    proc = subprocess.run(["git", "ls-files", "--cached", "--ignored", "--exclude-standard"], cwd=REPO,
                          capture_output=True, text=True, check=True)
    assert proc.stdout.split() == [], f"tracked although .gitignore excludes them: {proc.stdout.split()}"

"""The architecture holds by check, not by goodwill: the layering (import-linter), and lint- and type-clean code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

def test_import_layering_holds() -> None:
    """The contracts in pyproject.toml ([tool.importlinter]): the client never imports the controller, the
    shared schema needs only pydantic and PyYAML, pure controller modules do no I/O, and the controller's
    layers (Kopf wiring > all loops > one request's driver > its jobs > API wrappers) import only downwards."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("client", "controller", "."))}
    proc = subprocess.run([str(lint_imports)], cwd=REPO, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


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


def test_test_modules_have_unique_names() -> None:
    """The test directories are not packages, so pytest imports each test module by its file name: two
    files of one name in different directories stop the whole suite at collection."""
    seen: dict[str, list[str]] = {}
    for path in sorted((REPO / "tests").rglob("test_*.py")):
        seen.setdefault(path.name, []).append(str(path.relative_to(REPO)))
    clashes = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert clashes == {}, f"rename one of each: {clashes}"

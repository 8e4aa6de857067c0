"""Cached virtualenvs for what must not enter the project's own environment.

- ``operator``: the released dask-kubernetes operator from PyPI (its own kopf/kr8s/dask pins);
- ``plot``: matplotlib, only needed to draw the PNG.

Each lives in ``~/.cache/kubedask/bench-venvs/NAME`` and is rebuilt only when its pinned requirements
change (a ``.complete`` marker records them).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from devcluster.paths import cache_dir

OPERATOR_VERSION = "2026.3.0"
REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "operator": (f"dask-kubernetes=={OPERATOR_VERSION}",),
    "plot": ("matplotlib",),
}


def root() -> Path:
    return cache_dir() / "bench-venvs"


def python(name: str) -> Path:
    return root() / name / "bin" / "python"


def ensure(name: str, say: Callable[[str], None] = print) -> Path:
    """The venv's python, creating or refreshing the venv if its requirements changed."""
    requirements: Sequence[str] = REQUIREMENTS[name]
    venv = root() / name
    marker = venv / ".complete"
    wanted = "\n".join(requirements)
    if marker.exists() and marker.read_text() == wanted and python(name).exists():
        return python(name)
    say(f"installing {' '.join(requirements)} into {venv} (once)")
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    # The system python3, not the project venv's: a venv created from a venv would share nothing useful.
    base = shutil.which("python3") or sys.executable
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *requirements], check=True)
    marker.write_text(wanted)
    return python(name)


def site_packages(name: str) -> Path:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    out = subprocess.run([str(python(name)), "-c", code], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def package_version(name: str, distribution: str) -> str | None:
    out = subprocess.run([str(python(name)), "-c",
                          f"import importlib.metadata as m; print(m.version({distribution!r}))"],
                         capture_output=True, text=True)
    return out.stdout.strip() or None if out.returncode == 0 else None

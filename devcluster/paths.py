"""Where the local cluster keeps its cache (binaries, images) and its per-instance state."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Build outputs shared by all instances, kept across runs (``$KUBEDASK_CACHE``)."""
    return Path(os.environ.get("KUBEDASK_CACHE", Path.home() / ".cache" / "kubedask"))


def state_root() -> Path:
    """Per-instance state: certificates, etcd data, logs, pids (``$KUBEDASK_STATE``)."""
    return Path(os.environ.get("KUBEDASK_STATE", Path.home() / ".local" / "state" / "kubedask"))

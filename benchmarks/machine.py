"""Where and with what a run happened: machine, date, versions (recorded in every result file)."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any


def cpu_model(cpuinfo: str) -> str:
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory_gib(meminfo: str) -> float | None:
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def describe_machine() -> str:
    memory = memory_gib(_read("/proc/meminfo"))
    return (f"{cpu_model(_read('/proc/cpuinfo'))}, {os.cpu_count()} CPUs (shared), "
            f"{memory if memory is not None else '?'} GiB RAM, {platform.system()} {platform.release()}")


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def versions(kubedask_revision: str, operator_version: str | None) -> dict[str, Any]:
    from devcluster import versions as cluster_versions

    return {
        "kubedask": kubedask_revision,
        "dask-kubernetes operator": operator_version or "not run",
        "kubernetes": cluster_versions.KUBERNETES,
        "kwok": cluster_versions.KWOK,
        "etcd": cluster_versions.ETCD,
        "kopf (kubedask)": _version("kopf"),
        "distributed": _version("distributed"),
        "python": platform.python_version(),
    }


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")

"""kubedask: Dask clusters on Kubernetes, requested through labelled ConfigMaps.

A drop-in for the classic dask-kubernetes API; change the import and keep the rest.

Example:
    >>> from kubedask import KubeCluster, make_pod_spec
    >>> pod_spec = make_pod_spec(image="ghcr.io/dask/dask:latest", memory_limit="1G", cpu_request="100m")
    >>> cluster = KubeCluster(pod_spec)  # doctest: +SKIP
    >>> cluster.scale(2)  # doctest: +SKIP

A batch job on a cluster of its own, which goes when the job ends (see :func:`kubedask.run_job`):
    >>> from kubedask import run_job
    >>> result = run_job("job.yml", pod_spec, n_workers=2)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .auth import ClusterAuth, InCluster, KubeAuth, KubeConfig
    from .cluster import KubeCluster
    from .errors import (
        ClusterNotFoundError,
        ControllerNotRespondingError,
        KubeClusterError,
        RequestRejectedError,
        SchedulerStartError,
        SchedulerStartTimeoutError,
    )
    from .jobs import JobResult, JobTimeoutError, run_job, run_job_async
    from .templates import make_pod_spec

# The public names are imported on first use (PEP 562): the controller imports only ``kubedask.spec``, and
# must not pay for distributed, dask and the kubernetes client (~30 MiB of RSS) it never uses.
_EXPORTS = {
    "ClusterAuth": "auth", "InCluster": "auth", "KubeAuth": "auth", "KubeConfig": "auth",
    "KubeCluster": "cluster",
    "JobResult": "jobs", "JobTimeoutError": "jobs", "run_job": "jobs", "run_job_async": "jobs",
    "ClusterNotFoundError": "errors", "ControllerNotRespondingError": "errors", "KubeClusterError": "errors",
    "RequestRejectedError": "errors", "SchedulerStartError": "errors", "SchedulerStartTimeoutError": "errors",
    "make_pod_spec": "templates",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kubedask' has no attribute {name!r}")
    importlib.import_module(".config", __name__)  # registers the kubernetes.* Dask config defaults
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"

__all__ = [
    "ClusterAuth",
    "ClusterNotFoundError",
    "ControllerNotRespondingError",
    "InCluster",
    "JobResult",
    "JobTimeoutError",
    "KubeAuth",
    "KubeCluster",
    "KubeClusterError",
    "KubeConfig",
    "RequestRejectedError",
    "SchedulerStartError",
    "SchedulerStartTimeoutError",
    "__version__",
    "make_pod_spec",
    "run_job",
    "run_job_async",
]

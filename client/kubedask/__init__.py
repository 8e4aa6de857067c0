"""kubedask: Dask clusters on Kubernetes, requested through labelled ConfigMaps.

A drop-in for the classic dask-kubernetes API; change the import and keep the rest.

Example:
    >>> from kubedask import KubeCluster, make_pod_spec
    >>> pod_spec = make_pod_spec(image="ghcr.io/dask/dask:latest", memory_limit="1G", cpu_request="100m")
    >>> cluster = KubeCluster(pod_spec)  # doctest: +SKIP
    >>> cluster.scale(2)  # doctest: +SKIP
"""

from __future__ import annotations

from . import config as _config  # noqa: F401  (registers the kubernetes.* Dask config defaults)
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
from .templates import make_pod_spec

__version__ = "0.1.0"

__all__ = [
    "ClusterAuth",
    "ClusterNotFoundError",
    "ControllerNotRespondingError",
    "InCluster",
    "KubeAuth",
    "KubeCluster",
    "KubeClusterError",
    "KubeConfig",
    "RequestRejectedError",
    "SchedulerStartError",
    "SchedulerStartTimeoutError",
    "__version__",
    "make_pod_spec",
]

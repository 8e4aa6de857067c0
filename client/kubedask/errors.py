"""Errors a KubeCluster raises instead of waiting forever. Each message says what happened and what to do.

Example:
    >>> try:
    ...     cluster = KubeCluster(pod_spec)  # doctest: +SKIP
    ... except ControllerNotRespondingError as e:
    ...     print(e)  # "No kubedask controller acted on request team-a/dask-alice-... within 30s ..."
"""

from __future__ import annotations


class KubeClusterError(RuntimeError):
    """Base class of kubedask client errors."""


class ControllerNotRespondingError(KubeClusterError, TimeoutError):
    """No controller wrote a status on the request within ``kubernetes.controller-timeout``."""


class RequestRejectedError(KubeClusterError, ValueError):
    """The controller refused the request (invalid, or against its policy), in the controller's words."""


class SchedulerStartError(KubeClusterError):
    """The scheduler pod cannot start (image pull failure, crash, ...); includes its events and log tail."""


class SchedulerStartTimeoutError(SchedulerStartError, TimeoutError):
    """The scheduler did not become ready within ``kubernetes.scheduler-service-wait-timeout``."""


class ClusterNotFoundError(KubeClusterError, LookupError):
    """``KubeCluster.from_name`` found no request with that name."""

"""A cluster's pods and their logs, read through the API (the user needs only get/list on pods and logs);
:class:`PodsAndLogsMixin` gives :class:`~kubedask.KubeCluster` its ``pods``, ``logs`` and ``get_logs``.

Example:
    >>> selector("analysis", "worker")
    'dask.org/cluster-name=analysis,dask.org/component=worker'
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from distributed.utils import Log, Logs
from kubernetes import client

from . import spec
from .kube import Api

if TYPE_CHECKING:
    from .session import Session


def selector(cluster: str, component: str | None) -> str:
    """The label selector of a cluster's pods: all of them, or one component's (``worker``, ``scheduler``)."""
    labels = f"{spec.CLUSTER_NAME_LABEL}={cluster}"
    if component is not None:
        labels += f",{spec.COMPONENT_LABEL}={component}"
    return labels


def pod_name(pod: client.V1Pod) -> str:
    """The name of a pod object (the generated models type every field as optional)."""
    return str(pod.metadata.name) if pod.metadata is not None else ""


async def pods(api: Api, cluster: str, component: str | None = "worker") -> list[client.V1Pod]:
    """The cluster's pods, sorted by name."""
    return sorted(await api.list_pod_objects(selector(cluster, component)), key=pod_name)


async def pod_log(api: Api, name: str) -> Log:
    return Log(await api.pod_log(name))


async def worker_logs(api: Api, cluster: str, wanted: Iterable[str] | None = None) -> dict[str, Log]:
    """The logs of the cluster's worker pods (all, or those named in ``wanted``), keyed by pod name."""
    only = None if wanted is None else set(wanted)
    names = [pod_name(p) for p in await pods(api, cluster, "worker")]
    names = [n for n in names if only is None or n in only]
    logs = await asyncio.gather(*(pod_log(api, n) for n in names))
    return dict(zip(names, logs, strict=True))


async def collect(
    api: Api, cluster: str, manager_lines: list[str] | None, *, scheduler: bool, local_scheduler: Any = None,
    workers: bool | Iterable[str] = True,
) -> Logs:
    """``get_logs()``: this client's lines as ``"Cluster"`` (unless None), the scheduler's log as
    ``"Scheduler"`` (from ``local_scheduler``, an rpc to an in-process scheduler, else its pod) and the
    worker pods' logs by pod name (all, or those named in ``workers``)."""
    logs = Logs()
    if manager_lines is not None:
        logs["Cluster"] = Log("\n".join(manager_lines))
    if scheduler and local_scheduler is not None:
        logs["Scheduler"] = Log("\n".join(line for _, line in await local_scheduler.get_logs()))
    elif scheduler:
        logs["Scheduler"] = await pod_log(api, spec.scheduler_name(cluster))
    if workers:
        logs.update(await worker_logs(api, cluster, None if workers is True else workers))
    return logs


class PodsAndLogsMixin:
    """The pod and log methods of :class:`~kubedask.KubeCluster`."""

    if TYPE_CHECKING:  # provided by KubeCluster (and distributed's Cluster)
        _session: Session
        _cluster_manager_logs: Any
        request_name: str
        scheduler_comm: Any
        sync: Callable[..., Any]
        get_logs: Callable[..., Any]

    def pods(self, component: str | None = "worker") -> Any:
        """The cluster's pods (``kubernetes.client.V1Pod``): workers by default, ``None`` for all.

        Example:
            >>> [p.metadata.name for p in cluster.pods()]  # doctest: +SKIP
            ['dask-alice-1a2b3c4d-5e-worker-x7k2p']
        """
        return self.sync(self._pods, component)

    async def _pods(self, component: str | None = "worker") -> list[client.V1Pod]:
        return await pods(self._session.kube(), self.request_name, component)

    def logs(self, pod: str | client.V1Pod | None = None) -> Any:
        """The log of one pod (a name or a V1Pod), or with no argument all logs like :meth:`get_logs`.

        Example:
            >>> print(cluster.logs(cluster.pods()[0]))  # doctest: +SKIP
        """
        if pod is None:
            return self.get_logs()
        name = pod if isinstance(pod, str) else pod_name(pod)
        return self.sync(pod_log, self._session.kube(), name)

    async def _get_logs(
        self, cluster: bool = True, scheduler: bool = True, workers: bool | Iterable[str] = True
    ) -> Logs:
        """Logs keyed ``"Scheduler"`` and by worker pod name (plus ``"Cluster"``: this client's messages)."""
        local = self.scheduler_comm if self._session.local_scheduler is not None else None
        lines = [line for _, line in self._cluster_manager_logs] if cluster else None
        return await collect(
            self._session.kube(), self.request_name, lines, local_scheduler=local, workers=workers,
            scheduler=scheduler and (local is not None or self._session.deploy_mode == "remote"))

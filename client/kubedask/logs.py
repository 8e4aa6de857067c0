"""A cluster's pods and their logs, read through the API (the user needs only get/list on pods and logs).

Example:
    >>> selector("analysis", "worker")
    'dask.org/cluster-name=analysis,dask.org/component=worker'
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from distributed.utils import Log, Logs
from kubernetes import client

from . import spec
from .kube import Api


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

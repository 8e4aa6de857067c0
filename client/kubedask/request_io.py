"""The client's side of a request ConfigMap: build it, create or adopt it, change it, renew its
heartbeat, and delete it.

Example:
    >>> manifest = build_manifest("analysis", "team-a", worker={"spec": {"containers": [{"image": "i"}]}})
    >>> manifest["metadata"]["labels"]
    {'kubedask.io/request': 'cluster'}
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dask.utils import parse_timedelta
from kubernetes.client.exceptions import ApiException

from . import spec
from .errors import ClusterNotFoundError, KubeClusterError
from .kube import Api, Manifest
from .spec.adapt import parse_adapt

logger = logging.getLogger(__name__)

POLL_START = 0.25  # seconds between reads at first; doubles up to POLL_MAX
POLL_MAX = 2.0
#: Heartbeats are renewed no more often than this, however short the timeout.
MIN_HEARTBEAT_INTERVAL = 5.0

Sleep = Callable[[float], Awaitable[None]]


def build_manifest(
    name: str,
    namespace: str,
    *,
    worker: Mapping[str, Any],
    scheduler: Mapping[str, Any] | None = None,
    workers: int | None = None,
    service_type: str | None = None,
    idle_timeout: float | None = None,
    deploy_mode: str | None = None,
    scheduler_address: str | None = None,
    heartbeat_timeout: float | None = None,
    worker_groups: Mapping[str, tuple[Mapping[str, Any], int]] | None = None,
) -> Manifest:
    """The request ConfigMap (a dict), validated by the shared schema, with a fresh heartbeat."""
    data = spec.build_request_data(
        worker_template=worker,
        workers=workers,
        scheduler_template=scheduler,
        scheduler_service_type=service_type,
        idle_timeout=idle_timeout,
        deploy_mode=deploy_mode,
        scheduler_address=scheduler_address,
        client_heartbeat_timeout=heartbeat_timeout,
        worker_groups={g: (n, t) for g, (t, n) in (worker_groups or {}).items()},
    )
    if worker_groups:
        spec.parse_request(name, data)  # group names must fit this cluster's pod names
    manifest = spec.build_request_configmap(name, namespace, data)
    manifest["metadata"]["annotations"] = {spec.HEARTBEAT_ANNOTATION: spec.format_heartbeat()}
    return manifest


def scale_target(n: int, cap: int | None) -> int:
    """The worker count to request for ``scale(n)``: refused below 0, capped at ``kubernetes.count.max``."""
    n = int(n)
    if n < 0:
        raise ValueError(f"cannot scale to {n} workers")
    if cap is not None and n > int(cap):
        logger.info("Tried to scale beyond the maximum number of workers %d > %d", n, cap)
        return int(cap)
    return n


def adapt_settings(
    minimum: int | None, maximum: int | float | None, interval: str | float | None, cooldown: str | float | None,
    cap: int | None,
) -> dict[str, Any]:
    """The ``adapt`` key for ``adapt()``: ``maximum`` defaults to (and is capped by) ``kubernetes.count.max``;
    ``interval`` and ``cooldown`` may be Dask time strings (``"30s"``).

    Example:
        >>> adapt_settings(1, None, "10s", None, cap=20)
        {'minimum': 1, 'maximum': 20, 'interval': 10.0}
    """
    if maximum is None or math.isinf(maximum):
        maximum = int(cap) if cap is not None else spec.MAX_WORKERS
    high = min(int(maximum), int(cap)) if cap is not None else int(maximum)
    low = int(minimum or 0)
    if low > high:
        raise ValueError(f"adapt(): minimum {low} is larger than maximum {high}")
    adapt: dict[str, Any] = {"minimum": low, "maximum": high}
    if interval is not None:
        adapt["interval"] = float(parse_timedelta(interval, default="seconds"))
    if cooldown is not None:
        adapt["cooldown"] = float(parse_timedelta(cooldown, default="seconds"))
    return adapt


def heartbeat_interval(timeout: float) -> float:
    """Three renewals per timeout tolerate a missed write or two."""
    return max(MIN_HEARTBEAT_INTERVAL, timeout / 3)


@dataclass
class Adopted:
    """What attaching to an existing request learns from it."""

    request: Manifest
    deploy_mode: str
    heartbeat_timeout: float | None


class RequestIO:
    """Reads and writes one request ConfigMap through an :class:`~kubedask.kube.Api`."""

    def __init__(self, api: Api, name: str) -> None:
        self.api = api
        self.name = name

    @property
    def where(self) -> str:
        return f"{self.api.namespace}/{self.name}"

    async def create(self, manifest: Mapping[str, Any]) -> Manifest:
        try:
            return await self.api.create_configmap(manifest)
        except ApiException as e:
            if e.status == 409:
                raise KubeClusterError(
                    f"a cluster named {self.name!r} already exists in namespace {self.api.namespace!r}; "
                    f"attach to it with KubeCluster.from_name({self.name!r}) or choose another name"
                ) from None
            raise

    async def adopt(self) -> Adopted:
        request = await self.api.read_configmap(self.name)
        labels = ((request or {}).get("metadata") or {}).get("labels") or {}
        # The same label value the controller selects requests by (spec.REQUEST_SELECTOR).
        if request is None or labels.get(spec.REQUEST_LABEL) != spec.REQUEST_LABEL_VALUE:
            raise ClusterNotFoundError(f"no kubedask cluster named {self.name!r} in namespace {self.api.namespace!r}")
        data = request.get("data") or {}
        raw_timeout = data.get(spec.KEY_HEARTBEAT_TIMEOUT)
        timeout = spec.parse_duration(raw_timeout, spec.KEY_HEARTBEAT_TIMEOUT) if raw_timeout else None
        return Adopted(request, data.get(spec.KEY_DEPLOY_MODE) or "remote", timeout)

    async def read(self) -> Manifest:
        request = await self.api.read_configmap(self.name)
        if request is None:
            raise ClusterNotFoundError(f"the request {self.where} no longer exists")
        return request

    async def patch(self, patch: Mapping[str, Any]) -> None:
        await self.api.patch_configmap(self.name, patch)

    async def set_workers(self, n: int, group: str = spec.DEFAULT_GROUP) -> None:
        """Ask for ``n`` workers of ``group`` (``workers``, or ``workers.GROUP``) and turn that group's
        adaptivity off (``adapt``, or ``adapt.GROUP``); the other groups are left as they are."""
        await self.patch({"data": {spec.group_key(spec.KEY_WORKERS, group): str(n),
                                   spec.group_key(spec.KEY_ADAPT, group): None}})

    async def set_adapt(self, adapt: Mapping[str, Any], group: str = spec.DEFAULT_GROUP) -> None:
        """Turn the controller's adaptivity on for ``group`` (key ``adapt``, or ``adapt.GROUP``); the schema
        refuses bad bounds before anything is written."""
        key = spec.group_key(spec.KEY_ADAPT, group)
        value = json.dumps(dict(adapt), sort_keys=True)
        parse_adapt(value, key)
        await self.patch({"data": {key: value}})

    async def renew_heartbeats(self, interval: float, sleep: Sleep = asyncio.sleep) -> None:
        """Renew the heartbeat annotation every ``interval`` seconds until cancelled or the request is gone;
        the controller reaps the cluster when it stops."""
        while True:
            await sleep(interval)
            try:
                await self.patch({"metadata": {"annotations": {spec.HEARTBEAT_ANNOTATION: spec.format_heartbeat()}}})
            except ApiException as e:
                if e.status == 404:
                    logger.warning("The request %s was deleted; the cluster is gone", self.where)
                    return
                logger.warning("Could not renew the heartbeat of %s: %s", self.where, e.reason)
            except Exception as e:  # a missed renewal is survivable; the next one may succeed
                logger.warning("Could not renew the heartbeat of %s: %r", self.where, e)

    async def delete_and_wait(self, selector: str, timeout: float) -> None:
        """Delete the request, then wait (at most ``timeout`` seconds of event-loop time) for its pods."""
        await self.api.delete_configmap(self.name)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        interval = POLL_START
        while True:
            try:
                remaining = await self.api.list_pods(selector)
            except ApiException as e:
                logger.warning("Cannot check that the pods of %s are gone: %s", self.name, e.reason)
                return
            if not remaining:
                return
            if loop.time() > deadline:
                names = ", ".join(p["metadata"]["name"] for p in remaining)
                logger.warning("Pods of %s still terminating after %gs: %s", self.where, timeout, names)
                return
            await asyncio.sleep(interval)
            interval = min(interval * 2, POLL_MAX)

"""All request drivers of this process, and the glue from watch events to them.

Requests are keyed by ``(namespace, name)`` everywhere. A request in the controller's own namespace
(where its policy and Lease live) is never served: it is ignored with one warning.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from kubedask.spec import CLUSTER_NAME_LABEL, RequestError

from . import metrics
from .api import ClusterApi
from .clock import Clock
from .driver import RequestDriver
from .fence import FencedApi
from .policy import NamespaceUsage, worker_claim
from .settings import Settings

logger = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name), the only way a request is keyed anywhere
Body = dict[str, Any]


def key_of(body: Mapping[str, Any]) -> Key:
    metadata = body["metadata"]
    return metadata["namespace"], metadata["name"]


class Controller:
    def __init__(self, kube: ClusterApi, settings: Settings, is_leader: Callable[[], bool] = lambda: True,
                 clock: Clock | None = None, own_namespace: str | None = None) -> None:
        #: Every write of every driver is fenced by the lease (``fence.py``).
        self.kube: ClusterApi = FencedApi(kube, is_leader)
        self.settings = settings
        self.clock = clock or Clock()
        self.own_namespace = own_namespace
        self._is_leader = is_leader
        self.drivers: dict[Key, RequestDriver] = {}
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._ignored: set[Key] = set()
        self.relisted_at = float("-inf")
        #: The resourceVersion the pod watch has seen in a namespace while it follows it (pod_watch.seen_version).
        self.pod_version: Callable[[str], str | None] = lambda namespace: None

    def is_leader(self) -> bool:
        return self._is_leader()

    # --- watch events ---
    def _relisted(self, event_type: str | None) -> None:
        """Kopf reports what a (re)started watch listed with no event type; what vanished meanwhile it cannot."""
        if event_type is None:
            self.relisted_at = self.clock.monotonic()

    def pods_relisted(self) -> None:
        """The pod watch listed a namespace afresh (at start, or after it lost its place): pods deleted
        meanwhile sent no event, so views built from events are read again (observer.RELIST_GRACE)."""
        self.relisted_at = self.clock.monotonic()

    def on_request_event(self, event_type: str | None, body: Body) -> None:
        self._relisted(event_type)
        key = key_of(body)
        if key[0] == self.own_namespace:
            self._ignore(key, gone=event_type == "DELETED")
            return
        driver = self.drivers.get(key)
        if event_type == "DELETED":
            if driver:
                self._drop(key)
            return
        if driver is not None and driver.uid == body["metadata"].get("uid"):
            driver.update(body)
            return
        if driver:  # deleted and recreated under the same name while we looked away
            self._drop(key)
        self.drivers[key] = driver = RequestDriver(self, body)
        self._tasks[key] = asyncio.get_running_loop().create_task(driver.run(), name=f"kubedask:{key[0]}/{key[1]}")
        metrics.CLUSTERS.set(len(self.drivers))

    def on_pod_event(self, event_type: str | None, body: Body) -> None:
        self._relisted(event_type)
        driver = self._driver_of(body)
        logger.debug("pod event: %s/%s phase=%s (driver %s)", body["metadata"]["namespace"], body["metadata"]["name"],
                     (body.get("status") or {}).get("phase"), "found" if driver else "missing")
        if driver is not None:
            driver.on_pod_event(event_type, body)

    def on_owned_event(self, event_type: str | None, body: Body) -> None:
        """A Service or PodDisruptionBudget event: the cluster it is labelled with looks again at once, so a
        deleted one is back within seconds (not at the next resync)."""
        self._relisted(event_type)
        driver = self._driver_of(body)
        if driver is not None:
            driver.on_owned_event(event_type, body)

    def _driver_of(self, body: Body) -> RequestDriver | None:
        metadata = body["metadata"]
        cluster = (metadata.get("labels") or {}).get(CLUSTER_NAME_LABEL)
        return self.drivers.get((metadata["namespace"], cluster)) if cluster else None

    def wake_all(self) -> None:
        """Leadership began: every driver passes at once, reading what exists rather than trusting its view."""
        self.relisted_at = self.clock.monotonic()
        for driver in self.drivers.values():
            driver.trigger.pull()

    # --- namespace caps (for the drivers) ---
    def usage_before(self, driver: RequestDriver) -> NamespaceUsage:
        """What the older requests of ``driver``'s namespace hold, admitted oldest first (a finished batch job
        holds nothing). Computed here
        rather than from what their passes found, so the order in which passes run (watch order after a
        restart) never lets a younger request take a cap that an older one holds."""
        usage = NamespaceUsage()
        for older in sorted((d for d in self.drivers.values() if d.namespace == driver.namespace
                             and d.age < driver.age and not d.job.ended), key=lambda d: d.age):
            admitted = older.admission(usage)
            if not isinstance(admitted, RequestError):
                usage = NamespaceUsage(usage.clusters + 1, usage.workers + worker_claim(admitted))
        return usage

    def claim_changed(self, driver: RequestDriver) -> None:
        """A cap freed up or taken: the younger requests of the namespace (whose usage includes this one)
        are admitted again."""
        for other in self.drivers.values():
            if other.namespace == driver.namespace and other.age > driver.age:
                other.trigger.pull()

    # --- lifecycle ---
    def _drop(self, key: Key) -> None:
        driver = self.drivers.pop(key)
        self._tasks.pop(key).cancel()
        metrics.CLUSTERS.set(len(self.drivers))
        if driver.claim is not None:
            self.claim_changed(driver)

    def _ignore(self, key: Key, gone: bool) -> None:
        if gone:
            self._ignored.discard(key)
        elif key not in self._ignored:
            self._ignored.add(key)
            logger.warning("ignoring request %s/%s: namespace %s is the controller's own (its policy and Lease "
                           "live there) and is never served; create the request in a served namespace", *key, key[0])

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        self.drivers.clear()
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

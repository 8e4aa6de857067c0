"""The controller's own watch of the pods it made: per served namespace (or once for all), a LIST, then a
WATCH from the LIST's resourceVersion; every event is decoded once and handed to the controller as it is.

Kopf watched the pods before. Its handling of one event (causes, handler selection, invocation, per-object
worker tasks) cost more CPU than the controller's own work on it: at 1,000 workers starting, ~3,300 pod
events took ~11 s of a 30 s profile, on the same 2 cores as the API server and the kube-scheduler that
start the pods. Requests (ConfigMaps), Services and PDBs, a few events per cluster, stay with Kopf.

Level-triggered like the rest: a WATCH that ends (the server's ``timeoutSeconds``) or breaks resumes from
the last resourceVersion it saw (bookmarks keep it fresh). When the server has forgotten that version
(410 Gone) the namespace is listed again, and the controller is told (``relisted``): pods deleted while
nobody watched send no event, so every driver then reads what exists instead of trusting its view. A
failing API server is retried with a backoff up to :data:`MAX_BACKOFF` seconds, logged once per outage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

from .kube_http import Reads

logger = logging.getLogger(__name__)

Body = dict[str, Any]
#: A LIST is read in pages of this many pods (a page is decoded at once; 10,000 pods in one is ~60 MB).
PAGE = 500
#: The server ends a WATCH after this many seconds; a connection silent (no event, no bookmark) for
#: ``WATCH_SECONDS + 30`` is taken for dead.
WATCH_SECONDS = 300
MAX_BACKOFF = 30.0
MIN_BACKOFF = 1.0


class Gone(Exception):
    """The resourceVersion is too old for the server: list again."""


class PodWatch:
    def __init__(self, reads: Reads, namespaces: list[str] | None, selector: str,
                 on_event: Callable[[str | None, Body], None], relisted: Callable[[], None]) -> None:
        """``namespaces``: None watches every namespace (one stream). ``on_event(type, pod)`` gets ``None``
        as the type for each pod a LIST found, else ADDED, MODIFIED or DELETED; ``relisted()`` is called
        after every complete LIST."""
        self.reads, self.selector = reads, selector
        self.namespaces: list[str | None] = list(namespaces) if namespaces else [None]
        self.on_event, self.relisted = on_event, relisted
        #: The backoff of each namespace whose watch is failing.
        self._failing: dict[str | None, float] = {}
        #: The last resourceVersion seen in each namespace the watch follows now (listed, streaming).
        self._seen: dict[str | None, str] = {}

    def seen_version(self, namespace: str) -> str | None:
        """The resourceVersion the watch has seen of ``namespace``'s pods, while it follows them; None while
        it lists, retries or does not serve that namespace."""
        return self._seen.get(None if self.namespaces == [None] else namespace)

    async def run(self) -> None:
        """Until cancelled."""
        await asyncio.gather(*(self._follow(namespace) for namespace in self.namespaces))

    @staticmethod
    def _path(namespace: str | None) -> str:
        return f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"

    async def _follow(self, namespace: str | None) -> None:
        where = namespace or "all namespaces"
        version: str | None = None
        while True:
            try:
                if version is None:
                    version = await self._list(namespace)
                    self._answered(namespace)
                started = asyncio.get_running_loop().time()
                version = await self._watch(namespace, version)
                if asyncio.get_running_loop().time() - started < MIN_BACKOFF:
                    await asyncio.sleep(MIN_BACKOFF)  # a server that ends every stream at once is not asked in a loop
            except Gone:
                self._seen.pop(namespace, None)
                logger.info("pod watch in %s: resourceVersion %s expired; listing again", where, version)
                version = None
            except Exception as exc:  # never given up: without it, pods would be looked at only at the resync
                self._seen.pop(namespace, None)
                backoff = self._failing.get(namespace, 0.0)
                if not backoff:
                    logger.warning("pod watch in %s failed (retrying, at most every %.0f s): %s", where,
                                   MAX_BACKOFF, _describe(exc))
                if isinstance(exc, ApiException) and exc.status == 410:
                    version = None
                self._failing[namespace] = backoff = min(MAX_BACKOFF, max(MIN_BACKOFF, backoff * 2))
                await asyncio.sleep(backoff)

    def _answered(self, namespace: str | None) -> None:
        if self._failing.pop(namespace, None):
            logger.info("pod watch in %s: the API server answers again", namespace or "all namespaces")

    def _deliver(self, kind: str | None, pod: Body) -> None:
        try:
            self.on_event(kind, pod)
        except Exception:  # one odd pod (anyone who may create pods can label one) must not stop the watch
            logger.exception("pod event %s not handled: %s", kind, (pod.get("metadata") or {}).get("name"))

    async def _list(self, namespace: str | None) -> str:
        params = {"labelSelector": self.selector, "limit": str(PAGE)}
        while True:
            page = await self.reads.get(self._path(namespace), params)
            for pod in page.get("items") or []:
                self._deliver(None, pod)
            metadata = page.get("metadata") or {}
            if not metadata.get("continue"):
                self.relisted()
                return str(metadata.get("resourceVersion") or "")
            params = {**params, "continue": str(metadata["continue"])}

    async def _watch(self, namespace: str | None, version: str) -> str:
        """Events from ``version`` until the server ends the stream; the last resourceVersion seen."""
        params = {"watch": "true", "labelSelector": self.selector, "resourceVersion": version,
                  "allowWatchBookmarks": "true", "timeoutSeconds": str(WATCH_SECONDS)}
        self._seen[namespace] = version  # followed again (a failure to connect forgets it)
        async for event in self.reads.stream(self._path(namespace), params, read_timeout=WATCH_SECONDS + 30):
            kind, pod = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if pod.get("code") == 410:
                    raise Gone
                raise ValueError(f"the watch reported {pod.get('code')} {pod.get('reason')}: {pod.get('message')}")
            version = str((pod.get("metadata") or {}).get("resourceVersion") or version)
            self._seen[namespace] = version
            self._answered(namespace)
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                self._deliver(kind, pod)
        return version


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        return f"{exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

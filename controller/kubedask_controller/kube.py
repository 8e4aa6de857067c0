"""The controller's few Kubernetes API calls, as coroutines returning plain dicts.

The official (synchronous) client runs in a dedicated thread pool; responses are read as raw JSON rather
than deserialised into model objects (faster, and the pure modules work on dicts). Pod creates and deletes,
which a scale-up makes by the thousand, and the pod watch's reads go as async HTTP on the event loop
instead (:mod:`kube_http`, same configuration and credentials).
Every call here is listed in the report/RBAC notes: keep it that way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from . import kube_http, metrics

T = TypeVar("T")
USER_AGENT = "kubedask-controller/0.1"
#: The most of a pod's log the controller reads (a batch job's log tail for its status).
MAX_LOG_BYTES = 64 * 1024
Manifest = dict[str, Any]


#: The write guard of the call a pool thread is making (None for reads and lease calls).
_in_flight = threading.local()


class _GuardedSend:
    """Checks the write guard right before a request's bytes go out. A write that passed the fence on the
    event loop may wait for a pool thread; if the process was paused past its lease meanwhile (SIGSTOP),
    the guard stops it here, in the sending thread, instead of letting it reach the API server."""

    def send(self, data: Any) -> None:
        guard: Callable[[], None] | None = getattr(_in_flight, "guard", None)
        if guard is not None:
            guard()
        super().send(data)  # type: ignore[misc]


class _GuardedHTTPConnection(_GuardedSend, urllib3.connection.HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedSend, urllib3.connection.HTTPSConnection):
    pass


class _GuardedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class Kube:
    def __init__(self, api_client: kubernetes.client.ApiClient | None = None, threads: int = 64) -> None:
        if api_client is None:
            configuration = load_configuration()
            # Headroom over the thread count: urllib3 otherwise warns and discards connections that
            # come back to a full pool under bursts of parallel creates.
            configuration.connection_pool_maxsize = threads * 2
            api_client = kubernetes.client.ApiClient(configuration)
        api_client.user_agent = USER_AGENT
        self.api_client = api_client
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.policy = kubernetes.client.PolicyV1Api(api_client)
        self.coordination = kubernetes.client.CoordinationV1Api(api_client)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kube")
        #: Called in the sending thread before every write (not reads, not the Lease): raises to stop it.
        self.write_guard: Callable[[], None] | None = None
        #: Pod creates and deletes, the calls a scale-up makes by the thousand, go as async HTTP.
        self._pods = kube_http.for_configuration(api_client.configuration, USER_AGENT, threads)
        #: The pod watch's LIST pages and streams (no connection limit: one stream per served namespace).
        self.reads = kube_http.Reads(api_client.configuration, USER_AGENT, 0)
        pool_manager = getattr(api_client.rest_client, "pool_manager", None)
        if isinstance(pool_manager, urllib3.PoolManager):
            pool_manager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        if self._pods is not None:
            await self._pods.close()
        await self.reads.close()
        self.close()

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await self._send(None, fn, *args, **kwargs)

    async def _write(self, fn: Callable[..., Any], *args: Any, raw: bool = False, **kwargs: Any) -> Any:
        """A call that changes what the cluster runs: :attr:`write_guard` may stop it until it is sent."""
        return await self._send(self.write_guard, fn, *args, raw=raw, **kwargs)

    async def _send(self, guard: Callable[[], None] | None, fn: Callable[..., Any], *args: Any,
                    raw: bool = False, **kwargs: Any) -> Any:
        """Run one call in the pool; its JSON body decoded, or with ``raw`` its bytes."""
        loop = asyncio.get_running_loop()
        kwargs.setdefault("_preload_content", False)
        # (connect, read) seconds: a call must never hang a request's loop forever.
        kwargs.setdefault("_request_timeout", (10, 60))

        def in_thread() -> Any:
            _in_flight.guard = guard
            try:
                return fn(*args, **kwargs)
            finally:
                _in_flight.guard = None

        response = await loop.run_in_executor(self._pool, in_thread)
        body = response.data
        if raw:
            return bytes(body or b"")
        return json.loads(body) if body else None

    # --- reads ---
    async def list_pods(self, namespace: str, selector: str, not_older_than: str | None = None) -> list[Manifest]:
        """The pods ``selector`` selects: as etcd has them now, or (``not_older_than``, a resourceVersion the
        API server's cache has reached) from its cache, no older than that version."""
        freshness = {"resource_version": not_older_than, "resource_version_match": "NotOlderThan"} \
            if not_older_than else {}
        result = await self._call(self.core.list_namespaced_pod, namespace, label_selector=selector, **freshness)
        return list(result.get("items") or [])

    async def get_service(self, namespace: str, name: str) -> Manifest | None:
        found: Manifest | None = await _none_if_missing(
            self._call(self.core.read_namespaced_service, name, namespace))
        return found

    async def get_pdb(self, namespace: str, name: str) -> Manifest | None:
        found: Manifest | None = await _none_if_missing(
            self._call(self.policy.read_namespaced_pod_disruption_budget, name, namespace))
        return found

    async def get_pod(self, namespace: str, name: str) -> Manifest | None:
        found: Manifest | None = await _none_if_missing(self._call(self.core.read_namespaced_pod, name, namespace))
        return found

    async def read_pod_log(self, namespace: str, name: str, tail_lines: int) -> str:
        """The last ``tail_lines`` lines of a pod's log, at most :data:`MAX_LOG_BYTES` (a user's pod writes
        it: it is read bounded, and only as text)."""
        text: bytes = await self._send(None, self.core.read_namespaced_pod_log, name, namespace, raw=True,
                                       tail_lines=tail_lines, limit_bytes=MAX_LOG_BYTES)
        return text[:MAX_LOG_BYTES].decode("utf-8", errors="replace")

    # --- writes ---
    async def create_pod(self, manifest: Manifest) -> bool:
        """Create a pod; False if it already exists (a previous attempt got through)."""
        # The created pod is not read back: the watch reports it.
        created = await _false_if_exists(
            self._pods.create(manifest, self.write_guard) if self._pods is not None else
            self._write(self.core.create_namespaced_pod, manifest["metadata"]["namespace"], manifest, raw=True))
        if created:
            metrics.PODS_CREATED.inc()
        return created

    async def delete_pod(self, namespace: str, name: str, uid: str | None = None) -> bool:
        """Delete the pod, only if it is still the one with ``uid``; False if that one is gone already
        (404, or 409: a different pod now has the name)."""
        options = _preconditions(uid)
        deleted = await _false_if_missing(
            self._pods.delete(namespace, name, options, self.write_guard) if self._pods is not None else
            self._write(self.core.delete_namespaced_pod, name, namespace, body=options))
        if deleted:
            metrics.PODS_DELETED.inc()
        return deleted

    async def delete_service(self, namespace: str, name: str, uid: str | None = None) -> bool:
        """Delete the Service only if it is still the one with ``uid``; False if that one is gone."""
        return await _false_if_missing(self._write(self.core.delete_namespaced_service, name, namespace,
                                                  body=_preconditions(uid)))

    async def delete_pdb(self, namespace: str, name: str, uid: str | None = None) -> bool:
        """Delete the PodDisruptionBudget only if it is still the one with ``uid``; False if that one is gone."""
        return await _false_if_missing(self._write(self.policy.delete_namespaced_pod_disruption_budget, name,
                                                  namespace, body=_preconditions(uid)))

    async def create_service(self, manifest: Manifest) -> bool:
        return await _false_if_exists(
            self._write(self.core.create_namespaced_service, manifest["metadata"]["namespace"], manifest))

    async def create_pdb(self, manifest: Manifest) -> bool:
        return await _false_if_exists(self._write(
            self.policy.create_namespaced_pod_disruption_budget, manifest["metadata"]["namespace"], manifest))

    async def patch_service(self, namespace: str, name: str, patch: Manifest) -> Manifest | None:
        """A merge patch of the Service; the patched object, or None if it is gone."""
        patched: Manifest | None = await _none_if_missing(self._write(
            self.core.patch_namespaced_service, name, namespace, patch))
        return patched

    async def patch_configmap(self, namespace: str, name: str, patch: Manifest) -> Manifest | None:
        """A merge patch of the request; the patched request (its new resourceVersion), None if it is gone."""
        patched: Manifest | None = await _none_if_missing(self._write(
            self.core.patch_namespaced_config_map, name, namespace, patch))
        return patched

    async def delete_configmap(self, namespace: str, name: str, uid: str | None = None,
                               resource_version: str | None = None) -> bool:
        """Delete the request only if it is still the one with ``uid`` and, given ``resource_version``,
        unchanged since (a client that renewed its heartbeat meanwhile keeps its cluster). False if it
        is gone or changed (404, 409)."""
        return await _false_if_missing(self._write(self.core.delete_namespaced_config_map, name, namespace,
                                                  body=_preconditions(uid, resource_version)))

    async def post_event(self, request: Manifest, reason: str, message: str, type_: str = "Normal") -> None:
        """A Kubernetes Event on the request ConfigMap (shown by ``kubectl describe cm NAME``)."""
        metadata = request["metadata"]
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{metadata['name']}.{uuid.uuid4().hex[:12]}",
                         "namespace": metadata["namespace"]},
            "involvedObject": {"apiVersion": "v1", "kind": "ConfigMap", "name": metadata["name"],
                               "namespace": metadata["namespace"], "uid": metadata.get("uid")},
            "reason": reason, "message": message[:1024], "type": type_,
            "source": {"component": "kubedask-controller"},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        # Events are best effort: never fail a reconcile over one.
        with contextlib.suppress(ApiException):
            await self._write(self.core.create_namespaced_event, metadata["namespace"], event)

    # --- leases (leader election) ---
    async def get_lease(self, namespace: str, name: str) -> Manifest | None:
        found: Manifest | None = await _none_if_missing(
            self._call(self.coordination.read_namespaced_lease, name, namespace))
        return found

    async def create_lease(self, namespace: str, body: Manifest) -> Manifest:
        result: Manifest = await self._call(self.coordination.create_namespaced_lease, namespace, body)
        return result

    async def replace_lease(self, namespace: str, name: str, body: Manifest) -> Manifest:
        # body carries metadata.resourceVersion: a concurrent writer makes this fail with 409.
        result: Manifest = await self._call(self.coordination.replace_namespaced_lease, name, namespace, body)
        return result


def load_configuration() -> kubernetes.client.Configuration:
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration)
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return configuration


def _preconditions(uid: str | None, resource_version: str | None = None) -> Manifest:
    preconditions = {k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v}
    return {"apiVersion": "v1", "kind": "DeleteOptions", **({"preconditions": preconditions} if preconditions else {})}


async def _none_if_missing(coro: Any) -> Any:
    try:
        return await coro
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


async def _false_if_missing(coro: Any) -> bool:
    """True once done; False if the object is gone (404) or a delete precondition failed (409: the object
    with that uid is gone, or it changed)."""
    try:
        await coro
        return True
    except ApiException as exc:
        if exc.status in (404, 409):
            return False
        raise


async def _false_if_exists(coro: Any) -> bool:
    try:
        await coro
        return True
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise

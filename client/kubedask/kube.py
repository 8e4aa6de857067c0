# mypy: disallow-untyped-calls=False
# (distributed and the kubernetes config loaders have no type hints; calling them is the point here.)
"""The few Kubernetes API calls the client makes, as coroutines returning plain manifest dicts.

The kubernetes client is blocking, so every call runs in a worker thread; the event loop (which also
carries Dask comms and the port-forward) never waits on the network. Only what a ConfigMap-only user may
do is used: ConfigMaps (create/get/patch/delete), and get/list on pods, pods/log and events.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException

T = TypeVar("T")
Manifest = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"


class Api(Protocol):
    """The client's view of the Kubernetes API for one namespace: what :class:`KubeApi` does, and what a
    test's fake must do. Manifests are plain dicts as the API returns them."""

    namespace: str

    def close(self) -> None: ...
    async def create_configmap(self, manifest: Mapping[str, Any]) -> Manifest: ...
    async def read_configmap(self, name: str) -> Manifest | None: ...
    async def patch_configmap(self, name: str, patch: Mapping[str, Any]) -> Manifest: ...
    def delete_configmap_blocking(self, name: str) -> bool: ...
    async def delete_configmap(self, name: str) -> bool: ...
    async def apiserver_endpoints(self) -> list[str]: ...
    async def list_pods(self, label_selector: str) -> list[Manifest]: ...
    async def list_pod_objects(self, label_selector: str) -> list[client.V1Pod]: ...
    async def read_pod(self, name: str) -> Manifest | None: ...
    async def pod_log(self, name: str, container: str | None = None, tail_lines: int | None = None) -> str: ...
    async def events_for(self, kind: str, name: str) -> list[Manifest]: ...


class KubeApi:
    """Async wrapper over ``CoreV1Api`` for one namespace (the real :class:`Api`)."""

    def __init__(self, configuration: client.Configuration, namespace: str) -> None:
        self.configuration = configuration
        self.namespace = namespace
        self.api_client = client.ApiClient(configuration)
        self.core = client.CoreV1Api(self.api_client)

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))

    async def _raw(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Manifest:
        """Call without the generated models: they validate strictly, and a diagnostic read must not fail
        because a server omits or adds a field."""
        response = await self._call(fn, *args, _preload_content=False, **kwargs)
        result: Manifest = json.loads(response.data)
        return result

    def _dict(self, obj: Any) -> Manifest:
        result: Manifest = self.api_client.sanitize_for_serialization(obj)
        return result

    def close(self) -> None:
        self.api_client.close()

    # --- the request ConfigMap ------------------------------------------------------------------------

    async def create_configmap(self, manifest: Mapping[str, Any]) -> Manifest:
        body = client.V1ConfigMap.from_dict(dict(manifest))
        return self._dict(await self._call(self.core.create_namespaced_config_map, self.namespace, body))

    async def read_configmap(self, name: str) -> Manifest | None:
        try:
            return await self._raw(self.core.read_namespaced_config_map, name, self.namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    async def patch_configmap(self, name: str, patch: Mapping[str, Any]) -> Manifest:
        """JSON merge patch: a ``None`` value deletes that key (e.g. ``{"data": {"adapt": None}}``)."""
        result = await self._call(
            self.core.patch_namespaced_config_map,
            name,
            self.namespace,
            dict(patch),
            _content_type=MERGE_PATCH,
        )
        return self._dict(result)

    def delete_configmap_blocking(self, name: str) -> bool:
        """Delete the request; False if it was already gone. Blocking, so it works at interpreter exit."""
        try:
            self.core.delete_namespaced_config_map(name, self.namespace)
            return True
        except ApiException as e:
            if e.status == 404:
                return False
            raise

    async def delete_configmap(self, name: str) -> bool:
        return await self._call(self.delete_configmap_blocking, name)

    async def apiserver_endpoints(self) -> list[str]:
        """The addresses the API server advertises to pods (``default/kubernetes``); [] if not readable."""
        try:
            endpoints = await self._raw(self.core.read_namespaced_endpoints, "kubernetes", "default")
        except Exception:  # most users may not read endpoints in "default"; this is only a hint
            return []
        return [
            str(address["ip"])
            for subset in endpoints.get("subsets") or []
            for address in subset.get("addresses") or []
            if address.get("ip")
        ]

    # --- pods, logs, events ---------------------------------------------------------------------------

    async def list_pods(self, label_selector: str) -> list[Manifest]:
        pods = await self._raw(self.core.list_namespaced_pod, self.namespace, label_selector=label_selector)
        return list(pods.get("items") or [])

    async def list_pod_objects(self, label_selector: str) -> list[client.V1Pod]:
        pods = await self._call(self.core.list_namespaced_pod, self.namespace, label_selector=label_selector)
        return list(pods.items)

    async def read_pod(self, name: str) -> Manifest | None:
        try:
            return await self._raw(self.core.read_namespaced_pod, name, self.namespace)
        except ApiException as e:
            # 403: a user without "get pods" only loses the early diagnosis, not the cluster.
            if e.status in (403, 404):
                return None
            raise

    async def pod_log(self, name: str, container: str | None = None, tail_lines: int | None = None) -> str:
        """A pod's log; empty while its container has not started yet."""
        try:
            text = await self._call(
                self.core.read_namespaced_pod_log,
                name,
                self.namespace,
                container=container,
                tail_lines=tail_lines,
            )
        except ApiException as e:
            # 400 "container ... is waiting to start": no log yet is an empty log, not an error.
            if e.status in (400, 404):
                return ""
            raise
        return text if isinstance(text, str) else str(text)

    async def events_for(self, kind: str, name: str) -> list[Manifest]:
        """Events about one object; empty if the user may not list events (they are only diagnostics)."""
        try:
            events = await self._raw(
                self.core.list_namespaced_event,
                self.namespace,
                field_selector=f"involvedObject.kind={kind},involvedObject.name={name}",
            )
        except ApiException as e:
            if e.status in (401, 403):
                return []
            raise
        return list(events.get("items") or [])

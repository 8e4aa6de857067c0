"""Fakes of the Kubernetes API: over real HTTP (:class:`FakeKube`) and in memory (:class:`MemoryApi`).

Enough of the API for KubeCluster's calls, served over real HTTP on 127.0.0.1 from a background thread,
so the blocking kubernetes client talks to it exactly as it would to an API server.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from kubedask import spec
from kubedask.kube import Api
from kubernetes import client
from kubernetes.client.exceptions import ApiException

Manifest = dict[str, Any]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def not_found(what: str) -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": "NotFound",
        "message": f"{what} not found",
        "code": 404,
    }
    return web.json_response(body, status=404)


class FakeKube:
    """State of the fake API; ``on_create(manifest)`` lets a test play the controller."""

    def __init__(self) -> None:
        self.configmaps: dict[tuple[str, str], Manifest] = {}
        self.pods: dict[tuple[str, str], Manifest] = {}
        self.logs: dict[str, str] = {}
        self.events: list[Manifest] = []
        self.patches: list[Manifest] = []
        self.on_create: Callable[[FakeKube, Manifest], None] = lambda kube, cm: None
        #: Called with (namespace, name) before every ConfigMap read, so a test can change what is read.
        self.on_read: Callable[[FakeKube, tuple[str, str]], None] = lambda kube, key: None
        self.lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- helpers for tests ----------------------------------------------------------------------------

    def set_status(self, namespace: str, name: str, **status: Any) -> None:
        with self.lock:
            cm = self.configmaps.get((namespace, name))
            if cm is None:  # deleted meanwhile (a read after close)
                return
            cm["metadata"].setdefault("annotations", {})[spec.STATUS_ANNOTATION] = json.dumps(status)

    def add_pod(
        self, namespace: str, name: str, cluster: str, component: str, status: Manifest | None = None
    ) -> None:
        with self.lock:
            self.pods[(namespace, name)] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": {spec.CLUSTER_NAME_LABEL: cluster, spec.COMPONENT_LABEL: component},
                },
                "spec": {"containers": [{"name": "c", "image": "i"}]},
                "status": status or {"phase": "Running"},
            }

    # --- HTTP handlers --------------------------------------------------------------------------------

    async def create_cm(self, request: web.Request) -> web.Response:
        ns = request.match_info["ns"]
        body = await request.json()
        name = body["metadata"]["name"]
        with self.lock:
            if (ns, name) in self.configmaps:
                return web.json_response(
                    {"kind": "Status", "reason": "AlreadyExists", "code": 409}, status=409
                )
            body["metadata"]["namespace"] = ns
            body["metadata"]["uid"] = f"uid-{name}"
            self.configmaps[(ns, name)] = body
        self.on_create(self, body)
        return web.json_response(body, status=201)

    async def get_cm(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        self.on_read(self, key)
        with self.lock:
            cm = copy.deepcopy(self.configmaps.get(key))
        return web.json_response(cm) if cm else not_found("configmap")

    async def patch_cm(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        assert request.content_type == "application/merge-patch+json", request.content_type
        patch = await request.json()
        with self.lock:
            if key not in self.configmaps:
                return not_found("configmap")
            self.patches.append(patch)
            self.configmaps[key] = merge_patch(self.configmaps[key], patch)
            return web.json_response(self.configmaps[key])

    async def delete_cm(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        with self.lock:
            cm = self.configmaps.pop(key, None)
            if cm is None:
                return not_found("configmap")
            # Garbage collection of the owned pods, instantly.
            cluster = key[1]
            for pod_key in [
                k
                for k, p in self.pods.items()
                if p["metadata"]["labels"].get(spec.CLUSTER_NAME_LABEL) == cluster
            ]:
                del self.pods[pod_key]
        return web.json_response({"kind": "Status", "status": "Success"})

    async def list_pods(self, request: web.Request) -> web.Response:
        ns = request.match_info["ns"]
        wanted = dict(
            part.split("=", 1) for part in request.query.get("labelSelector", "").split(",") if part
        )
        with self.lock:
            items = [
                copy.deepcopy(p)
                for (pns, _), p in self.pods.items()
                if pns == ns and all(p["metadata"]["labels"].get(k) == v for k, v in wanted.items())
            ]
        return web.json_response({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})

    async def get_pod(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        with self.lock:
            pod = copy.deepcopy(self.pods.get(key))
        return web.json_response(pod) if pod else not_found("pod")

    async def pod_log(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.logs:
            return not_found("pod")
        return web.Response(text=self.logs[name])

    async def list_events(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": self.events}
        )

    # --- serving --------------------------------------------------------------------------------------

    def start(self) -> None:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            base = "/api/v1/namespaces/{ns}"
            app.router.add_post(base + "/configmaps", self.create_cm)
            app.router.add_get(base + "/configmaps/{name}", self.get_cm)
            app.router.add_patch(base + "/configmaps/{name}", self.patch_cm)
            app.router.add_delete(base + "/configmaps/{name}", self.delete_cm)
            app.router.add_get(base + "/pods", self.list_pods)
            app.router.add_get(base + "/pods/{name}", self.get_pod)
            app.router.add_get(base + "/pods/{name}/log", self.pod_log)
            app.router.add_get(base + "/events", self.list_events)
            self._runner = web.AppRunner(app)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = self._runner.addresses[0][1]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class MemoryApi:
    """An in-memory :class:`kubedask.kube.Api` for one namespace: no HTTP, so tests can run it on fake time.

    ``failures[method]`` holds exceptions the next calls of that method raise, one per call.
    """

    def __init__(self, namespace: str = "team-a") -> None:
        self.namespace = namespace
        self.configmaps: dict[str, Manifest] = {}
        self.pods: dict[str, Manifest] = {}
        self.logs: dict[str, str] = {}
        self.events: list[Manifest] = []
        self.patches: list[Manifest] = []
        self.failures: dict[str, list[Exception]] = {}
        self.closed = False

    def _maybe_fail(self, method: str) -> None:
        pending = self.failures.get(method)
        if pending:
            raise pending.pop(0)

    def set_status(self, name: str, **status: Any) -> None:
        self.configmaps[name]["metadata"].setdefault("annotations", {})[spec.STATUS_ANNOTATION] = json.dumps(status)

    def close(self) -> None:
        self.closed = True

    async def create_configmap(self, manifest: Mapping[str, Any]) -> Manifest:
        self._maybe_fail("create_configmap")
        created = copy.deepcopy(dict(manifest))
        self.configmaps[created["metadata"]["name"]] = created
        return copy.deepcopy(created)

    async def read_configmap(self, name: str) -> Manifest | None:
        self._maybe_fail("read_configmap")
        return copy.deepcopy(self.configmaps.get(name))

    async def patch_configmap(self, name: str, patch: Mapping[str, Any]) -> Manifest:
        self._maybe_fail("patch_configmap")
        if name not in self.configmaps:
            raise ApiException(status=404, reason="Not Found")
        self.patches.append(copy.deepcopy(dict(patch)))
        self.configmaps[name] = merge_patch(self.configmaps[name], dict(patch))
        return copy.deepcopy(self.configmaps[name])

    def delete_configmap_blocking(self, name: str) -> bool:
        self._maybe_fail("delete_configmap")
        return self.configmaps.pop(name, None) is not None

    async def delete_configmap(self, name: str) -> bool:
        return self.delete_configmap_blocking(name)

    async def apiserver_endpoints(self) -> list[str]:
        return []

    def _matching(self, label_selector: str) -> list[Manifest]:
        wanted = dict(part.split("=", 1) for part in label_selector.split(",") if part)
        return [copy.deepcopy(p) for _, p in sorted(self.pods.items())
                if all(p["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())]

    async def list_pods(self, label_selector: str) -> list[Manifest]:
        self._maybe_fail("list_pods")
        return self._matching(label_selector)

    async def list_pod_objects(self, label_selector: str) -> list[client.V1Pod]:
        return [client.V1Pod(metadata=client.V1ObjectMeta(name=p["metadata"]["name"]))
                for p in await self.list_pods(label_selector)]

    async def read_pod(self, name: str) -> Manifest | None:
        return copy.deepcopy(self.pods.get(name))

    async def pod_log(self, name: str, container: str | None = None, tail_lines: int | None = None) -> str:
        text = self.logs.get(name, "")
        return "\n".join(text.splitlines()[-tail_lines:]) if tail_lines else text

    async def events_for(self, kind: str, name: str) -> list[Manifest]:
        return [e for e in self.events if e.get("involvedObject") == {"kind": kind, "name": name}]


# The fake is a full Api: mypy checks this assignment against the Protocol.
_CHECK_API: type[Api] = MemoryApi

"""Helpers for the controller's unit tests: request data and an in-memory stand-in for the API."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from kubedask.spec import build_request_data

WORKER_TEMPLATE = {
    "kind": "Pod",
    "metadata": {"labels": {"team": "a"}},
    "spec": {"containers": [{
        "name": "dask-worker", "image": "ghcr.io/dask/dask:latest",
        "args": ["dask-worker", "--nthreads", "1", "--memory-limit", "1G"],
    }]},
}


def request_data(**overrides: Any) -> dict[str, str]:
    kwargs: dict[str, Any] = {"worker_template": WORKER_TEMPLATE, "workers": 3}
    kwargs.update(overrides)
    return build_request_data(**kwargs)


class FakeKube:
    """Just enough of ``kube.Kube`` for the request loop: pods, services, PDBs, the ConfigMap, events.

    Counts writes, so tests can assert "no API writes" the way the integration test does with /metrics.
    """

    def __init__(self) -> None:
        self.pods: dict[str, dict[str, Any]] = {}
        self.services: dict[str, dict[str, Any]] = {}
        self.pdbs: dict[str, dict[str, Any]] = {}
        self.configmap_patches: list[dict[str, Any]] = []
        self.configmap_deleted = False
        self.events: list[tuple[str, str, str]] = []
        self.writes = 0
        self._rv = itertools.count(1)
        #: When set, pod creates fail like an API server refusing them (admission, quota, bad value).
        self.refuse_pods: Exception | None = None

    async def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        wanted = dict(part.split("=", 1) for part in selector.split(","))
        return [copy.deepcopy(p) for p in self.pods.values()
                if all(p["metadata"]["labels"].get(k) == v for k, v in wanted.items())]

    async def get_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.services.get(name)

    async def get_pdb(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.pdbs.get(name)

    async def create_pod(self, manifest: dict[str, Any]) -> bool:
        self.writes += 1
        if self.refuse_pods is not None:
            raise self.refuse_pods
        name = manifest["metadata"]["name"]
        if name in self.pods:
            return False
        pod = copy.deepcopy(manifest)
        pod["metadata"]["creationTimestamp"] = f"2026-01-01T00:00:{next(self._rv):02d}Z"
        pod["status"] = {"phase": "Pending"}
        self.pods[name] = pod
        return True

    async def delete_pod(self, namespace: str, name: str) -> bool:
        self.writes += 1
        return self.pods.pop(name, None) is not None

    async def create_service(self, manifest: dict[str, Any]) -> bool:
        self.writes += 1
        self.services[manifest["metadata"]["name"]] = manifest
        return True

    async def create_pdb(self, manifest: dict[str, Any]) -> bool:
        self.writes += 1
        self.pdbs[manifest["metadata"]["name"]] = manifest
        return True

    async def patch_configmap(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.writes += 1
        self.configmap_patches.append(patch)

    async def delete_configmap(self, namespace: str, name: str) -> None:
        self.writes += 1
        self.configmap_deleted = True

    async def post_event(self, request: dict[str, Any], reason: str, message: str,
                         type_: str = "Normal") -> None:
        self.writes += 1
        self.events.append((reason, message, type_))

    # test helpers
    def run_all(self, ip_prefix: str = "10.0.0.") -> None:
        """Every pod becomes Running and Ready (what the kubelet / KWOK would do)."""
        for i, pod in enumerate(self.pods.values()):
            pod["status"] = {"phase": "Running", "podIP": f"{ip_prefix}{i + 1}",
                             "conditions": [{"type": "Ready", "status": "True"}]}

    def workers(self) -> list[str]:
        return sorted(n for n, p in self.pods.items()
                      if p["metadata"]["labels"]["dask.org/component"] == "worker")



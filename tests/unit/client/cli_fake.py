"""An in-memory :class:`kubedask.cli.context.ClusterKube` for the plugin's and discovery's unit tests:
one :class:`fake_kube.MemoryApi` per namespace, plus request listing in one or all namespaces."""

from __future__ import annotations

import copy
import io
import json
from typing import Any

from fake_kube import MemoryApi
from kubedask import spec
from kubedask.cli.context import ClusterKube
from kubedask.cli.main import main
from kubedask.kube import Manifest
from kubernetes.client import Configuration

CREATED = "2026-01-01T00:00:00Z"


class MemoryKube:
    """``failures[None]`` / ``failures[namespace]``: exceptions the next listings raise, one per call."""

    def __init__(self) -> None:
        self.configuration: Configuration | None = None
        self.apis: dict[str, MemoryApi] = {}
        self.failures: dict[str | None, list[Exception]] = {}
        self.listed: list[str | None] = []
        self.closed = False

    def api(self, namespace: str) -> MemoryApi:
        return self.apis.setdefault(namespace, MemoryApi(namespace))

    async def list_requests(self, namespace: str | None) -> list[Manifest]:
        self.listed.append(namespace)
        pending = self.failures.get(namespace)
        if pending:
            raise pending.pop(0)
        found = []
        for ns, api in sorted(self.apis.items()):
            if namespace is not None and ns != namespace:
                continue
            for cm in api.configmaps.values():
                if (cm["metadata"].get("labels") or {}).get(spec.REQUEST_LABEL) == spec.REQUEST_LABEL_VALUE:
                    found.append(copy.deepcopy(cm))
        return found

    def close(self) -> None:
        self.closed = True

    # --- test helpers ---------------------------------------------------------------------------------

    def add_request(self, namespace: str, name: str, workers: int = 1, status: dict[str, Any] | None = None,
                    data: dict[str, str] | None = None) -> Manifest:
        manifest = spec.build_request_configmap(name, namespace, spec.build_request_data(
            workers=workers, worker_template={"containers": [{"name": "dask-worker", "image": "i"}]}))
        manifest["data"].update(data or {})
        manifest["metadata"]["creationTimestamp"] = CREATED
        if status is not None:
            manifest["metadata"]["annotations"] = {spec.STATUS_ANNOTATION: json.dumps(status)}
        self.api(namespace).configmaps[name] = manifest
        return manifest

    def add_pod(self, namespace: str, name: str, cluster: str, component: str, **status: Any) -> None:
        self.api(namespace).pods[name] = {
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": CREATED,
                         "labels": {spec.CLUSTER_NAME_LABEL: cluster, spec.COMPONENT_LABEL: component}},
            "spec": {"containers": [{"name": "c", "image": "i"}], "nodeName": "node-1"},
            "status": {"phase": "Running", **status},
        }


_CHECK: type[ClusterKube] = MemoryKube


def running(requested: int, ready: int, name: str = "analysis", namespace: str = "team-a") -> dict[str, Any]:
    """A status as the controller writes it for a running cluster."""
    host = f"{name}-scheduler.{namespace}.svc.cluster.local"
    return {"phase": "Running", "message": "", "schedulerAddress": f"tcp://{host}:8786",
            "dashboardAddress": f"http://{host}:8787",
            "workers": {"requested": requested, "created": requested, "running": ready, "ready": ready},
            "conditions": [{"type": "SchedulerReady", "status": "True", "reason": "PodReady",
                            "message": "the scheduler answers", "lastTransitionTime": CREATED}]}


def run(kube: MemoryKube, *argv: str, namespace: str = "team-a") -> tuple[int, str, str]:
    """``kubectl dask ARGV`` against ``kube``: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()

    def factory(args: Any) -> tuple[ClusterKube, str]:
        return kube, args.namespace or namespace

    code = main(list(argv), out=out, err=err, kube_factory=factory)
    return code, out.getvalue(), err.getvalue()

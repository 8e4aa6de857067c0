"""Helpers for the controller's unit tests: request data and in-memory stand-ins for the APIs and the clock.

The fakes are typed as the Protocols the controller takes (``kubedask_controller.api``), so mypy checks
that they fit. Time is the event loop's: tests marked ``looptime`` run it fast-forwarded.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Sequence
from typing import Any

from kubedask.spec import build_request_data
from kubedask_controller.api import ClusterApi, LeaseApi, SchedulerApi
from kubedask_controller.clock import Clock
from kubedask_controller.scheduler import RetiredWorker, SchedulerUnavailable, SchedulerWorker
from kubernetes.client.exceptions import ApiException

#: Its label is in the users' own domain, the only one the default policy allows (allowedPodLabels).
WORKER_TEMPLATE = {
    "kind": "Pod",
    "metadata": {"labels": {"user.kubedask.io/project": "a"}},
    "spec": {"containers": [{
        "name": "dask-worker", "image": "ghcr.io/dask/dask:latest",
        "args": ["dask-worker", "--nthreads", "1", "--memory-limit", "1G"],
    }]},
}
#: 2026-01-01T00:00:00Z: the wall clock of the tests at loop time 0.
EPOCH = 1767225600.0


def request_data(**overrides: Any) -> dict[str, str]:
    kwargs: dict[str, Any] = {"worker_template": WORKER_TEMPLATE, "workers": 3}
    kwargs.update(overrides)
    return build_request_data(**kwargs)


def configmap(data: dict[str, str], name: str = "analysis", uid: str = "uid-1",
              annotations: dict[str, str] | None = None, created: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid, "creationTimestamp": created,
                         "labels": {"kubedask.io/request": "cluster"}, "annotations": annotations or {}},
            "data": data}


class LoopClock(Clock):
    """Wall time that moves with the event loop's (fake) time, from :data:`EPOCH`."""

    def wall(self) -> float:
        return EPOCH + self.monotonic()


class FakeKube:
    """Just enough of ``kube.Kube`` for the request drivers: pods, services, PDBs, the ConfigMap, events.

    Counts writes, so tests can assert "no API writes" the way the integration test does with /metrics,
    and LISTs, which tell how many passes ran.
    """

    def __init__(self) -> None:
        self.pods: dict[str, dict[str, Any]] = {}
        self.services: dict[str, dict[str, Any]] = {}
        self.pdbs: dict[str, dict[str, Any]] = {}
        self.configmap_patches: list[dict[str, Any]] = []
        self.configmaps_deleted: list[str] = []
        self.events: list[tuple[str, str, str]] = []
        self.writes = 0
        self.lists = 0
        self._rv = itertools.count(1)
        self._uid = itertools.count(1)
        #: When set, pod creates fail like an API server refusing them (admission, quota, bad value).
        self.refuse_pods: Exception | None = None
        #: When set, pod deletes fail like an API server that cannot be reached.
        self.failing_deletes: Exception | None = None
        #: The request as stored (``patch_configmap`` merges into it and bumps its resourceVersion), if set.
        self.configmap: dict[str, Any] | None = None
        self.service_patches: list[dict[str, Any]] = []
        #: Pod logs by pod name, and an error every log read raises when set (e.g. 403: no pods/log right).
        self.logs: dict[str, str] = {}
        self.log_error: Exception | None = None

    async def list_pods(self, namespace: str, selector: str, not_older_than: str | None = None
                        ) -> list[dict[str, Any]]:
        self.lists += 1
        wanted = dict(part.split("=", 1) for part in selector.split(","))
        return [copy.deepcopy(p) for p in self.pods.values()
                if all(p["metadata"]["labels"].get(k) == v for k, v in wanted.items())]

    async def get_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.services.get(name)

    async def get_pdb(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.pdbs.get(name)

    async def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.pods.get(name))

    async def read_pod_log(self, namespace: str, name: str, tail_lines: int) -> str:
        if self.log_error is not None:
            raise self.log_error
        return "\n".join(self.logs.get(name, "").splitlines()[-tail_lines:])

    async def delete_service(self, namespace: str, name: str, uid: str | None = None) -> bool:
        self.writes += 1
        return self.services.pop(name, None) is not None

    async def delete_pdb(self, namespace: str, name: str, uid: str | None = None) -> bool:
        self.writes += 1
        return self.pdbs.pop(name, None) is not None

    async def create_pod(self, manifest: dict[str, Any]) -> bool:
        self.writes += 1
        if self.refuse_pods is not None:
            raise self.refuse_pods
        name = manifest["metadata"]["name"]
        if name in self.pods:
            return False
        pod = copy.deepcopy(manifest)
        pod["metadata"]["creationTimestamp"] = f"2026-01-01T00:00:{next(self._rv):02d}Z"
        pod["metadata"]["uid"] = f"pod-uid-{next(self._uid)}"
        pod["status"] = {"phase": "Pending"}
        self.pods[name] = pod
        return True

    async def delete_pod(self, namespace: str, name: str, uid: str | None = None) -> bool:
        self.writes += 1
        if self.failing_deletes is not None:
            raise self.failing_deletes
        pod = self.pods.get(name)
        if pod is None or (uid is not None and pod["metadata"].get("uid") != uid):
            return False  # 404, or 409: the precondition names a pod that is gone
        del self.pods[name]
        return True

    async def create_service(self, manifest: dict[str, Any]) -> bool:
        self.writes += 1
        self.services[manifest["metadata"]["name"]] = manifest
        return True

    async def patch_service(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        self.writes += 1
        self.service_patches.append(patch)
        service = self.services.get(name)
        if service is None:
            return None
        service["spec"].update(patch.get("spec") or {})
        for part, changes in (patch.get("metadata") or {}).items():  # a merge patch: null deletes
            values = service["metadata"].setdefault(part, {})
            for key, value in changes.items():
                if value is None:
                    values.pop(key, None)
                else:
                    values[key] = value
        return copy.deepcopy(service)

    async def create_pdb(self, manifest: dict[str, Any]) -> bool:
        self.writes += 1
        self.pdbs[manifest["metadata"]["name"]] = manifest
        return True

    async def patch_configmap(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        self.writes += 1
        self.configmap_patches.append(patch)
        if self.configmap is None:
            return None
        for part in ("annotations", "labels"):
            self.configmap["metadata"].setdefault(part, {}).update(patch["metadata"].get(part) or {})
        self.configmap["metadata"]["resourceVersion"] = str(next(self._rv))
        return copy.deepcopy(self.configmap)

    async def delete_configmap(self, namespace: str, name: str, uid: str | None = None,
                               resource_version: str | None = None) -> bool:
        self.writes += 1
        stored = self.configmap
        if stored is not None and (uid not in (None, stored["metadata"]["uid"])
                                   or resource_version not in (None, stored["metadata"].get("resourceVersion"))):
            return False  # 409: a precondition failed
        self.configmaps_deleted.append(name)
        return True

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

    def reasons(self) -> list[str]:
        return [reason for reason, _, _ in self.events]


class FakeScheduler:
    """A Dask scheduler's HTTP API: scripted answers, or ``SchedulerUnavailable`` while ``down`` is set."""

    def __init__(self, retire: list[RetiredWorker] | None = None, target: int = 0,
                 idle_since: float | None = None) -> None:
        self.retire = retire or []
        self.target = target
        self.idle = idle_since
        self.down: str | None = None
        self.asked: list[str] = []
        #: The workers /get_workers lists; retire_addresses retires those of them it is given.
        self.known: list[SchedulerWorker] = []

    def _answer(self, what: str) -> None:
        self.asked.append(what)
        if self.down is not None:
            raise SchedulerUnavailable(self.down)

    async def retire_workers(self, n: int) -> list[RetiredWorker]:
        self._answer(f"retire {n}")
        return self.retire

    async def workers(self) -> list[SchedulerWorker]:
        self._answer("workers")
        return list(self.known)

    async def retire_addresses(self, addresses: Sequence[str]) -> list[RetiredWorker]:
        self._answer(f"retire {' '.join(addresses)}")
        return [RetiredWorker(name=w.name, host=w.host) for w in self.known if w.address in addresses]

    def connect(self, kube: FakeKube) -> None:
        """Every running worker pod of ``kube`` is connected, named after its pod, at ``tcp://POD-IP:40000``."""
        self.known = [SchedulerWorker(name=name, address=f"tcp://{kube.pods[name]['status']['podIP']}:40000")
                      for name in kube.workers() if kube.pods[name]["status"].get("podIP")]

    async def adaptive_target(self) -> int:
        self._answer("adaptive_target")
        return self.target

    async def idle_since(self) -> float | None:
        self._answer("idle_since")
        return self.idle


class FakeLeases:
    """Leases with resourceVersion conflicts, like the API server's optimistic concurrency."""

    def __init__(self) -> None:
        self.leases: dict[str, dict[str, Any]] = {}
        self.version = 0
        #: When set, every call fails like an unreachable API server.
        self.failing: Exception | None = None
        #: Every call, in order: ("get" | "create" | "replace", holder identity written or None, loop time).
        self.calls: list[tuple[str, str | None, float]] = []

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._called("get", None)
        if self.failing:
            raise self.failing
        lease = self.leases.get(name)
        return copy.deepcopy(lease) if lease else None

    async def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self._called("create", body["spec"].get("holderIdentity"))
        if self.failing:
            raise self.failing
        name = body["metadata"]["name"]
        if name in self.leases:
            raise ApiException(status=409)
        return self._store(name, body)

    async def replace_lease(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self._called("replace", body["spec"].get("holderIdentity"))
        if self.failing:
            raise self.failing
        if body["metadata"].get("resourceVersion") != self.leases[name]["metadata"]["resourceVersion"]:
            raise ApiException(status=409)
        return self._store(name, body)

    def _called(self, verb: str, holder: str | None) -> None:
        self.calls.append((verb, holder, asyncio.get_running_loop().time()))

    def writes(self, since: float = float("-inf"), until: float = float("inf")) -> list[float]:
        """When a create or replace was sent (attempted, whether it went through or not), in ``[since, until)``."""
        return [t for verb, _, t in self.calls if verb != "get" and since <= t < until]

    def _store(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.leases[name] = stored
        return copy.deepcopy(stored)


# The fakes fit the Protocols the controller takes (checked by mypy, not at run time).
_KUBE: type[ClusterApi] = FakeKube
_LEASES: type[LeaseApi] = FakeLeases
_SCHEDULER: type[SchedulerApi] = FakeScheduler

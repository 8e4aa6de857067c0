"""What reconciliation knows about a request's pods: :class:`PodInfo` (one pod) and :class:`Observed` (all
of them, plus in-flight work). Pure data, built from listed manifests by :mod:`observe`."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

from kubedask.spec import DEFAULT_GROUP, WORKER_GROUP_LABEL

from . import builders

DONE_PHASES = ("Succeeded", "Failed")


@dataclasses.dataclass(frozen=True)
class PodInfo:
    """The few facts about a pod that reconciliation needs."""

    name: str
    phase: str = "Pending"
    ready: bool = False
    deleting: bool = False
    ip: str | None = None
    created: str = ""
    node: str | None = None
    uid: str | None = None
    #: Retired by the scheduler (its data moved away): deleted, and never replaced.
    retired: bool = False
    #: The worker group (label ``dask.org/workergroup-name``; a pod without it is in the default group).
    group: str = DEFAULT_GROUP
    #: The template hash the pod was made from (None: unknown, made by an older controller: left alone).
    template: str | None = None

    @property
    def done(self) -> bool:
        return self.phase in DONE_PHASES

    @classmethod
    def from_manifest(cls, pod: Mapping[str, Any]) -> PodInfo:
        metadata = pod.get("metadata") or {}
        status = pod.get("status") or {}
        conditions = status.get("conditions") or []
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        return cls(
            name=metadata["name"],
            phase=status.get("phase") or "Pending",
            ready=ready,
            deleting=bool(metadata.get("deletionTimestamp")),
            ip=status.get("podIP"),
            created=str(metadata.get("creationTimestamp") or ""),
            node=(pod.get("spec") or {}).get("nodeName"),
            uid=metadata.get("uid"),
            group=(metadata.get("labels") or {}).get(WORKER_GROUP_LABEL) or DEFAULT_GROUP,
            template=(metadata.get("annotations") or {}).get(builders.TEMPLATE_ANNOTATION),
        )


@dataclasses.dataclass(frozen=True)
class Observed:
    """What exists for one request, listed by label, plus in-memory knowledge of in-flight work."""

    scheduler: PodInfo | None = None
    service: bool = False
    pdb: bool = False
    workers: tuple[PodInfo, ...] = ()
    #: The batch job's pod (``job-template``), once created.
    job: PodInfo | None = None
    #: Workers a retirement in flight is taking away (still active until the scheduler answers).
    retiring: int = 0

    # Cached: a pass asks for these many times, and a cluster can have thousands of workers.
    @functools.cached_property
    def active_workers(self) -> list[PodInfo]:
        return [w for w in self.workers if not w.deleting and not w.done and not w.retired]

    @functools.cached_property
    def _active_by_group(self) -> dict[str, list[PodInfo]]:
        groups: dict[str, list[PodInfo]] = {}
        for worker in self.active_workers:
            groups.setdefault(worker.group, []).append(worker)
        return groups

    def active_in(self, group: str) -> list[PodInfo]:
        return list(self._active_by_group.get(group, ()))

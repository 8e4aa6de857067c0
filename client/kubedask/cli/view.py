"""What the commands show of a request, computed from its ConfigMap alone (pure functions, no I/O).

Example:
    >>> view = ClusterView.of({"metadata": {"name": "analysis", "namespace": "team-a",
    ...     "annotations": {"kubedask.io/status": '{"phase": "Running", "workers": {"requested": 3, "ready": 2}}'}}})
    >>> view.phase, view.workers
    ('Running', '2/3')
    >>> human_age(3725)
    '62m'
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from .. import spec
from ..kube import Manifest

NONE = "<none>"
#: The API version and kind of the objects ``-o json|yaml`` prints: a view of a request, not a stored kind.
VIEW_API_VERSION = "kubedask.io/v1"
VIEW_KIND = "DaskCluster"


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def human_age(seconds: float) -> str:
    """Durations the way kubectl's AGE column writes them: ``45s``, ``5m30s``, ``62m``, ``5h3m``, ``3d``."""
    s = max(0, int(seconds))
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if s < 120:
        return f"{s}s"
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def age_of(timestamp: str | None, now: dt.datetime | None = None) -> str:
    moment = parse_time(timestamp)
    if moment is None:
        return NONE
    now = now or dt.datetime.now(dt.UTC)
    return human_age((now - moment).total_seconds())


@dataclass(frozen=True)
class ClusterView:
    """One request as the commands show it."""

    name: str
    namespace: str
    created: str | None
    status: spec.ClusterStatus | None
    data: dict[str, str]

    @classmethod
    def of(cls, request: Manifest) -> ClusterView:
        metadata = request.get("metadata") or {}
        return cls(
            name=str(metadata.get("name", "")),
            namespace=str(metadata.get("namespace", "")),
            created=metadata.get("creationTimestamp"),
            status=spec.parse_status(metadata.get("annotations")),
            data={str(k): str(v) for k, v in (request.get("data") or {}).items()},
        )

    @property
    def phase(self) -> str:
        return self.status.phase if self.status is not None else NONE

    @property
    def workers(self) -> str:
        """``ready/requested``; before any status, ``-/requested`` from the request itself."""
        if self.status is None:
            return f"-/{self.data.get(spec.KEY_WORKERS, '0')}"
        counts = self.status.workers
        return f"{counts.ready}/{counts.requested}"

    @property
    def groups(self) -> str:
        """``default:2/2,gpu:1/1`` (ready/requested per worker group), or <none> without named groups."""
        if self.status is None or not self.status.worker_groups:
            return NONE
        return ",".join(f"{g}:{c.ready}/{c.requested}" for g, c in sorted(self.status.worker_groups.items()))

    @property
    def deploy_mode(self) -> str:
        return self.data.get(spec.KEY_DEPLOY_MODE) or "remote"

    @property
    def adapt(self) -> str:
        return self.data.get(spec.KEY_ADAPT) or NONE

    def address(self, which: str) -> str:
        if self.status is None:
            return NONE
        value = {"scheduler": self.status.scheduler_address, "dashboard": self.status.dashboard_address,
                 "external": self.status.external_address}[which]
        return value or NONE

    @property
    def message(self) -> str:
        if self.status is None:
            return "no status yet: no kubedask controller has acted on this request"
        return self.status.message or NONE

    def row(self, wide: bool = False, now: dt.datetime | None = None) -> list[str]:
        cells = [self.name, self.phase, self.workers, self.address("scheduler"), self.address("dashboard"),
                 age_of(self.created, now)]
        if wide:
            counts = self.status.workers if self.status else None
            created = f"{counts.created}/{counts.running}" if counts else NONE
            cells += [self.address("external"), created, self.adapt, self.groups, self.message]
        return cells

    def to_object(self) -> dict[str, Any]:
        """What ``-o json|yaml`` prints: the request's data as ``spec`` and the controller's status verbatim."""
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if self.created:
            metadata["creationTimestamp"] = self.created
        return {
            "apiVersion": VIEW_API_VERSION,
            "kind": VIEW_KIND,
            "metadata": metadata,
            "spec": dict(self.data),
            "status": _status_object(self.status),
        }


HEADERS = ["NAME", "PHASE", "WORKERS", "SCHEDULER", "DASHBOARD", "AGE"]
WIDE_HEADERS = [*HEADERS, "EXTERNAL", "CREATED/RUNNING", "ADAPT", "GROUPS", "MESSAGE"]


def _status_object(status: spec.ClusterStatus | None) -> dict[str, Any] | None:
    """The status as the controller wrote it (``workerGroups`` only for a cluster with named groups)."""
    if status is None:
        return None
    shown = status.model_dump(by_alias=True, mode="json")
    if not shown.get("workerGroups"):
        shown.pop("workerGroups", None)
    for counts in [shown.get("workers") or {}, *(shown.get("workerGroups") or {}).values()]:
        if counts.get("updated") is None:
            counts.pop("updated", None)
    return shown

"""The status model (written by the controller, read by the client) and the client's heartbeat.

Both travel as annotations on the request ConfigMap: :data:`~.names.STATUS_ANNOTATION` holds a
:class:`ClusterStatus` as JSON, :data:`~.names.HEARTBEAT_ANNOTATION` the time a client last said it is
alive.

Example::

    >>> status = parse_status({STATUS_ANNOTATION: '{"phase": "Running", "schedulerAddress": "tcp://s:8786"}'})
    >>> status.scheduler_address
    'tcp://s:8786'
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from .names import STATUS_ANNOTATION

#: ``Succeeded`` and ``Failed`` are final for a batch job (``job-template``): its cluster is gone, the request stays.
Phase = Literal["Pending", "Running", "Scaling", "Succeeded", "Failed", "Terminating"]
JobState = Literal["Pending", "Running", "Succeeded", "Failed"]


def format_heartbeat(now: dt.datetime | None = None) -> str:
    """The value a client writes into :data:`HEARTBEAT_ANNOTATION` (RFC 3339, UTC)."""
    now = now or dt.datetime.now(dt.UTC)
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_heartbeat(value: str | None) -> dt.datetime | None:
    """The time of a heartbeat annotation, or None when absent or unreadable."""
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _camel(name: str, default: Any) -> Any:
    """A field written as camelCase in the JSON (Kubernetes style) and accepted in either spelling."""
    snake = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)
    return Field(default=default, validation_alias=AliasChoices(name, snake), serialization_alias=name)


class Condition(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: str = _camel("lastTransitionTime", "")


class WorkerCounts(BaseModel):
    requested: int = 0
    created: int = 0
    running: int = 0
    ready: int = 0
    #: Of the created workers, how many run the template the request has now (a rolling update's progress);
    #: None in a status written by an older controller.
    updated: int | None = None


class JobStatus(BaseModel):
    """A batch job's pod and how it went: ``state`` Succeeded or Failed once it ended (for good: the record
    the controller keeps), with the main container's exit code and Kubernetes' reason (``Completed``,
    ``Error``, ``OOMKilled``, ``ErrImagePull``, ...)."""

    model_config = ConfigDict(populate_by_name=True)

    pod: str
    state: JobState = "Pending"
    exit_code: int | None = _camel("exitCode", None)
    reason: str = ""

    @property
    def finished(self) -> bool:
        return self.state in ("Succeeded", "Failed")


class ClusterStatus(BaseModel):
    """The JSON in :data:`STATUS_ANNOTATION`."""

    model_config = ConfigDict(populate_by_name=True)

    phase: Phase = "Pending"
    message: str = ""
    conditions: list[Condition] = Field(default_factory=list)
    scheduler_address: str | None = _camel("schedulerAddress", None)
    dashboard_address: str | None = _camel("dashboardAddress", None)
    external_address: str | None = _camel("externalAddress", None)
    workers: WorkerCounts = Field(default_factory=WorkerCounts)
    #: Per worker group (``default`` and every named group), for a request with named groups.
    worker_groups: dict[str, WorkerCounts] = Field(
        default_factory=dict, validation_alias=AliasChoices("workerGroups", "worker_groups"),
        serialization_alias="workerGroups")
    observed_spec: str | None = _camel("observedSpec", None)
    updated_at: str | None = _camel("updatedAt", None)
    #: Only for a request with a ``job-template``.
    job: JobStatus | None = None

    def to_json(self) -> str:
        data = self.model_dump(by_alias=True, exclude_none=False)
        if data["job"] is None:
            del data["job"]  # a cluster without a job writes the status it always wrote
        if not data["workerGroups"]:
            del data["workerGroups"]  # likewise a cluster without named worker groups
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)


def parse_status(annotations: Mapping[str, str] | None) -> ClusterStatus | None:
    """The status a controller wrote on a request, or None if there is none (yet) or it is unreadable."""
    raw = (annotations or {}).get(STATUS_ANNOTATION)
    if not raw:
        return None
    try:
        return ClusterStatus.model_validate_json(raw)
    except ValueError:
        return None

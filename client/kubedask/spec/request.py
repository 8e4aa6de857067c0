"""The request model: what a request ConfigMap's ``data`` may hold, parsed into a :class:`ClusterRequest`.

A request's ``data`` holds flat, kebab-case string values (so ``kubectl patch cm NAME -p
'{"data":{"workers":"10"}}'`` scales a cluster). :func:`parse_request` is the controller's way in; the
client's way out is :mod:`.build`, which validates through it, so both give the same :class:`RequestError`
messages.

Example::

    >>> parse_request("analysis", {"workers": "2", "worker-template": "containers: [{name: w, image: x}]"}).workers
    2
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .adapt import AdaptSpec, parse_adapt
from .errors import RequestError
from .groups import WorkerGroup, is_group_key, parse_groups
from .names import (
    ALL_KEYS,
    DEFAULT_GROUP,
    KEY_ADAPT,
    KEY_DEPLOY_MODE,
    KEY_HEARTBEAT_TIMEOUT,
    KEY_IDLE_TIMEOUT,
    KEY_JOB_TEMPLATE,
    KEY_JOB_TTL,
    KEY_MAX_SURGE,
    KEY_SCHEDULER_ADDRESS,
    KEY_SCHEDULER_TEMPLATE,
    KEY_SERVICE_TEMPLATE,
    KEY_SERVICE_TYPE,
    KEY_UPDATE_STRATEGY,
    KEY_WORKER_TEMPLATE,
    KEY_WORKERS,
    validate_name,
)
from .service import ServiceTemplate, parse_service_template
from .template import PodTemplate, parse_template
from .values import MAX_WORKERS, format_duration, optional_duration, parse_choice, parse_duration, parse_int

__all__ = ["MAX_WORKERS", "AdaptSpec", "ClusterRequest", "DeployMode", "ServiceType", "WorkerGroup",
           "fingerprint", "format_duration", "parse_duration", "parse_request"]

ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer"]
DeployMode = Literal["remote", "local"]
_SERVICE_TYPES: tuple[ServiceType, ...] = ("ClusterIP", "NodePort", "LoadBalancer")
_DEPLOY_MODES: tuple[DeployMode, ...] = ("remote", "local")
UpdateStrategy = Literal["rolling", "new-workers-only"]
_STRATEGIES: tuple[UpdateStrategy, ...] = ("rolling", "new-workers-only")

_ADDRESS_RE = re.compile(r"^(tcp|tls|ucx|ws|wss)://[^\s/]+:\d{1,5}$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ClusterRequest(_Frozen):
    """A validated request. ``fingerprint`` identifies the data it came from (``observedSpec``)."""

    name: str
    workers: int
    worker_template: PodTemplate
    scheduler_template: PodTemplate | None = None
    scheduler_service_type: ServiceType = "ClusterIP"
    #: ``scheduler-service-template``: labels, annotations and safe spec fields of the scheduler Service.
    scheduler_service: ServiceTemplate | None = None
    adapt: AdaptSpec | None = None
    idle_timeout: float | None = None
    deploy_mode: DeployMode = "remote"
    scheduler_address: str | None = None
    client_heartbeat_timeout: float | None = None
    #: A batch job's pod, run once the scheduler is ready; the cluster goes when it ends.
    job_template: PodTemplate | None = None
    #: Seconds a finished job's request is kept before the controller deletes it (None: kept).
    job_ttl: float | None = None
    #: Named worker groups (``workers.GROUP``, ``worker-template.GROUP``), sorted by name.
    worker_groups: tuple[WorkerGroup, ...] = ()
    #: What a changed worker template does to running workers, and the extra pods a rolling update may add.
    update_strategy: UpdateStrategy = "rolling"
    max_surge: int = 1
    fingerprint: str

    def group_template(self, group: str) -> PodTemplate:
        """The worker template of ``group`` (``default``: :attr:`worker_template`)."""
        if group == DEFAULT_GROUP:
            return self.worker_template
        return next(g.template for g in self.worker_groups if g.name == group)

    def group_adapt(self, group: str) -> AdaptSpec | None:
        """The adaptive bounds of ``group`` (``adapt``, or ``adapt.GROUP`` for a named one); None: fixed size."""
        if group == DEFAULT_GROUP:
            return self.adapt
        return next((g.adapt for g in self.worker_groups if g.name == group), None)


def fingerprint(data: Mapping[str, str]) -> str:
    """A short stable hash of request data; equal data gives equal fingerprints."""
    canonical = json.dumps(dict(data), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def parse_request(name: str, data: Mapping[str, str] | None) -> ClusterRequest:
    """Validate a request's name and ``data``; raise :class:`RequestError` with a user-facing message."""
    validate_name(name)
    data = dict(data or {})
    unknown = sorted(k for k in data if k not in ALL_KEYS and not is_group_key(k))
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, ALL_KEYS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise RequestError(
            f"unknown key {key!r} in the request data.{hint} Allowed keys: {', '.join(ALL_KEYS)}, and "
            f"'workers.GROUP' / 'worker-template.GROUP' / 'adapt.GROUP' for a named worker group.", key=key)
    for key, value in data.items():
        if not isinstance(value, str):  # pragma: no cover - the API server only stores strings
            raise RequestError(f"key {key!r} must be a string, got {type(value).__name__}.", key=key)

    deploy_mode = parse_choice(data, KEY_DEPLOY_MODE, _DEPLOY_MODES, "remote")
    scheduler_address = data.get(KEY_SCHEDULER_ADDRESS, "").strip() or None
    if deploy_mode == "local":
        if scheduler_address is None:
            raise RequestError(
                f"key {KEY_DEPLOY_MODE!r} is 'local' but {KEY_SCHEDULER_ADDRESS!r} is missing: set it to "
                f"the address workers should connect to, e.g. 'tcp://10.0.0.5:8786'.",
                key=KEY_SCHEDULER_ADDRESS)
        if not _ADDRESS_RE.match(scheduler_address):
            raise RequestError(
                f"key {KEY_SCHEDULER_ADDRESS!r} has value {scheduler_address!r}; expected "
                f"'PROTOCOL://HOST:PORT' such as 'tcp://10.0.0.5:8786'.", key=KEY_SCHEDULER_ADDRESS)
    elif scheduler_address is not None:
        raise RequestError(
            f"key {KEY_SCHEDULER_ADDRESS!r} is only used with {KEY_DEPLOY_MODE!r}: 'local'; remove it or "
            f"set {KEY_DEPLOY_MODE!r} to 'local'.", key=KEY_SCHEDULER_ADDRESS)

    if KEY_WORKER_TEMPLATE not in data:
        raise RequestError(
            f"key {KEY_WORKER_TEMPLATE!r} is missing: add a Pod manifest or a bare pod spec (YAML) "
            f"describing one Dask worker.", key=KEY_WORKER_TEMPLATE)
    worker_template = parse_template(data[KEY_WORKER_TEMPLATE], key=KEY_WORKER_TEMPLATE)
    scheduler_template = None
    if data.get(KEY_SCHEDULER_TEMPLATE, "").strip():
        if deploy_mode == "local":
            raise RequestError(
                f"key {KEY_SCHEDULER_TEMPLATE!r} is set but {KEY_DEPLOY_MODE!r} is 'local', where the "
                f"scheduler runs in the client process; remove one of them.", key=KEY_SCHEDULER_TEMPLATE)
        scheduler_template = parse_template(data[KEY_SCHEDULER_TEMPLATE], key=KEY_SCHEDULER_TEMPLATE)

    job_template, job_ttl = _parse_job(data, deploy_mode)
    service, service_type = _parse_service(data, deploy_mode)
    adapt = parse_adapt(data[KEY_ADAPT], KEY_ADAPT) if data.get(KEY_ADAPT, "").strip() else None
    return ClusterRequest(
        name=name,
        workers=parse_int(data, KEY_WORKERS, default=adapt.minimum if adapt else 0),
        worker_template=worker_template,
        scheduler_template=scheduler_template,
        scheduler_service_type=service_type,
        scheduler_service=service,
        adapt=adapt,
        idle_timeout=optional_duration(data, KEY_IDLE_TIMEOUT),
        deploy_mode=deploy_mode,
        scheduler_address=scheduler_address,
        client_heartbeat_timeout=optional_duration(data, KEY_HEARTBEAT_TIMEOUT),
        job_template=job_template,
        job_ttl=job_ttl,
        worker_groups=parse_groups(name, data),
        update_strategy=parse_choice(data, KEY_UPDATE_STRATEGY, _STRATEGIES, "rolling"),
        max_surge=_parse_surge(data),
        fingerprint=fingerprint(data),
    )


def _parse_job(data: Mapping[str, str], deploy_mode: DeployMode) -> tuple[PodTemplate | None, float | None]:
    """``job-template`` (a Pod manifest or bare spec, like the other templates) and ``job-ttl``."""
    ttl = optional_duration(data, KEY_JOB_TTL)
    if not data.get(KEY_JOB_TEMPLATE, "").strip():
        if ttl is not None:
            raise RequestError(
                f"key {KEY_JOB_TTL!r} is set but there is no {KEY_JOB_TEMPLATE!r}: it says how long a finished "
                f"job's request is kept; add a {KEY_JOB_TEMPLATE!r} or remove {KEY_JOB_TTL!r}.", key=KEY_JOB_TTL)
        return None, None
    if deploy_mode == "local":
        raise RequestError(
            f"key {KEY_JOB_TEMPLATE!r} is set but {KEY_DEPLOY_MODE!r} is 'local': a job runs against a scheduler "
            f"in the cluster, which ends with it; remove {KEY_DEPLOY_MODE!r} or the job.", key=KEY_JOB_TEMPLATE)
    template = parse_template(data[KEY_JOB_TEMPLATE], key=KEY_JOB_TEMPLATE)
    if template.spec.get("restartPolicy") == "Always":
        raise RequestError(
            f"key {KEY_JOB_TEMPLATE!r}: restartPolicy 'Always' never lets a job end; use 'Never' (the default: "
            f"the job runs once) or 'OnFailure' (the kubelet restarts it until it succeeds).", key=KEY_JOB_TEMPLATE)
    return template, ttl


def _parse_service(data: Mapping[str, str], deploy_mode: DeployMode) -> tuple[ServiceTemplate | None, ServiceType]:
    """``scheduler-service-template`` and the Service type (its ``spec.type`` or ``scheduler-service-type``)."""
    service_type = parse_choice(data, KEY_SERVICE_TYPE, _SERVICE_TYPES, "ClusterIP")
    if not data.get(KEY_SERVICE_TEMPLATE, "").strip():
        return None, service_type
    if deploy_mode == "local":
        raise RequestError(f"key {KEY_SERVICE_TEMPLATE!r} is set but {KEY_DEPLOY_MODE!r} is 'local', where there is "
                           "no scheduler Service; remove one of them.", key=KEY_SERVICE_TEMPLATE)
    service = parse_service_template(data[KEY_SERVICE_TEMPLATE])
    wanted = service.spec.get("type")
    if wanted is not None and KEY_SERVICE_TYPE in data and wanted != service_type:
        raise RequestError(f"key {KEY_SERVICE_TEMPLATE!r} says spec.type {wanted!r} but {KEY_SERVICE_TYPE!r} is "
                           f"{service_type!r}; keep one of them.", key=KEY_SERVICE_TEMPLATE)
    return service, wanted or service_type


def _parse_surge(data: Mapping[str, str]) -> int:
    surge = parse_int(data, KEY_MAX_SURGE, default=1)
    if surge < 1:
        raise RequestError(f"key {KEY_MAX_SURGE!r} is 0: a rolling update needs room for at least one new worker "
                           f"beside the old ones; use 1 or more, or set {KEY_UPDATE_STRATEGY!r}: new-workers-only.",
                           key=KEY_MAX_SURGE)
    return surge

"""The request schema: the one place that defines what a kubedask request ConfigMap may contain.

A request is a ConfigMap labelled ``kubedask.io/request: cluster``. Its ``data`` holds flat, kebab-case
string values (so ``kubectl patch cm NAME -p '{"data":{"workers":"10"}}'`` scales a cluster). Both the
client (which writes requests and reads their status) and the controller (which validates and acts on
them) import this module, so it depends only on pydantic and PyYAML.

Example::

    >>> from kubedask.spec import build_request_data, parse_request
    >>> data = build_request_data(workers=2, worker_template={
    ...     "containers": [{"name": "dask-worker", "image": "ghcr.io/dask/dask:latest"}]})
    >>> parse_request("analysis", data).workers
    2
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

# --- names shared by the client and the controller ---------------------------------------------------

REQUEST_LABEL = "kubedask.io/request"
REQUEST_LABEL_VALUE = "cluster"
PHASE_LABEL = "kubedask.io/phase"
STATUS_ANNOTATION = "kubedask.io/status"
HEARTBEAT_ANNOTATION = "kubedask.io/heartbeat"
#: Label on every object the controller creates; the controller watches only objects carrying it.
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "kubedask"
CLUSTER_NAME_LABEL = "dask.org/cluster-name"
COMPONENT_LABEL = "dask.org/component"

KEY_WORKERS = "workers"
KEY_WORKER_TEMPLATE = "worker-template"
KEY_SCHEDULER_TEMPLATE = "scheduler-template"
KEY_SERVICE_TYPE = "scheduler-service-type"
KEY_ADAPT = "adapt"
KEY_IDLE_TIMEOUT = "idle-timeout"
KEY_DEPLOY_MODE = "deploy-mode"
KEY_SCHEDULER_ADDRESS = "scheduler-address"
KEY_HEARTBEAT_TIMEOUT = "client-heartbeat-timeout"
ALL_KEYS = (
    KEY_WORKERS, KEY_WORKER_TEMPLATE, KEY_SCHEDULER_TEMPLATE, KEY_SERVICE_TYPE, KEY_ADAPT,
    KEY_IDLE_TIMEOUT, KEY_DEPLOY_MODE, KEY_SCHEDULER_ADDRESS, KEY_HEARTBEAT_TIMEOUT,
)

SCHEDULER_PORT = 8786
DASHBOARD_PORT = 8787

#: A request name becomes ``NAME-scheduler`` (a Service name: DNS-1035 label, at most 63 characters) and
#: ``NAME-worker-xxxxx`` (a pod name that also serves as the pod's hostname, kept within 63 characters).
MAX_NAME_LENGTH = 47
#: Upper bound for each template's text. A ConfigMap may hold 1 MiB in total; pod templates are a few
#: KiB, so anything near the limit is a mistake or an attack on the YAML parser.
MAX_TEMPLATE_BYTES = 128 * 1024
MAX_TEMPLATE_DEPTH = 40
MAX_WORKERS = 100_000

PHASES = ("Pending", "Running", "Scaling", "Failed", "Terminating")
Phase = Literal["Pending", "Running", "Scaling", "Failed", "Terminating"]
ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer"]
DeployMode = Literal["remote", "local"]

_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_ADDRESS_RE = re.compile(r"^(tcp|tls|ucx|ws|wss)://[^\s/]+:\d{1,5}$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class RequestError(ValueError):
    """A request (or one of its keys) is invalid. ``str(err)`` is a message meant for the user."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


# --- typed values ------------------------------------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PodTemplate(_Frozen):
    """A normalised pod template: the template's labels/annotations and its pod spec (plain dicts)."""

    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    #: ``metadata.namespace`` as written in the template (the policy refuses any value).
    namespace: str | None = None
    spec: dict[str, Any]


class AdaptSpec(_Frozen):
    """Controller-side adaptive scaling bounds (``adapt`` key)."""

    minimum: int = Field(ge=0, le=MAX_WORKERS)
    maximum: int = Field(ge=0, le=MAX_WORKERS)
    #: Seconds between looks at the scheduler's adaptive target.
    interval: float = Field(default=5.0, gt=0, le=3600)
    #: Seconds to wait after a scale-down before scaling down again (scale-ups are never delayed).
    cooldown: float = Field(default=30.0, ge=0, le=86400)


class ClusterRequest(_Frozen):
    """A validated request. ``fingerprint`` identifies the data it came from (``observedSpec``)."""

    name: str
    workers: int
    worker_template: PodTemplate
    scheduler_template: PodTemplate | None = None
    scheduler_service_type: ServiceType = "ClusterIP"
    adapt: AdaptSpec | None = None
    idle_timeout: float | None = None
    deploy_mode: DeployMode = "remote"
    scheduler_address: str | None = None
    client_heartbeat_timeout: float | None = None
    fingerprint: str


# --- parsing -----------------------------------------------------------------------------------------


def fingerprint(data: Mapping[str, str]) -> str:
    """A short stable hash of request data; equal data gives equal fingerprints."""
    canonical = json.dumps(dict(data), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def validate_name(name: str) -> None:
    """Refuse names that cannot become ``NAME-scheduler`` Services and ``NAME-worker-xxxxx`` pods."""
    if len(name) > MAX_NAME_LENGTH:
        raise RequestError(
            f"the ConfigMap name {name!r} is {len(name)} characters long; at most {MAX_NAME_LENGTH} are "
            f"allowed because the controller appends '-scheduler' and '-worker-xxxxx' to it. "
            f"Rename the request to a shorter name.", key="metadata.name")
    if not _NAME_RE.match(name):
        raise RequestError(
            f"the ConfigMap name {name!r} is not usable as a Dask cluster name: use lower-case letters, "
            f"digits and '-', starting with a letter and ending with a letter or digit.",
            key="metadata.name")


def parse_request(name: str, data: Mapping[str, str] | None) -> ClusterRequest:
    """Validate a request's name and ``data``; raise :class:`RequestError` with a user-facing message."""
    validate_name(name)
    data = dict(data or {})
    unknown = sorted(set(data) - set(ALL_KEYS))
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, ALL_KEYS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise RequestError(
            f"unknown key {key!r} in the request data.{hint} Allowed keys: {', '.join(ALL_KEYS)}.", key=key)
    for key, value in data.items():
        if not isinstance(value, str):  # pragma: no cover - the API server only stores strings
            raise RequestError(f"key {key!r} must be a string, got {type(value).__name__}.", key=key)

    deploy_mode = _parse_choice(data, KEY_DEPLOY_MODE, ("remote", "local"), "remote")
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

    adapt = _parse_adapt(data[KEY_ADAPT]) if data.get(KEY_ADAPT, "").strip() else None
    return ClusterRequest(
        name=name,
        workers=_parse_int(data, KEY_WORKERS, default=adapt.minimum if adapt else 0),
        worker_template=worker_template,
        scheduler_template=scheduler_template,
        scheduler_service_type=_parse_choice(  # type: ignore[arg-type]
            data, KEY_SERVICE_TYPE, ("ClusterIP", "NodePort", "LoadBalancer"), "ClusterIP"),
        adapt=adapt,
        idle_timeout=_parse_duration(data, KEY_IDLE_TIMEOUT),
        deploy_mode=deploy_mode,  # type: ignore[arg-type]
        scheduler_address=scheduler_address,
        client_heartbeat_timeout=_parse_duration(data, KEY_HEARTBEAT_TIMEOUT),
        fingerprint=fingerprint(data),
    )


def _parse_int(data: Mapping[str, str], key: str, default: int) -> int:
    raw = data.get(key)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise RequestError(
            f"key {key!r} has value {raw!r}, which is not a whole number; use a count between 0 and "
            f"{MAX_WORKERS}, e.g. \"3\".", key=key) from None
    if not 0 <= value <= MAX_WORKERS:
        raise RequestError(
            f"key {key!r} has value {raw!r}; it must be between 0 and {MAX_WORKERS}.", key=key)
    return value


def _parse_choice(data: Mapping[str, str], key: str, allowed: tuple[str, ...], default: str) -> str:
    raw = data.get(key)
    if raw is None or not raw.strip():
        return default
    for choice in allowed:  # be lenient about case ("clusterip"), strict about the word
        if raw.strip().lower() == choice.lower():
            return choice
    raise RequestError(
        f"key {key!r} has value {raw!r}; allowed values are {', '.join(allowed)}.", key=key)


def parse_duration(raw: str, key: str) -> float:
    """Seconds from ``"300"``, ``"300s"``, ``"5m"``, ``"1.5h"`` or ``"1d"``."""
    match = _DURATION_RE.match(raw)
    if not match:
        raise RequestError(
            f"key {key!r} has value {raw!r}, which is not a duration; use seconds (\"300\") or a number "
            f"with a unit s, m, h or d (\"5m\").", key=key)
    seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise RequestError(f"key {key!r} has value {raw!r}; it must be more than zero seconds.", key=key)
    return seconds


def _parse_duration(data: Mapping[str, str], key: str) -> float | None:
    raw = data.get(key)
    if raw is None or not raw.strip():
        return None
    return parse_duration(raw, key)


def _parse_adapt(raw: str) -> AdaptSpec:
    # JSON is a subset of YAML, so '{"minimum": 1, "maximum": 10}' and 'minimum: 1' both work.
    value = safe_load_yaml(raw, KEY_ADAPT, max_bytes=4096)
    if not isinstance(value, dict):
        raise RequestError(
            f"key {KEY_ADAPT!r} has value {raw!r}; expected a mapping such as "
            f"'{{\"minimum\": 1, \"maximum\": 10}}'.", key=KEY_ADAPT)
    allowed = ("minimum", "maximum", "interval", "cooldown")
    extra = sorted(set(value) - set(allowed))
    if extra:
        raise RequestError(
            f"key {KEY_ADAPT!r} has unknown field {extra[0]!r}; allowed fields: {', '.join(allowed)}.",
            key=KEY_ADAPT)
    if "maximum" not in value:
        raise RequestError(
            f"key {KEY_ADAPT!r} needs a 'maximum', e.g. '{{\"minimum\": 1, \"maximum\": 10}}'.",
            key=KEY_ADAPT)
    fields = {"minimum": 0, **value}
    for field in allowed:
        v = fields.get(field)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise RequestError(
                f"key {KEY_ADAPT!r}: field {field!r} has value {v!r}; it must be a number.", key=KEY_ADAPT)
    for field in ("minimum", "maximum"):
        v = fields[field]
        if v != int(v) or not 0 <= v <= MAX_WORKERS:
            raise RequestError(
                f"key {KEY_ADAPT!r}: field {field!r} has value {v!r}; it must be a whole number between "
                f"0 and {MAX_WORKERS}.", key=KEY_ADAPT)
    if fields["minimum"] > fields["maximum"]:
        raise RequestError(
            f"key {KEY_ADAPT!r}: 'minimum' ({fields['minimum']}) is larger than 'maximum' "
            f"({fields['maximum']}).", key=KEY_ADAPT)
    try:
        return AdaptSpec(**{k: v for k, v in fields.items() if v is not None})
    except ValueError as exc:
        raise RequestError(f"key {KEY_ADAPT!r} is invalid: {exc}", key=KEY_ADAPT) from None


# --- safe, bounded YAML ------------------------------------------------------------------------------


class _NoAliasLoader(yaml.SafeLoader):
    """A SafeLoader that refuses anchors and aliases, which is what makes "billion laughs" bombs work.

    Pod templates have no need for them, and refusing them outright is simpler to reason about than
    counting expanded nodes.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        # An alias (*a) refers to an anchor (&a); refusing both keeps expansion linear in the input.
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise _AliasRefused(event.start_mark)
        if self._depth_exceeded():
            raise _TooDeep(event.start_mark)
        return super().compose_node(parent, index)

    def _depth_exceeded(self) -> bool:
        self._kd_depth = getattr(self, "_kd_depth", 0)
        return bool(self._kd_depth > MAX_TEMPLATE_DEPTH)

    def compose_sequence_node(self, anchor: Any) -> Any:
        return self._nested(super().compose_sequence_node, anchor)

    def compose_mapping_node(self, anchor: Any) -> Any:
        return self._nested(super().compose_mapping_node, anchor)

    def _nested(self, compose: Any, anchor: Any) -> Any:
        self._kd_depth = getattr(self, "_kd_depth", 0) + 1
        try:
            return compose(anchor)
        finally:
            self._kd_depth -= 1


class _AliasRefused(Exception):
    def __init__(self, mark: Any) -> None:
        self.mark = mark


class _TooDeep(Exception):
    def __init__(self, mark: Any) -> None:
        self.mark = mark


def safe_load_yaml(text: str, key: str, max_bytes: int = MAX_TEMPLATE_BYTES) -> Any:
    """Parse untrusted YAML: size-limited, no anchors/aliases, bounded nesting, plain types only."""
    size = len(text.encode("utf-8", errors="replace"))
    if size > max_bytes:
        raise RequestError(
            f"key {key!r} is {size} bytes; at most {max_bytes} bytes are allowed. Pod templates are "
            f"normally a few KiB: remove embedded files or data.", key=key)
    try:
        return yaml.load(text, Loader=_NoAliasLoader)
    except _AliasRefused as exc:
        raise RequestError(
            f"key {key!r} uses a YAML anchor or alias (line {exc.mark.line + 1}); they are not allowed "
            f"in requests. Write the values out in full.", key=key) from None
    except _TooDeep as exc:
        raise RequestError(
            f"key {key!r} is nested more than {MAX_TEMPLATE_DEPTH} levels deep (line "
            f"{exc.mark.line + 1}); a pod template never needs that.", key=key) from None
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RequestError(f"key {key!r} is not valid YAML{where}: {problem}.", key=key) from None


def parse_template(text: str, key: str = KEY_WORKER_TEMPLATE) -> PodTemplate:
    """Parse a template: a Pod manifest (``kind: Pod``, ``metadata``, ``spec``) or a bare pod spec."""
    if not text.strip():
        raise RequestError(f"key {key!r} is empty: give a Pod manifest or a bare pod spec.", key=key)
    doc = safe_load_yaml(text, key)
    return template_from_dict(doc, key)


def template_from_dict(doc: Any, key: str = KEY_WORKER_TEMPLATE) -> PodTemplate:
    """Normalise an already-parsed template (also used by the client for ``from_dict``)."""
    if not isinstance(doc, dict):
        raise RequestError(
            f"key {key!r} must be a YAML mapping (a Pod manifest or a pod spec), got "
            f"{type(doc).__name__}.", key=key)
    if "spec" in doc or "kind" in doc or "metadata" in doc:
        kind = doc.get("kind", "Pod")
        if kind != "Pod":
            raise RequestError(f"key {key!r} has kind {kind!r}; only 'Pod' (or a bare pod spec) is "
                               f"accepted.", key=key)
        api_version = doc.get("apiVersion", "v1")
        if api_version != "v1":
            raise RequestError(f"key {key!r} has apiVersion {api_version!r}; pods are 'v1'.", key=key)
        metadata = doc.get("metadata") or {}
        spec = doc.get("spec")
        if not isinstance(metadata, dict):
            raise RequestError(f"key {key!r}: 'metadata' must be a mapping.", key=key)
    else:
        metadata, spec = {}, doc
    if not isinstance(spec, dict):
        raise RequestError(f"key {key!r}: the pod 'spec' must be a mapping with 'containers'.", key=key)
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise RequestError(
            f"key {key!r} has no containers: the pod spec needs 'containers' with at least one entry, "
            f"e.g. [{{name: dask-worker, image: ghcr.io/dask/dask:latest}}].", key=key)
    for i, container in enumerate(containers):
        if not isinstance(container, dict):
            raise RequestError(f"key {key!r}: containers[{i}] must be a mapping.", key=key)
        if not isinstance(container.get("image"), str) or not container["image"].strip():
            raise RequestError(f"key {key!r}: containers[{i}] has no 'image'.", key=key)
        for field in ("args", "command"):
            value = container.get(field)
            if value is not None and not (isinstance(value, list) and
                                          all(isinstance(a, str | int | float) for a in value)):
                raise RequestError(
                    f"key {key!r}: containers[{i}].{field} must be a list of strings.", key=key)
    labels = _string_map(metadata.get("labels"), key, "metadata.labels")
    annotations = _string_map(metadata.get("annotations"), key, "metadata.annotations")
    namespace = metadata.get("namespace")
    return PodTemplate(labels=labels, annotations=annotations,
                       namespace=str(namespace) if namespace is not None else None, spec=spec)


def _string_map(value: Any, key: str, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError(f"key {key!r}: {where} must be a mapping.", key=key)
    return {str(k): str(v) for k, v in value.items()}


# --- writing requests (used by the client) ------------------------------------------------------------


def dump_template(template: Mapping[str, Any] | str) -> str:
    """Serialise a template dict as YAML text (a string is returned unchanged)."""
    if isinstance(template, str):
        return template
    return yaml.safe_dump(dict(template), sort_keys=False, default_flow_style=False)


def format_duration(seconds: float | int | str) -> str:
    if isinstance(seconds, str):
        return seconds
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def build_request_data(
    *,
    worker_template: Mapping[str, Any] | str,
    workers: int | None = None,
    scheduler_template: Mapping[str, Any] | str | None = None,
    scheduler_service_type: str | None = None,
    adapt: Mapping[str, Any] | None = None,
    idle_timeout: float | int | str | None = None,
    deploy_mode: str | None = None,
    scheduler_address: str | None = None,
    client_heartbeat_timeout: float | int | str | None = None,
) -> dict[str, str]:
    """Build a request's ConfigMap ``data`` from typed values; unset values are left out.

    The result is validated with :func:`parse_request`, so a client learns about a bad value before
    anything is written.
    """
    data: dict[str, str] = {KEY_WORKER_TEMPLATE: dump_template(worker_template)}
    if workers is not None:
        data[KEY_WORKERS] = str(int(workers))
    if scheduler_template is not None:
        data[KEY_SCHEDULER_TEMPLATE] = dump_template(scheduler_template)
    if scheduler_service_type is not None:
        data[KEY_SERVICE_TYPE] = scheduler_service_type
    if adapt is not None:
        data[KEY_ADAPT] = json.dumps(dict(adapt), sort_keys=True)
    if idle_timeout is not None:
        data[KEY_IDLE_TIMEOUT] = format_duration(idle_timeout)
    if deploy_mode is not None:
        data[KEY_DEPLOY_MODE] = deploy_mode
    if scheduler_address is not None:
        data[KEY_SCHEDULER_ADDRESS] = scheduler_address
    if client_heartbeat_timeout is not None:
        data[KEY_HEARTBEAT_TIMEOUT] = format_duration(client_heartbeat_timeout)
    parse_request("validation", data)
    return data


def build_request_configmap(name: str, namespace: str, data: Mapping[str, str],
                            labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A complete request ConfigMap manifest (a dict the kubernetes client can create)."""
    validate_name(name)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**(labels or {}), REQUEST_LABEL: REQUEST_LABEL_VALUE},
        },
        "data": dict(data),
    }


# --- heartbeat ---------------------------------------------------------------------------------------


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


# --- status (written by the controller, read by the client) ------------------------------------------


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
    observed_spec: str | None = _camel("observedSpec", None)
    updated_at: str | None = _camel("updatedAt", None)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(by_alias=True, exclude_none=False), sort_keys=True,
                          separators=(",", ":"))

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

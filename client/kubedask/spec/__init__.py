"""The request schema: the one place that defines what a kubedask request ConfigMap may contain.

A request is a ConfigMap labelled ``kubedask.io/request: cluster`` (:data:`REQUEST_SELECTOR`). Both the
client (which writes requests and reads their status) and the controller (which validates and acts on
them) import this package, so it depends only on pydantic and PyYAML. Its modules, by job:

- :mod:`.names`: labels, annotations, request keys, ports, name rules and derived object names;
- :mod:`.request`: the request model and :func:`parse_request`; :mod:`.build`: :func:`build_request_data`;
- :mod:`.groups`: named worker groups (``workers.GROUP``, ``worker-template.GROUP``);
- :mod:`.service`: the scheduler Service template (``scheduler-service-template``);
- :mod:`.values`: whole numbers, choices and durations inside a request;
- :mod:`.template`: pod templates inside a request;
- :mod:`.status`: the status the controller writes (with a batch job's outcome) and the heartbeat the client
  writes;
- :mod:`.safe_yaml`: bounded parsing of untrusted YAML;
- :mod:`.errors`: :class:`RequestError` and the translation of pydantic's errors into kubedask's words.

Example::

    >>> from kubedask.spec import build_request_data, parse_request
    >>> data = build_request_data(workers=2, worker_template={
    ...     "containers": [{"name": "dask-worker", "image": "ghcr.io/dask/dask:latest"}]})
    >>> parse_request("analysis", data).workers
    2
"""

from __future__ import annotations

from .build import build_request_configmap, build_request_data
from .errors import RequestError, describe_validation_error, from_validation_error
from .groups import MAX_GROUP_LENGTH, WorkerGroup, group_key, group_problem, is_group_key, split_group_key
from .names import (
    ALL_KEYS,
    CLUSTER_NAME_LABEL,
    COMPONENT_LABEL,
    DASHBOARD_PORT,
    DEFAULT_GROUP,
    GROUP_KEYS,
    HEARTBEAT_ANNOTATION,
    JOB_COMPONENT,
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
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    MAX_NAME_LENGTH,
    PHASE_LABEL,
    REQUEST_LABEL,
    REQUEST_LABEL_VALUE,
    REQUEST_SELECTOR,
    SCHEDULER_PORT,
    STATUS_ANNOTATION,
    WORKER_GROUP_LABEL,
    group_worker_name,
    is_valid_name,
    job_name,
    name_problem,
    scheduler_name,
    validate_name,
    worker_name,
)
from .request import (
    MAX_WORKERS,
    AdaptSpec,
    ClusterRequest,
    DeployMode,
    ServiceType,
    fingerprint,
    format_duration,
    parse_duration,
    parse_request,
)
from .safe_yaml import MAX_TEMPLATE_BYTES, MAX_TEMPLATE_DEPTH, dump_template, safe_load_yaml
from .service import SERVICE_FIELDS, ServiceTemplate, parse_service_template
from .status import (
    ClusterStatus,
    Condition,
    JobState,
    JobStatus,
    Phase,
    WorkerCounts,
    format_heartbeat,
    parse_heartbeat,
    parse_status,
)
from .template import PodTemplate, is_pod_manifest, parse_template, template_from_dict, template_problem

__all__ = [
    "ALL_KEYS",
    "CLUSTER_NAME_LABEL",
    "COMPONENT_LABEL",
    "DASHBOARD_PORT",
    "DEFAULT_GROUP",
    "GROUP_KEYS",
    "HEARTBEAT_ANNOTATION",
    "JOB_COMPONENT",
    "KEY_ADAPT",
    "KEY_DEPLOY_MODE",
    "KEY_HEARTBEAT_TIMEOUT",
    "KEY_IDLE_TIMEOUT",
    "KEY_JOB_TEMPLATE",
    "KEY_JOB_TTL",
    "KEY_MAX_SURGE",
    "KEY_SCHEDULER_ADDRESS",
    "KEY_SCHEDULER_TEMPLATE",
    "KEY_SERVICE_TEMPLATE",
    "KEY_SERVICE_TYPE",
    "KEY_UPDATE_STRATEGY",
    "KEY_WORKERS",
    "KEY_WORKER_TEMPLATE",
    "MANAGED_BY_LABEL",
    "MANAGED_BY_VALUE",
    "MAX_GROUP_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_TEMPLATE_BYTES",
    "MAX_TEMPLATE_DEPTH",
    "MAX_WORKERS",
    "PHASE_LABEL",
    "REQUEST_LABEL",
    "REQUEST_LABEL_VALUE",
    "REQUEST_SELECTOR",
    "SCHEDULER_PORT",
    "SERVICE_FIELDS",
    "STATUS_ANNOTATION",
    "WORKER_GROUP_LABEL",
    "AdaptSpec",
    "ClusterRequest",
    "ClusterStatus",
    "Condition",
    "DeployMode",
    "JobState",
    "JobStatus",
    "Phase",
    "PodTemplate",
    "RequestError",
    "ServiceTemplate",
    "ServiceType",
    "WorkerCounts",
    "WorkerGroup",
    "build_request_configmap",
    "build_request_data",
    "describe_validation_error",
    "dump_template",
    "fingerprint",
    "format_duration",
    "format_heartbeat",
    "from_validation_error",
    "group_key",
    "group_problem",
    "group_worker_name",
    "is_group_key",
    "is_pod_manifest",
    "is_valid_name",
    "job_name",
    "name_problem",
    "parse_duration",
    "parse_heartbeat",
    "parse_request",
    "parse_service_template",
    "parse_status",
    "parse_template",
    "safe_load_yaml",
    "scheduler_name",
    "split_group_key",
    "template_from_dict",
    "template_problem",
    "validate_name",
    "worker_name",
]

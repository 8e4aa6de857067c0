"""The client's way out: a request's ConfigMap ``data`` and manifest built from typed values.

Everything built here is parsed back with :func:`.request.parse_request` before it is returned, so a
client learns about a bad value, in the controller's own words, before anything is written.

Example::

    >>> data = build_request_data(workers=2, worker_template={
    ...     "containers": [{"name": "dask-worker", "image": "ghcr.io/dask/dask:latest"}]})
    >>> data["workers"]
    '2'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .groups import group_key
from .names import (
    KEY_ADAPT,
    KEY_DEPLOY_MODE,
    KEY_HEARTBEAT_TIMEOUT,
    KEY_IDLE_TIMEOUT,
    KEY_JOB_TEMPLATE,
    KEY_JOB_TTL,
    KEY_SCHEDULER_ADDRESS,
    KEY_SCHEDULER_TEMPLATE,
    KEY_SERVICE_TEMPLATE,
    KEY_SERVICE_TYPE,
    KEY_WORKER_TEMPLATE,
    KEY_WORKERS,
    REQUEST_LABEL,
    REQUEST_LABEL_VALUE,
    validate_name,
)
from .request import parse_request
from .safe_yaml import dump_template
from .values import format_duration

__all__ = ["build_request_configmap", "build_request_data"]


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
    job_template: Mapping[str, Any] | str | None = None,
    job_ttl: float | int | str | None = None,
    worker_groups: Mapping[str, tuple[int, Mapping[str, Any] | str]] | None = None,
    scheduler_service_template: Mapping[str, Any] | str | None = None,
) -> dict[str, str]:
    """Build a request's ConfigMap ``data`` from typed values; unset values are left out.

    The result is validated with :func:`parse_request`, so a client learns about a bad value before
    anything is written. ``worker_groups`` maps a group name to ``(workers, template)``.
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
    if job_template is not None:
        data[KEY_JOB_TEMPLATE] = dump_template(job_template)
    if job_ttl is not None:
        data[KEY_JOB_TTL] = format_duration(job_ttl)
    if scheduler_service_template is not None:
        data[KEY_SERVICE_TEMPLATE] = dump_template(scheduler_service_template)
    for group, (count, template) in (worker_groups or {}).items():
        data[group_key(KEY_WORKERS, group)] = str(int(count))
        data[group_key(KEY_WORKER_TEMPLATE, group)] = dump_template(template)
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


"""Requests for the policy tests: one Dask pod spec, changed in one place per case."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubedask.spec import ClusterRequest, build_request_data, parse_request
from kubedask_controller.policy import Policy, PolicyViolation, admit

NAMESPACE = "team-a"
TEMPLATE_KEYS = ("worker-template", "scheduler-template")
#: Every kind of template a request carries: also a batch job's and a named worker group's.
ALL_TEMPLATE_KEYS = (*TEMPLATE_KEYS, "job-template", "worker-template.gpu")
BASE_SPEC: dict[str, Any] = {"containers": [{"name": "w", "image": "ghcr.io/dask/dask:latest"}]}


def pod(**fields: Any) -> dict[str, Any]:
    """The base pod spec with pod-level ``fields`` set."""
    return {**copy.deepcopy(BASE_SPEC), **fields}


def container(**fields: Any) -> dict[str, Any]:
    """The base pod spec whose one container has ``fields``."""
    return pod(containers=[{"name": "w", "image": "ghcr.io/dask/dask:latest", **fields}])


def security(**context: Any) -> dict[str, Any]:
    return container(securityContext=context)


def request(spec: dict[str, Any], key: str = "worker-template", annotations: dict[str, str] | None = None,
            labels: dict[str, str] | None = None, **data: Any) -> ClusterRequest:
    """A request carrying ``spec`` (and the metadata given) in the template ``key``, one of
    :data:`ALL_TEMPLATE_KEYS`; the worker template, if it is not ``key``, stays plain."""
    template: dict[str, Any] = {"spec": spec}
    metadata = {name: value for name, value in (("annotations", annotations), ("labels", labels)) if value}
    if metadata:
        template["metadata"] = metadata
    workers = data.pop("workers", 1)
    if key == "worker-template":
        values = build_request_data(worker_template=template, workers=workers, **data)
    else:
        where = {"scheduler-template": {"scheduler_template": template}, "job-template": {"job_template": template}
                 }.get(key) or {"worker_groups": {key.split(".", 1)[1]: (1, template)}}
        values = build_request_data(worker_template={"spec": BASE_SPEC}, workers=workers, **where, **data)
    return parse_request("analysis", values)


def refusal(req: ClusterRequest, policy: Policy | None = None, namespace: str = NAMESPACE) -> str:
    with pytest.raises(PolicyViolation) as err:
        admit(req, policy or Policy(), namespace)
    return str(err.value)


def assert_refused(req: ClusterRequest, where: str, path: str, value: str, key: str,
                   policy: Policy | None = None) -> None:
    """Refused with a message naming the template, the field path, the value and both policy keys."""
    message = refusal(req, policy)
    assert f"policy violation in {where}: {path} is {value}" in message, message
    assert f"policy key {key}" in message, message
    assert f"namespaces.{NAMESPACE}.{key}" in message, message


def loosened(policy: Policy | None, **values: Any) -> tuple[Policy, Policy]:
    """The same loosening given globally and for NAMESPACE only."""
    base = (policy or Policy()).model_dump(by_alias=True, exclude={"namespaces"})
    return (Policy.model_validate({**base, **values}),
            Policy.model_validate({**base, "namespaces": {NAMESPACE: values}}))

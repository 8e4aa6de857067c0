"""The scheduler's Service and PodDisruptionBudget, and the live patch of the Service. Pure.

The Service carries what ``scheduler-service-template`` sets (never its selector) and the propagated request
labels. Other parties write to a Service too (cloud controllers add annotations and finalizers), so the
Service records which label and annotation keys the controller put there (:data:`APPLIED_KEYS_ANNOTATION`,
as kubectl's last-applied does): a key dropped from the template or the request is removed, and a key the
controller never set is never touched.

The Service publishes the scheduler pod's address before the pod is Ready (``publishNotReadyAddresses``):
workers and clients connect as soon as the scheduler listens, instead of after its readiness probe has
passed and the endpoints have been written (about a second of every cold start). Readiness still gates
what the controller does (status, jobs). The scheduler pod has a fixed name, so an old and a new
scheduler are never both in the endpoints: a terminating scheduler stays there until its pod is gone, and
a worker that reaches it in that window is refused or dropped and retries, as against no endpoint.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from kubedask.spec import DASHBOARD_PORT, SCHEDULER_PORT, ClusterRequest, ServiceTemplate, scheduler_name

from .labelling import labels, object_metadata, request_labels, selector

Manifest = dict[str, Any]

#: On the Service: JSON ``{"annotations": [...], "labels": [...]}``, the keys the controller set there from
#: the request (the template's and the propagated ones; its own labels are not listed: they always stay).
APPLIED_KEYS_ANNOTATION = "kubedask.io/applied-keys"
_PORT_NAMES = {SCHEDULER_PORT: "tcp-comm", DASHBOARD_PORT: "http-dashboard"}
_PARTS = ("annotations", "labels")


def build_service(request: ClusterRequest, namespace: str, owner: Mapping[str, Any]) -> Manifest:
    """The scheduler Service, with what ``scheduler-service-template`` sets (never its selector)."""
    template = request.scheduler_service or ServiceTemplate()
    metadata = object_metadata(scheduler_name(request.name), namespace, request, "scheduler", owner)
    metadata["labels"] = {**template.labels, **metadata["labels"]}  # the controller's labels win
    metadata["annotations"] = {**template.annotations,
                               APPLIED_KEYS_ANNOTATION: _record(_applied(request, template))}
    names = {**_PORT_NAMES, **template.port_names}
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": metadata,
        "spec": {
            **{k: copy.deepcopy(v) for k, v in template.spec.items() if k != "type"},
            "type": request.scheduler_service_type,
            "selector": selector(request.name, "scheduler"),
            "publishNotReadyAddresses": True,
            "ports": [{"name": names[port], "port": port, "targetPort": port, "protocol": "TCP"}
                      for port in (SCHEDULER_PORT, DASHBOARD_PORT)],
        },
    }


def _applied(request: ClusterRequest, template: ServiceTemplate) -> dict[str, set[str]]:
    own = labels(request.name, "scheduler")
    return {"annotations": set(template.annotations) - {APPLIED_KEYS_ANNOTATION},
            "labels": {*template.labels, *request_labels(request)} - set(own)}


def _record(applied: Mapping[str, set[str]]) -> str:
    return json.dumps({part: sorted(applied[part]) for part in _PARTS}, separators=(",", ":"))


def recorded_keys(service: Mapping[str, Any]) -> dict[str, set[str]]:
    """The label and annotation keys the controller recorded on ``service`` as its own; none if there is no
    record (a Service made by an older controller) or it is not what the controller writes."""
    raw = ((service.get("metadata") or {}).get("annotations") or {}).get(APPLIED_KEYS_ANNOTATION)
    try:
        record = json.loads(raw) if raw else {}
    except ValueError:
        record = {}
    if not isinstance(record, dict):
        record = {}
    return {part: {k for k in record.get(part) or [] if isinstance(k, str)}
            if isinstance(record.get(part), list) else set() for part in _PARTS}


def service_patch(request: ClusterRequest, service: Mapping[str, Any]) -> Manifest | None:
    """A merge patch bringing the existing Service to what the request asks (a live change), or None.

    Labels and annotations the request sets are added or changed; those the controller set earlier (by the
    record) and the request no longer sets are removed; others on the Service are left alone.
    ``publishNotReadyAddresses`` is set on a Service an older controller made without it;
    ``loadBalancerSourceRanges`` follows the template (removed with it); ``externalTrafficPolicy`` is set
    when the template gives it (the API server defaults it otherwise); port names are changed in place,
    keeping each port's nodePort."""
    want = build_service(request, "", {})
    metadata, spec = service.get("metadata") or {}, service.get("spec") or {}
    before = recorded_keys(service)
    own = set(labels(request.name, "scheduler"))
    patch: dict[str, Any] = {}
    for part in _PARTS:
        have, wanted = metadata.get(part) or {}, want["metadata"][part]
        changed: dict[str, str | None] = {k: v for k, v in wanted.items() if have.get(k) != v}
        # A merge patch deletes a key given as null; only keys the controller itself set go.
        changed.update({k: None for k in before[part] - set(wanted) - own - {APPLIED_KEYS_ANNOTATION}
                        if k in have})
        if changed:
            patch.setdefault("metadata", {})[part] = changed
    changes: dict[str, Any] = {}
    if spec.get("type") != want["spec"]["type"]:
        changes["type"] = want["spec"]["type"]
    # A Service made by an older controller lacks it (the API server omits false).
    if bool(spec.get("publishNotReadyAddresses")) != want["spec"]["publishNotReadyAddresses"]:
        changes["publishNotReadyAddresses"] = want["spec"]["publishNotReadyAddresses"]
    if spec.get("loadBalancerSourceRanges") != want["spec"].get("loadBalancerSourceRanges"):
        changes["loadBalancerSourceRanges"] = want["spec"].get("loadBalancerSourceRanges")
    policy = want["spec"].get("externalTrafficPolicy")
    if policy is not None and spec.get("externalTrafficPolicy") != policy:
        changes["externalTrafficPolicy"] = policy
    names = {p["port"]: p["name"] for p in want["spec"]["ports"]}
    ports = [dict(p) for p in spec.get("ports") or []]
    if any(p.get("port") in names and p.get("name") != names[p["port"]] for p in ports):
        changes["ports"] = [{**p, "name": names.get(p.get("port"), p.get("name"))} for p in ports]
    if changes:
        patch["spec"] = changes
    return patch or None


def build_pdb(request: ClusterRequest, namespace: str, owner: Mapping[str, Any]) -> Manifest:
    return {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": object_metadata(scheduler_name(request.name), namespace, request, "scheduler", owner),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": selector(request.name, "scheduler")}},
    }

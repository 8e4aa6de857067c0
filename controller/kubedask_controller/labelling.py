"""What every owned object is labelled with and owned by: the controller's labels and selectors, the owner
reference, and the request labels that are propagated. Pure.

Only request labels under :data:`PROPAGATED_LABEL_PREFIX` (``user.kubedask.io/``) are propagated, key and
value unchanged, to the scheduler pod, worker pods, job pod, Service and PodDisruptionBudget. Not every
request label, because a label on a pod is a grant in many clusters: NetworkPolicies allow traffic by pod
label, Services route to whatever their selector matches, and admission webhooks act on labels (Azure
Workload Identity injects a cloud token into pods labelled ``azure.workload.identity/use``). A user who may
only write ConfigMaps must not be able to pick those through the controller. Keys under the prefix are in
a domain the controller owns, so an admin reading ``user.kubedask.io/team`` on a pod knows a request chose
it and never writes a policy that trusts it. GitOps and packaging tools also label what they apply (Argo CD's
``app.kubernetes.io/instance``, Helm's, kustomize's ``commonLabels``); copied to the pods, those would make
the tools claim and prune them. The controller's own labels always win.

Example::

    >>> propagated_labels({"user.kubedask.io/team": "a", "team": "b", "kubedask.io/request": "cluster"})
    {'user.kubedask.io/team': 'a'}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kubedask.spec import (
    CLUSTER_NAME_LABEL,
    COMPONENT_LABEL,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    ClusterRequest,
    PodTemplate,
)
from kubedask.spec.names import PROPAGATED_LABEL_PREFIX
from pydantic import Field

__all__ = ["MAX_PROPAGATED_LABELS", "PROPAGATED_LABEL_PREFIX", "LabelledRequest", "labelled", "labels",
           "object_metadata", "owner_reference", "propagated_labels", "request_labels", "selector", "selector_string"]

#: At most this many request labels are copied (the first ones by key): the API server bounds no object's
#: label count, and a request's labels are written onto every one of its pods.
MAX_PROPAGATED_LABELS = 32
# Label syntax (the API server validated the request's labels; checked again because they are copied onto
# objects of other kinds, and a refused create would block the whole cluster).
_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def labels(cluster: str, component: str) -> dict[str, str]:
    """Labels on every owned object: the recommended app.kubernetes.io set plus the classic dask ones."""
    return {
        "app.kubernetes.io/name": "dask",
        "app.kubernetes.io/instance": cluster,
        "app.kubernetes.io/component": component,
        MANAGED_BY_LABEL: MANAGED_BY_VALUE,
        "app": "dask",
        CLUSTER_NAME_LABEL: cluster,
        COMPONENT_LABEL: component,
    }


def selector(cluster: str, component: str | None = None) -> dict[str, str]:
    sel = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, CLUSTER_NAME_LABEL: cluster}
    if component:
        sel[COMPONENT_LABEL] = component
    return sel


def selector_string(cluster: str, component: str | None = None) -> str:
    return ",".join(f"{k}={v}" for k, v in selector(cluster, component).items())


def owner_reference(request_name: str, request_uid: str) -> dict[str, Any]:
    # No blockOwnerDeletion: setting it needs extra RBAC where OwnerReferencesPermissionEnforcement is
    # enabled, and background garbage collection is all a request's deletion needs.
    return {"apiVersion": "v1", "kind": "ConfigMap", "name": request_name, "uid": request_uid,
            "controller": True}


def propagated_labels(request_labels: Mapping[str, Any] | None) -> dict[str, str]:
    """The request ConfigMap's labels that go onto every owned object: those under the prefix that are valid
    labels, at most :data:`MAX_PROPAGATED_LABELS` of them."""
    kept = {}
    for key, value in (request_labels or {}).items():
        name = str(key).removeprefix(PROPAGATED_LABEL_PREFIX)
        if (str(key).startswith(PROPAGATED_LABEL_PREFIX) and _NAME.match(name) and isinstance(value, str)
                and _VALUE.match(value)):
            kept[str(key)] = value
    return dict(sorted(kept.items())[:MAX_PROPAGATED_LABELS])


class LabelledRequest(ClusterRequest):
    """A request with the labels its ConfigMap propagates (see :func:`labelled`)."""

    labels: dict[str, str] = Field(default_factory=dict)


def labelled(request: ClusterRequest, configmap_labels: Mapping[str, Any] | None) -> ClusterRequest:
    """``request`` carrying the propagated labels of its ConfigMap's current ``configmap_labels``.

    Kept beside the request rather than in its data: labels are not part of ``observedSpec``, and an edit
    of them restarts nothing (new pods get them, the Service is patched)."""
    found = propagated_labels(configmap_labels)
    if found == request_labels(request):
        return request
    # Fields as validated already: no second validation of the templates on every pass.
    base = {field: getattr(request, field) for field in ClusterRequest.model_fields}
    return LabelledRequest.model_construct(**base, labels=found) if found else ClusterRequest.model_construct(**base)


def request_labels(request: ClusterRequest) -> dict[str, str]:
    """The propagated labels ``request`` carries (none unless it went through :func:`labelled`)."""
    return dict(request.labels) if isinstance(request, LabelledRequest) else {}


def object_metadata(name: str, namespace: str, request: ClusterRequest, component: str,
                    owner: Mapping[str, Any], template: PodTemplate | None = None) -> dict[str, Any]:
    """An owned object's metadata: the template's labels, then the propagated request labels, then the
    controller's (each later one wins), the template's annotations, and the owner reference."""
    return {
        "name": name,
        "namespace": namespace,
        "labels": {**(template.labels if template else {}), **request_labels(request),
                   **labels(request.name, component)},
        "annotations": dict(template.annotations) if template else {},
        "ownerReferences": [dict(owner)],
    }

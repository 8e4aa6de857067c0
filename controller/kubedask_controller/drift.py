"""What a running cluster runs compared with what its request asks for now, for the changes that are not
applied by creating or deleting pods. Pure.

- The Service's type and ``scheduler-service-template`` fields are applied live
  (:func:`service_builders.service_patch`).
- The scheduler pod is never restarted by the controller (that would lose every task and all data of a
  running cluster): its creation is stamped with a hash of its template (:func:`stamp`), and a scheduler
  whose stamp differs from the template the request has now is reported as needing a restart
  (:func:`scheduler_restart_message`); the status keeps naming the spec the scheduler was made from.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from kubedask.spec import ClusterRequest, scheduler_name

#: On the scheduler pod: a hash of the template it was made from.
TEMPLATE_HASH_ANNOTATION = "kubedask.io/template-hash"
#: On the scheduler pod: the fingerprint of the request data it was built from.
SPEC_ANNOTATION = "kubedask.io/spec"

Manifest = dict[str, Any]


def template_hash(request: ClusterRequest) -> str:
    """A hash of what the scheduler pod is made from: the scheduler template as admitted (policy defaults
    filled in), or the worker template it is derived from. The request's inputs, not the built pod, so a
    controller upgrade that builds pods differently never flags every running scheduler."""
    source = request.scheduler_template or request.worker_template
    payload = {"derived": request.scheduler_template is None, "template": source.model_dump(mode="json")}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def stamp(manifest: Mapping[str, Any], request: ClusterRequest) -> Manifest:
    """``manifest`` (the scheduler pod) with the template hash and the request fingerprint it is made from."""
    stamped: Manifest = copy.deepcopy(dict(manifest))
    annotations = stamped["metadata"].setdefault("annotations", {})
    annotations[TEMPLATE_HASH_ANNOTATION] = template_hash(request)
    annotations[SPEC_ANNOTATION] = request.fingerprint
    return stamped


def built_from(pod: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """(template hash, request fingerprint) a pod was stamped with; (None, None) for an unstamped pod
    (made by an older controller: nothing is known about it, and nothing is claimed)."""
    annotations = ((pod or {}).get("metadata") or {}).get("annotations") or {}
    return annotations.get(TEMPLATE_HASH_ANNOTATION), annotations.get(SPEC_ANNOTATION)


def scheduler_restart_message(request: ClusterRequest, running: Mapping[str, Any] | None) -> str | None:
    """Why the running scheduler pod is not what the request asks for, and what to do; None if it is
    (or if it is unknown: unstamped)."""
    running_hash, _ = built_from(running)
    if running_hash is None or running_hash == template_hash(request):
        return None
    changed = ("the scheduler template changed" if request.scheduler_template is not None else
               "the worker template changed, and the scheduler pod is made from it (no scheduler-template)")
    return (f"{changed}, but the running scheduler keeps the old one: restarting it would "
            f"lose the cluster's tasks and data. To apply it, delete the scheduler pod when the cluster is idle "
            f"(kubectl delete pod {scheduler_name(request.name)}; the controller recreates it and the workers "
            f"reconnect) or create a new cluster")

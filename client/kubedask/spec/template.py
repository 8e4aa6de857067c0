"""Pod templates in a request: a Pod manifest or a bare pod spec, normalised to :class:`PodTemplate`.

Example::

    >>> parse_template("containers: [{name: w, image: img}]").spec["containers"][0]["image"]
    'img'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .errors import RequestError
from .names import KEY_WORKER_TEMPLATE
from .safe_yaml import safe_load_yaml


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PodTemplate(_Frozen):
    """A normalised pod template: the template's labels/annotations and its pod spec (plain dicts)."""

    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    #: ``metadata.namespace`` as written in the template (the policy refuses any value).
    namespace: str | None = None
    spec: dict[str, Any]


def parse_template(text: str, key: str = KEY_WORKER_TEMPLATE) -> PodTemplate:
    """Parse a template: a Pod manifest (``kind: Pod``, ``metadata``, ``spec``) or a bare pod spec."""
    if not text.strip():
        raise RequestError(f"key {key!r} is empty: give a Pod manifest or a bare pod spec.", key=key)
    doc = safe_load_yaml(text, key)
    return template_from_dict(doc, key)


def template_from_dict(doc: Any, key: str = KEY_WORKER_TEMPLATE) -> PodTemplate:
    """Normalise an already-parsed template (also used by the client for ``from_dict``)."""
    try:
        metadata, spec = _pod_parts(doc)
    except _TemplateProblem as problem:
        raise RequestError(f"key {key!r}: {problem}.", key=key) from None
    labels = _string_map(metadata.get("labels"), key, "metadata.labels")
    annotations = _string_map(metadata.get("annotations"), key, "metadata.annotations")
    namespace = metadata.get("namespace")
    return PodTemplate(labels=labels, annotations=annotations,
                       namespace=str(namespace) if namespace is not None else None, spec=spec)


def is_pod_manifest(doc: Mapping[str, Any]) -> bool:
    """Whether a template is a Pod manifest (``kind``/``metadata``/``spec``) rather than a bare pod spec."""
    return "spec" in doc or "kind" in doc or "metadata" in doc


def template_problem(doc: Any) -> str | None:
    """Why ``doc`` is not a usable pod template (a phrase without the key, for any caller to frame), or
    None when it is. The controller and the client refuse templates by this one rule."""
    try:
        _pod_parts(doc)
    except _TemplateProblem as problem:
        return str(problem)
    return None


class _TemplateProblem(ValueError):
    pass


def _pod_parts(doc: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The template's metadata and pod spec; :class:`_TemplateProblem` if it cannot run a Dask process."""
    if not isinstance(doc, dict):
        raise _TemplateProblem(
            f"the template must be a YAML mapping (a Pod manifest or a pod spec), got {type(doc).__name__}")
    if is_pod_manifest(doc):
        kind = doc.get("kind", "Pod")
        if kind != "Pod":
            raise _TemplateProblem(f"the template has kind {kind!r}; only 'Pod' (or a bare pod spec) is accepted")
        api_version = doc.get("apiVersion", "v1")
        if api_version != "v1":
            raise _TemplateProblem(f"the template has apiVersion {api_version!r}; pods are 'v1'")
        metadata = doc.get("metadata") or {}
        spec = doc.get("spec")
        if not isinstance(metadata, dict):
            raise _TemplateProblem("'metadata' must be a mapping")
    else:
        metadata, spec = {}, doc
    if not isinstance(spec, dict):
        raise _TemplateProblem("the pod 'spec' must be a mapping with 'containers'")
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise _TemplateProblem(
            "the pod spec has no containers: it needs 'containers' with at least one entry, "
            "e.g. [{name: dask-worker, image: ghcr.io/dask/dask:latest}]")
    for i, container in enumerate(containers):
        if not isinstance(container, dict):
            raise _TemplateProblem(f"containers[{i}] must be a mapping")
        if not isinstance(container.get("image"), str) or not container["image"].strip():
            raise _TemplateProblem(f"containers[{i}] has no 'image'")
        for field in ("args", "command"):
            value = container.get(field)
            if value is not None and not (isinstance(value, list) and
                                          all(isinstance(a, str | int | float) for a in value)):
                raise _TemplateProblem(f"containers[{i}].{field} must be a list of strings")
    return metadata, spec


def _string_map(value: Any, key: str, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError(f"key {key!r}: {where} must be a mapping.", key=key)
    return {str(k): str(v) for k, v in value.items()}

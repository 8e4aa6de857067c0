"""Pod templates in a request: a Pod manifest or a bare pod spec, normalised to :class:`PodTemplate`.

Example::

    >>> parse_template("containers: [{name: w, image: img}]").spec["containers"][0]["image"]
    'img'
"""

from __future__ import annotations

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
    spec = check_pod_spec(spec, key)
    labels = _string_map(metadata.get("labels"), key, "metadata.labels")
    annotations = _string_map(metadata.get("annotations"), key, "metadata.annotations")
    namespace = metadata.get("namespace")
    return PodTemplate(labels=labels, annotations=annotations,
                       namespace=str(namespace) if namespace is not None else None, spec=spec)


def check_pod_spec(spec: Any, key: str = KEY_WORKER_TEMPLATE) -> dict[str, Any]:
    """Return ``spec`` if it can run a Dask process; refuse one that is no mapping, has no containers, a
    container without an image, or ``args``/``command`` that are not lists of strings."""
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
    return spec


def _string_map(value: Any, key: str, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError(f"key {key!r}: {where} must be a mapping.", key=key)
    return {str(k): str(v) for k, v in value.items()}

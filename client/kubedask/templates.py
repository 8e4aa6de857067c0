# mypy: disallow-untyped-calls=False
# (distributed and the kubernetes config loaders have no type hints; calling them is the point here.)
"""Pod templates: ``make_pod_spec`` and loading/cleaning templates given as V1Pod, dict or YAML path.

Templates travel to the controller as YAML text inside the request ConfigMap, so everything here works on
plain manifest dicts (camelCase keys, as ``kubectl`` shows them). A ``V1Pod`` is converted on the way in;
``make_pod_spec`` still returns a ``V1Pod`` like the classic function did.

Example:
    >>> pod = make_pod_spec(image="ghcr.io/dask/dask:latest", memory_limit="1G", cpu_request="250m")
    >>> pod.spec.containers[0].args[:3]
    ['dask', 'worker', '$(DASK_SCHEDULER_ADDRESS)']
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import dask.config
import yaml
from kubernetes import client

from . import config as kconfig
from .spec import MAX_TEMPLATE_BYTES, is_pod_manifest, template_problem

WORKER_CONTAINER_NAME = "dask-worker"


# ``client.V1Pod`` named, not touched: the kubernetes client loads its models on first attribute access, and
# V1Pod's tree of models is ~0.25 s of a fresh ``from kubedask import KubeCluster`` (from_yaml and dict
# templates never need it).
PodTemplate = Union["client.V1Pod", Mapping[str, Any], str, "os.PathLike[str]"]


class TemplateError(ValueError):
    """A pod template could not be read or does not look like a pod."""


def make_pod_spec(
    image: str,
    labels: Mapping[str, str] | None = None,
    threads_per_worker: int = 1,
    env: Mapping[str, Any] | None = None,
    extra_container_config: Mapping[str, Any] | None = None,
    extra_pod_config: Mapping[str, Any] | None = None,
    resources: str | None = None,
    memory_limit: int | float | str | None = None,
    memory_request: int | float | str | None = None,
    cpu_limit: int | float | str | None = None,
    cpu_request: int | float | str | None = None,
    gpu_limit: int | str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> client.V1Pod:
    """Create a worker pod template, with the classic dask-kubernetes semantics.

    The container runs ``dask worker $(DASK_SCHEDULER_ADDRESS) --nthreads N --death-timeout 60
    --no-dashboard`` plus ``--memory-limit`` / ``--resources`` when given; ``memory_limit``,
    ``cpu_limit`` and ``gpu_limit`` become container limits (``nvidia.com/gpu`` for GPUs), the
    ``*_request`` values requests. ``extra_container_config`` and ``extra_pod_config`` use Kubernetes
    (camelCase) field names and are deep-merged: dicts merge, lists are appended to, anything else
    replaces.

    Deliberate differences from the classic function: the command is ``dask worker`` (distributed no
    longer installs a ``dask-worker`` script); ``imagePullPolicy`` is ``IfNotPresent`` (a ``:latest`` tag
    otherwise means ``Always``, which fails wherever the image was loaded locally or no registry is
    reachable); and ``--no-dashboard``: each worker building its own Bokeh dashboard costs it about 0.7 s
    of CPU at start, for pages nobody reaches through the scheduler's Service. The worker's HTTP server
    still answers ``/health`` and ``/metrics`` (Prometheus); the scheduler's dashboard shows every worker.
    Add ``--dashboard`` through ``extra_container_config={"args": ["--dashboard"]}`` to get it back.

    Example:
        >>> pod = make_pod_spec(image="ghcr.io/dask/dask:latest", memory_limit="4G", memory_request="4G",
        ...                     cpu_limit=1, cpu_request=1)
        >>> pod.spec.containers[0].resources.limits
        {'cpu': '1', 'memory': '4G'}
    """
    args = [
        "dask",
        "worker",
        "$(DASK_SCHEDULER_ADDRESS)",
        "--nthreads",
        str(threads_per_worker),
        "--death-timeout",
        "60",
        "--no-dashboard",
    ]
    if memory_limit:
        args += ["--memory-limit", str(memory_limit)]
    if resources:
        args += ["--resources", str(resources)]

    limits: dict[str, str] = {}
    requests: dict[str, str] = {}
    if cpu_request:
        requests["cpu"] = str(cpu_request)
    if memory_request:
        requests["memory"] = str(memory_request)
    if cpu_limit:
        limits["cpu"] = str(cpu_limit)
    if gpu_limit:
        limits["nvidia.com/gpu"] = str(gpu_limit)
    if memory_limit:
        limits["memory"] = str(memory_limit)

    container: dict[str, Any] = {
        "name": WORKER_CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "env": [{"name": k, "value": str(v)} for k, v in (env or {}).items()],
        "resources": {"limits": limits, "requests": requests},
    }
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    _merge_extra(container, extra_container_config or {}, client.V1Container, "extra_container_config")
    _merge_extra(pod_spec, extra_pod_config or {}, client.V1PodSpec, "extra_pod_config")

    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"labels": dict(labels or {}), "annotations": dict(annotations or {})},
        "spec": pod_spec,
    }
    pod = client.V1Pod.from_dict(manifest)
    assert pod is not None  # from_dict returns None only for None input
    return pod


def _is_v1pod(template: Any) -> bool:
    # Without loading the model: a V1Pod can only exist once its module has been imported.
    module = sys.modules.get("kubernetes.client.models.v1_pod")
    return module is not None and isinstance(template, module.V1Pod)


def _merge_extra(target: dict[str, Any], extra: Mapping[str, Any], model: type[Any], what: str) -> None:
    allowed = set(model.attribute_map.values())
    for key, value in extra.items():
        if key not in allowed:
            raise ValueError(f"{what}: {key!r} is not a field of {model.__name__}; one of {sorted(allowed)}")
        target[key] = merge(target.get(key), copy.deepcopy(value))


def merge(current: Any, extra: Any) -> Any:
    """Deep-merge ``extra`` into ``current`` the classic way: dicts merge, lists append, else replace.

    Example:
        >>> merge({"a": {"b": 1}, "l": [1]}, {"a": {"c": 2}, "l": [2]})
        {'a': {'b': 1, 'c': 2}, 'l': [1, 2]}
    """
    if isinstance(current, dict) and isinstance(extra, Mapping):
        merged = dict(current)
        for key, value in extra.items():
            merged[key] = merge(merged.get(key), value)
        return merged
    if isinstance(current, list) and isinstance(extra, list):
        return current + extra
    return extra


def load_pod_template(template: PodTemplate | None) -> dict[str, Any] | None:
    """Return a template as a Pod manifest dict, from a ``V1Pod``, a dict, or a path to a YAML file.

    Like the classic KubeCluster, ``$VAR`` / ``${VAR}`` in a YAML file are expanded from the environment.
    ``None`` and ``{}`` mean "no template".

    Example:
        >>> load_pod_template({"spec": {"containers": [{"image": "ghcr.io/dask/dask:latest"}]}})["kind"]
        'Pod'
    """
    if template is None:
        return None
    if _is_v1pod(template):
        data: Any = client.ApiClient().sanitize_for_serialization(template)
    elif isinstance(template, str | os.PathLike):
        data = dask.config.expand_environment_variables(read_yaml(template))
    elif isinstance(template, Mapping):
        data = copy.deepcopy(dict(template))
    else:
        raise TemplateError(
            f"a pod template must be a kubernetes.client.V1Pod, a dict or a path to a YAML file, "
            f"not {type(template).__name__}"
        )
    if not data:
        return None
    return normalize_pod(data)


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML file safely, refusing files larger than :data:`MAX_TEMPLATE_BYTES`."""
    path = Path(path).expanduser()
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_TEMPLATE_BYTES + 1)
    except OSError as e:
        raise TemplateError(f"cannot read pod template {str(path)!r}: {e.strerror}") from e
    if len(raw) > MAX_TEMPLATE_BYTES:
        raise TemplateError(f"pod template {str(path)!r} is larger than {MAX_TEMPLATE_BYTES} bytes")
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise TemplateError(f"pod template {str(path)!r} is not valid YAML: {e}") from e


def normalize_pod(data: Any) -> dict[str, Any]:
    """Check that ``data`` looks like a Pod (or a bare pod spec) and return a Pod manifest.

    Container names default to ``dask-<index>`` as in the classic KubeCluster. Name, generateName and
    namespace are dropped: the controller names pods after the cluster and keeps them in the request's
    namespace (the classic KubeCluster silently overwrote them too).

    Example:
        >>> normalize_pod({"containers": [{"image": "i"}]})["spec"]["containers"][0]["name"]
        'dask-0'
    """
    if not isinstance(data, Mapping):
        raise TemplateError(f"a pod template must be a mapping, not {type(data).__name__}")
    pod = copy.deepcopy(dict(data))
    # The schema's rule, so a template the controller would refuse is refused here, before any request.
    problem = template_problem(pod)
    if problem is not None:
        raise TemplateError(f"invalid pod template: {problem}")
    if not is_pod_manifest(pod):
        pod = {"spec": pod}
    for i, container in enumerate(pod["spec"]["containers"]):
        container.setdefault("name", f"dask-{i}")
    pod["apiVersion"] = pod.get("apiVersion", "v1")
    pod["kind"] = "Pod"
    metadata = dict(pod.get("metadata") or {})
    for key in ("name", "generateName", "namespace"):
        metadata.pop(key, None)
    pod["metadata"] = metadata
    pod.pop("status", None)
    return pod


def add_env(pod: dict[str, Any], env: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``pod`` with ``env`` appended to the first container's environment.

    Example:
        >>> add_env({"spec": {"containers": [{"name": "c"}]}}, {"A": 1})["spec"]["containers"][0]["env"]
        [{'name': 'A', 'value': '1'}]
    """
    pod = copy.deepcopy(pod)
    if env:
        container = pod["spec"]["containers"][0]
        container["env"] = list(container.get("env") or []) + [
            {"name": str(k), "value": str(v)} for k, v in env.items()
        ]
    return pod


def required_affinity(pod: dict[str, Any], pod_type: str) -> dict[str, Any]:
    """Return a copy of ``pod`` that may only run on nodes labelled ``k8s.dask.org/node-purpose=<type>``.

    The controller adds the classic *preferred* affinity itself; this is for
    ``apply_default_affinity="required"``.
    """
    pod = copy.deepcopy(pod)
    node_affinity = pod["spec"].setdefault("affinity", {}).setdefault("nodeAffinity", {})
    required = node_affinity.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    required.setdefault("nodeSelectorTerms", []).append(
        {"matchExpressions": [{"key": "k8s.dask.org/node-purpose", "operator": "In", "values": [pod_type]}]}
    )
    return pod


def template_from_config(template: PodTemplate | None, pod_type: str) -> dict[str, Any] | None:
    """A KubeCluster template: the explicit one, else ``kubernetes.<type>-template``, else ``...-template-path``."""
    loaded = load_pod_template(template)
    if loaded is not None:
        return loaded
    inline = kconfig.get(f"{pod_type}-template")
    if inline:
        return load_pod_template(dask.config.expand_environment_variables(inline))
    path = kconfig.get(f"{pod_type}-template-path")
    if path:
        return load_pod_template(str(path))
    return None

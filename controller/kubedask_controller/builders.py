"""Pure functions: a validated request -> the pods the controller owns (plain dicts): the scheduler and the
workers, their names, environment, classic defaults and probes. The scheduler's Service and PDB are built
in :mod:`service_builders`, the labels and owner of every object in :mod:`labelling`.

Nothing here talks to the API; the handlers decide when to create what.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from collections.abc import Mapping
from typing import Any

from kubedask.spec import (
    DASHBOARD_PORT,
    DEFAULT_GROUP,
    SCHEDULER_PORT,
    WORKER_GROUP_LABEL,
    ClusterRequest,
    PodTemplate,
    group_worker_name,
    scheduler_name,
)

# Re-exported: the labels, selectors and owner of every object (labelling) and the scheduler's Service and
# PDB (service_builders) were built here before, and callers still reach them as ``builders.X``.
from .labelling import labels, object_metadata, owner_reference, selector, selector_string
from .service_builders import build_pdb, build_service, service_patch

__all__ = ["DEFAULT_DEATH_TIMEOUT", "SCHEDULER_HTTP_ROUTES", "SCHEDULER_READINESS_PROBE",
           "SCHEDULER_STARTUP_PROBE", "SUFFIX_LENGTH", "TEMPLATE_ANNOTATION", "build_pdb",
           "build_scheduler_pod", "build_service", "build_worker_pod", "dashboard_address", "labels",
           "new_worker_name", "object_metadata", "owner_reference", "scheduler_address", "selector",
           "selector_string", "service_patch", "template_hash"]

Manifest = dict[str, Any]

# Same alphabet as Kubernetes' generateName suffixes: no vowels (no accidental words), no look-alikes.
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
SUFFIX_LENGTH = 5
DEFAULT_DEATH_TIMEOUT = "60"
# The scheduler's HTTP API (retire_workers, adaptive_target, check_idle) is off by default in
# distributed; the controller needs it, so the scheduler container gets it switched on.
SCHEDULER_HTTP_ROUTES = (
    "['distributed.http.scheduler.api', 'distributed.http.scheduler.prometheus', "
    "'distributed.http.scheduler.info', 'distributed.http.scheduler.json', 'distributed.http.health', "
    "'distributed.http.proxy', 'distributed.http.statics']"
)


def new_worker_name(cluster: str, rng: random.Random | None = None, group: str = DEFAULT_GROUP) -> str:
    """``NAME-worker-xxxxx`` (``NAME-worker-GROUP-xxxxx`` in a named group); the controller picks the name so
    it can also be the Dask worker name."""
    rng = rng or _rng
    return group_worker_name(cluster, group, "".join(rng.choice(_SUFFIX_ALPHABET) for _ in range(SUFFIX_LENGTH)))


_rng = random.SystemRandom()


#: On worker pods: a hash of the group template they were made from (a rolling update replaces the others).
TEMPLATE_ANNOTATION = "kubedask.io/template-hash"


def template_hash(template: PodTemplate) -> str:
    """A hash of a worker template as admitted: the request's input, not the built pod, so a controller
    upgrade that builds pods differently never replaces every running worker."""
    canonical = json.dumps(template.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def scheduler_address(request: ClusterRequest, namespace: str) -> str:
    if request.deploy_mode == "local":
        assert request.scheduler_address is not None  # guaranteed by the schema
        return request.scheduler_address
    return f"tcp://{scheduler_name(request.name)}.{namespace}.svc.cluster.local:{SCHEDULER_PORT}"


def dashboard_address(request: ClusterRequest, namespace: str) -> str | None:
    if request.deploy_mode == "local":
        return None
    return f"http://{scheduler_name(request.name)}.{namespace}.svc.cluster.local:{DASHBOARD_PORT}"


def build_worker_pod(request: ClusterRequest, namespace: str, pod_name: str, owner: Mapping[str, Any],
                     group: str = DEFAULT_GROUP) -> Manifest:
    template = request.group_template(group)
    spec = _pod_spec(template, "worker", scheduler_address(request, namespace))
    main = spec["containers"][0]
    if not main.get("command") and not main.get("args"):
        # As the classic make_pod_spec did: a bare image runs a worker (address from the environment).
        # ``dask worker``, not ``dask-worker``: current distributed images no longer ship the dashed script.
        # No worker dashboard, as make_pod_spec: building it costs each worker ~0.7 s of CPU at start, and
        # its HTTP server still answers /health and /metrics.
        main["args"] = ["dask", "worker", "--no-dashboard"]
    if _runs_dask(main, "worker"):
        args = [str(a) for a in main.get("args") or []]
        if not _has_flag(args, "--name"):
            args += ["--name", pod_name]
        if not _has_flag(args, "--death-timeout"):
            args += ["--death-timeout", DEFAULT_DEATH_TIMEOUT]
        main["args"] = args
    metadata = object_metadata(pod_name, namespace, request, "worker", owner, template)
    metadata["labels"][WORKER_GROUP_LABEL] = group
    metadata["annotations"][TEMPLATE_ANNOTATION] = template_hash(template)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def build_scheduler_pod(request: ClusterRequest, namespace: str, owner: Mapping[str, Any]) -> Manifest:
    template = request.scheduler_template
    if template is None:
        template = _scheduler_from_worker_template(request.worker_template)
    spec = _pod_spec(template, "scheduler", scheduler_address(request, namespace))
    main = spec["containers"][0]
    _set_default_env(main, "DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES", SCHEDULER_HTTP_ROUTES)
    ports = main.setdefault("ports", [])
    known = {p.get("containerPort") for p in ports if isinstance(p, dict)}
    for port, port_name in ((SCHEDULER_PORT, "tcp-comm"), (DASHBOARD_PORT, "http-dashboard")):
        if port not in known:
            ports.append({"containerPort": port, "name": port_name, "protocol": "TCP"})
    _set_default_probes(main)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": object_metadata(scheduler_name(request.name), namespace, request, "scheduler",
                                        owner, template),
            "spec": spec}


#: The scheduler is ready once its HTTP server answers (it starts listening on 8786 in the same instant):
#: checked every second from the container's start, so a cold start does not wait for a probe period; once
#: it has answered, a gentler readiness probe. The startup window is long (a classic image may pip-install
#: ``EXTRA_PIP_PACKAGES`` first) because a startup probe that gives up restarts the container.
#: ``/health`` rather than a TCP probe of 8786: a bare connection logs a failed handshake in the scheduler.
SCHEDULER_STARTUP_PROBE = {"httpGet": {"path": "/health", "port": DASHBOARD_PORT},
                           "periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 1800}
SCHEDULER_READINESS_PROBE = {"httpGet": {"path": "/health", "port": DASHBOARD_PORT},
                             "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 3}


def _set_default_probes(main: dict[str, Any]) -> None:
    """The scheduler's probes where its template has none. A template with its own readiness probe gets no
    startup probe: that would hold its probe back behind one it did not ask for."""
    if "readinessProbe" not in main:
        main.setdefault("startupProbe", copy.deepcopy(SCHEDULER_STARTUP_PROBE))
        main["readinessProbe"] = copy.deepcopy(SCHEDULER_READINESS_PROBE)


def _scheduler_from_worker_template(worker: PodTemplate) -> PodTemplate:
    """The classic behaviour: the worker template with the main container running the scheduler."""
    spec = copy.deepcopy(worker.spec)
    main = spec["containers"][0]
    old_name = main.get("name")
    main["name"] = "dask-scheduler" if old_name in (None, "dask-worker", "dask") else old_name
    # Per-container annotations (``container.apparmor.security.beta.kubernetes.io/NAME``) follow the
    # rename: the API server refuses a pod whose annotation names a container it does not have.
    annotations = {_renamed(key, old_name, main["name"]): value for key, value in worker.annotations.items()}
    command = [str(c) for c in main.get("command") or []]
    if any("worker" in c for c in command):
        main.pop("command")
    main["args"] = ["dask", "scheduler", "--port", str(SCHEDULER_PORT), "--dashboard-address",
                    f":{DASHBOARD_PORT}"]
    # Worker-only probes would fail on a scheduler.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        main.pop(probe, None)
    return PodTemplate(labels=worker.labels, annotations=annotations, spec=spec)


def _renamed(annotation: str, old: Any, new: str) -> str:
    if old and annotation.startswith("container.") and annotation.endswith(f"/{old}"):
        return annotation.removesuffix(str(old)) + new
    return annotation


def _pod_spec(template: PodTemplate, component: str, address: str) -> dict[str, Any]:
    spec = copy.deepcopy(template.spec)
    spec.setdefault("restartPolicy", "Never")
    # Dask needs no API token, and a mounted one lets whoever runs code on the cluster call the API server
    # as the pod's service account. A template may ask for it when the policy allows (allowServiceAccountToken).
    spec.setdefault("automountServiceAccountToken", False)
    for group in ("initContainers", "containers"):
        for container in spec.get(group) or []:
            _set_env(container, "DASK_SCHEDULER_ADDRESS", address)
            # Kubernetes defaults ':latest' images to Always; clusters without a registry (and most
            # clusters, for Dask images that were pre-pulled) need IfNotPresent. A template that says
            # otherwise wins.
            container.setdefault("imagePullPolicy", "IfNotPresent")
    tolerations = spec.setdefault("tolerations", [])
    for key in ("k8s.dask.org/dedicated", "k8s.dask.org_dedicated"):
        toleration = {"key": key, "operator": "Equal", "value": component, "effect": "NoSchedule"}
        if toleration not in tolerations:
            tolerations.append(toleration)
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    preferred = node_affinity.setdefault("preferredDuringSchedulingIgnoredDuringExecution", [])
    term = {"weight": 100, "preference": {"matchExpressions": [
        {"key": "k8s.dask.org/node-purpose", "operator": "In", "values": [component]}]}}
    if term not in preferred:
        preferred.append(term)
    return spec


def _set_env(container: dict[str, Any], name: str, value: str) -> None:
    env = [e for e in container.get("env") or [] if not (isinstance(e, dict) and e.get("name") == name)]
    env.append({"name": name, "value": value})
    container["env"] = env


def _set_default_env(container: dict[str, Any], name: str, value: str) -> None:
    env = container.setdefault("env", [])
    if not any(isinstance(e, dict) and e.get("name") == name for e in env):
        env.append({"name": name, "value": value})


def _runs_dask(container: Mapping[str, Any], role: str) -> bool:
    """Does this container start ``dask-worker`` / ``dask worker`` (so we may add CLI flags)?"""
    words = [str(w) for w in (container.get("command") or []) + (container.get("args") or [])]
    if not words:
        return False
    for i, word in enumerate(words):
        base = word.rsplit("/", 1)[-1]
        if base in (f"dask-{role}", f"dask-cuda-{role}"):
            return True
        if base == "dask" and i + 1 < len(words) and words[i + 1] == role:
            return True
    return False


def _has_flag(args: list[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in args)

"""What exists for one request, from what was listed: pods, Service, PDB -> :class:`reconcile.Observed`.

Pure: the driver lists, this sorts. Pods are the request's only if they carry its uid as an owner (one
left over from an earlier request of the same name awaits the garbage collector), and the
:class:`Expectations` overlay adds what this process did that the LIST may not show yet.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from kubedask.spec import (
    COMPONENT_LABEL,
    HEARTBEAT_ANNOTATION,
    SCHEDULER_PORT,
    fingerprint,
    parse_heartbeat,
    scheduler_name,
)

from .expectations import Expectations
from .reconcile import Observed, PodInfo

Body = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Observation:
    observed: Observed
    #: The scheduler pod as listed (its IP and host are needed beyond :class:`PodInfo`).
    scheduler_pod: Body | None = None
    external_address: str | None = None


class Relevant(NamedTuple):
    """What about the request may change the outcome of a pass. The status annotation and phase label
    are deliberately absent: the controller's own status writes must not wake it."""

    spec: str  # the fingerprint of the request's data
    heartbeat: str | None
    deleting: bool


def relevant(body: Body) -> Relevant:
    metadata = body["metadata"]
    return Relevant(fingerprint(body.get("data") or {}), (metadata.get("annotations") or {}).get(HEARTBEAT_ANNOTATION),
                    bool(metadata.get("deletionTimestamp")))


def heartbeat_of(body: Body) -> float | None:
    """When the request's client last renewed its heartbeat (epoch seconds), if it ever did."""
    heartbeat = parse_heartbeat((body["metadata"].get("annotations") or {}).get(HEARTBEAT_ANNOTATION))
    return heartbeat.timestamp() if heartbeat else None


def owned_by(obj: Body, uid: str | None) -> bool:
    """Whether ``obj`` belongs to the request with ``uid`` (a request not yet created has none)."""
    owners = obj.get("metadata", {}).get("ownerReferences") or []
    return uid is None or any(o.get("uid") == uid for o in owners)


def observe(cluster: str, uid: str | None, pods: Iterable[Body], expectations: Expectations,
            service: Body | None = None, pdb: Body | None = None) -> Observation:
    scheduler_pod: Body | None = None
    workers: dict[str, PodInfo] = {}
    for pod in pods:
        if not owned_by(pod, uid):
            continue
        component = (pod["metadata"].get("labels") or {}).get(COMPONENT_LABEL)
        info = PodInfo.from_manifest(pod)
        if component == "scheduler" and info.name == scheduler_name(cluster):
            scheduler_pod = pod
        elif component == "worker":
            workers[info.name] = info
    observed = Observed(
        scheduler=PodInfo.from_manifest(scheduler_pod) if scheduler_pod else None,
        service=service is not None, pdb=pdb is not None,
        workers=tuple(expectations.overlay(workers).values()))
    return Observation(observed, scheduler_pod, external_address(service, scheduler_pod))


def external_address(service: Body | None, scheduler_pod: Body | None) -> str | None:
    """Where a client outside the cluster reaches the scheduler (NodePort or LoadBalancer), if anywhere."""
    if not service:
        return None
    spec = service.get("spec") or {}
    port = next((p for p in spec.get("ports") or [] if p.get("port") == SCHEDULER_PORT), None)
    if spec.get("type") == "LoadBalancer":
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if ingress and port:
            host = ingress[0].get("ip") or ingress[0].get("hostname")
            return f"tcp://{host}:{port['port']}" if host else None
    if spec.get("type") in ("NodePort", "LoadBalancer") and port and port.get("nodePort"):
        # A NodePort is open on every node; the scheduler's own node is one we know without listing nodes.
        host_ip = ((scheduler_pod or {}).get("status") or {}).get("hostIP")
        if host_ip:
            return f"tcp://{host_ip}:{port['nodePort']}"
    return None


"""What exists for one request, from what was listed: pods, Service, PDB -> :class:`reconcile.Observed`.

Pure: the driver lists, this sorts. Pods are the request's only if they carry its uid as an owner (one
left over from an earlier request of the same name awaits the garbage collector), and the
:class:`Expectations` overlay adds what this process did that the LIST may not show yet.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from kubedask.spec import (
    COMPONENT_LABEL,
    HEARTBEAT_ANNOTATION,
    JOB_COMPONENT,
    SCHEDULER_PORT,
    fingerprint,
    job_name,
    scheduler_name,
)

from .expectations import Expectations
from .labelling import propagated_labels
from .reconcile import Observed, PodInfo

Body = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Observation:
    observed: Observed
    #: The scheduler pod as listed (its IP and host are needed beyond :class:`PodInfo`).
    scheduler_pod: Body | None = None
    external_address: str | None = None
    #: The request's own Service, as read.
    service: Body | None = None
    #: Objects that hold one of the request's names but are not the request's: why it cannot run.
    taken: tuple[str, ...] = ()
    #: Objects of an earlier request of the same name, still being garbage-collected: what to wait for.
    leftovers: tuple[str, ...] = ()
    #: The batch job's pod as listed (its container states say how the job went), and the request's PDB.
    job_pod: Body | None = None
    pdb: Body | None = None

    @property
    def service_type(self) -> str | None:
        return ((self.service or {}).get("spec") or {}).get("type")


class Relevant(NamedTuple):
    """What about the request may change the outcome of a pass. The status annotation and phase label
    are deliberately absent: the controller's own status writes must not wake it."""

    spec: str  # the fingerprint of the request's data
    heartbeat: str | None
    deleting: bool
    #: The request labels propagated to its objects (:mod:`labelling`): an edit patches the Service.
    labels: tuple[tuple[str, str], ...] = ()


def relevant(body: Body) -> Relevant:
    metadata = body["metadata"]
    return Relevant(fingerprint(body.get("data") or {}), (metadata.get("annotations") or {}).get(HEARTBEAT_ANNOTATION),
                    bool(metadata.get("deletionTimestamp")), tuple(propagated_labels(metadata.get("labels")).items()))


def owned_by(obj: Body, uid: str | None) -> bool:
    """Whether ``obj`` belongs to the request with ``uid`` (a request not yet created has none)."""
    owners = obj.get("metadata", {}).get("ownerReferences") or []
    return uid is None or any(o.get("uid") == uid for o in owners)


def name_conflict(kind: str, obj: Body | None, cluster: str, uid: str | None) -> tuple[str, bool] | None:
    """Why an object found under one of the request's names is not the request's: (message, whether it
    is a leftover that is going away by itself), or None if it is the request's (or absent).

    Identity is the owner's uid, never the name: a foreign object is never adopted."""
    if obj is None or owned_by(obj, uid):
        return None
    metadata = obj.get("metadata") or {}
    name = metadata.get("name")
    earlier = any(o.get("kind") == "ConfigMap" and o.get("name") == cluster
                  for o in metadata.get("ownerReferences") or [])
    if metadata.get("deletionTimestamp") or earlier:
        return (f"waiting for {kind} {name} of an earlier request named {cluster} to be deleted by the garbage "
                "collector", True)
    return f"{kind} {name} exists and is not owned by this request; delete or rename it", False


class PodFacts(NamedTuple):
    """What :func:`observe` reads of one pod (a view may keep them, computed once per pod version)."""

    component: str | None
    owned: bool
    info: PodInfo


def pod_facts(pod: Body, uid: str | None) -> PodFacts:
    return PodFacts((pod["metadata"].get("labels") or {}).get(COMPONENT_LABEL), owned_by(pod, uid),
                    PodInfo.from_manifest(pod))


def observe(cluster: str, uid: str | None, pods: Iterable[Body], expectations: Expectations,
            service: Body | None = None, pdb: Body | None = None, *, retired: frozenset[str] = frozenset(),
            retiring: int = 0, facts: Callable[[Body], PodFacts] | None = None) -> Observation:
    """``retired``: workers the scheduler has retired (to be deleted, never replaced); ``retiring``: how
    many a retirement still in flight is taking away; ``facts``: :func:`pod_facts` of a pod, if known."""
    scheduler_pod: Body | None = None
    job_pod: Body | None = None
    workers: dict[str, PodInfo] = {}
    conflicts = [name_conflict("Service", service, cluster, uid),
                 name_conflict("PodDisruptionBudget", pdb, cluster, uid)]
    for pod in pods:
        component, owned, info = facts(pod) if facts is not None else pod_facts(pod, uid)
        if not owned:
            if (component, info.name) in (("scheduler", scheduler_name(cluster)), (JOB_COMPONENT, job_name(cluster))):
                conflicts.append(name_conflict("Pod", pod, cluster, uid))
            continue
        if component == "scheduler" and info.name == scheduler_name(cluster):
            scheduler_pod = pod
        elif component == JOB_COMPONENT and info.name == job_name(cluster):
            job_pod = pod
        elif component == "worker":
            workers[info.name] = dataclasses.replace(info, retired=True) if info.name in retired else info
    found = [c for c in conflicts if c is not None]
    own_service = service if service is not None and owned_by(service, uid) else None
    observed = Observed(
        scheduler=PodInfo.from_manifest(scheduler_pod) if scheduler_pod else None,
        service=own_service is not None, pdb=pdb is not None and owned_by(pdb, uid),
        workers=tuple(expectations.overlay(workers).values()), retiring=retiring,
        job=PodInfo.from_manifest(job_pod) if job_pod else None)
    return Observation(observed, scheduler_pod, external_address(own_service, scheduler_pod), own_service,
                       taken=tuple(m for m, leftover in found if not leftover),
                       leftovers=tuple(m for m, leftover in found if leftover), job_pod=job_pod,
                       pdb=pdb if pdb is not None and owned_by(pdb, uid) else None)


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


def reachable_scheduler_ip(observed: Observed) -> str | None:
    """The scheduler pod's IP if it is ready and staying, so worth asking (adapt, idle, retire)."""
    scheduler = observed.scheduler
    return scheduler.ip if scheduler and scheduler.ready and scheduler.ip and not scheduler.deleting else None

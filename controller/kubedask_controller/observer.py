"""What exists for one request: a view of its pods, Service and PDB kept by the watch, sorted by
:func:`observe.observe` on every pass.

The view is read from the API server (a LIST of the cluster's pods by label, the Service and PDB by name)
only when it cannot be trusted: before the first read, every ``resync`` seconds, for a short while after any
watch re-listed (a re-list reports what exists, never what vanished while the watch was down, so the next
passes look for themselves; leadership starting counts as one too), and while a name is held by an object
that is not the request's (the watch selects the controller's own objects only), and once an expectation
outlived its deadline unseen (the watch may be deaf). Between reads each watch
event updates the view in O(1), so a pass costs no API call and nothing proportional to the events.

Events that arrive while a read is in flight are applied on top of what it returned, unless the read saw
a newer resourceVersion of that object, so a read never rolls the view back over the watch. What this
process did that neither has shown yet comes from the :class:`Expectations` overlay, as before. Workers
are kept slim (only what :class:`workload.PodInfo` reads): 10,000 of them fit in a few tens of MiB.

With ``watched=False`` every pass reads (the unit tests' API fakes have no watch).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping
from typing import Any

from kubedask.spec import COMPONENT_LABEL, WORKER_GROUP_LABEL, ClusterRequest, scheduler_name

from . import builders
from .api import ClusterApi
from .clock import Clock
from .expectations import Expectations
from .observe import Observation, PodFacts, observe, owned_by, pod_facts
from .retirement import Retirement

Body = dict[str, Any]
#: Seconds after a watch re-listed during which every pass reads for itself.
RELIST_GRACE = 10.0
_OWNED_KINDS = ("Service", "PodDisruptionBudget")
#: What :func:`slim` keeps of a worker's metadata as is (values of its own), and the labels that are read.
_KEPT_METADATA = ("name", "uid", "creationTimestamp", "deletionTimestamp", "resourceVersion")
_READ_LABELS = (COMPONENT_LABEL, WORKER_GROUP_LABEL)
#: The Ready condition as slim views keep it, shared by every pod (never modified).
_READY_TRUE = {"type": "Ready", "status": "True"}
_READY_NOT = {"type": "Ready", "status": "False"}


def _version(obj: Body) -> int | None:
    try:
        return int(obj["metadata"].get("resourceVersion"))
    except (TypeError, ValueError):
        return None  # not a number (a fake, or a future API server): never compared


def _newer(candidate: Body, current: Body | None) -> bool:
    if current is None:
        return True
    ours, theirs = _version(candidate), _version(current)
    return ours is None or theirs is None or ours >= theirs


def _shared(value: Any) -> Any:
    """One string object for a value that many pods repeat (labels, owner uid, node, phase)."""
    return sys.intern(value) if isinstance(value, str) else value


def slim(pod: Body) -> Body:
    """A worker pod reduced to what is read of it (PodInfo, the owner check); other pods are kept whole.

    Built of new objects only, so nothing of the decoded event or LIST stays alive through the view, and
    the values pods share are interned: at 10,000 workers the view is what holds the controller's memory."""
    metadata = pod.get("metadata") or {}
    labels = metadata.get("labels") or {}
    if labels.get(COMPONENT_LABEL) != "worker":
        return pod
    status = pod.get("status") or {}
    kept = {k: metadata[k] for k in _KEPT_METADATA if k in metadata}
    kept["namespace"] = _shared(metadata.get("namespace"))
    kept["labels"] = {_shared(k): _shared(labels[k]) for k in _READ_LABELS if k in labels}
    kept["annotations"] = {_shared(k): _shared(v) for k, v in (metadata.get("annotations") or {}).items()
                           if k.startswith("kubedask.io/")}
    kept["ownerReferences"] = [{k: _shared(o[k]) for k in ("kind", "name", "uid") if k in o}
                               for o in metadata.get("ownerReferences") or []]
    return {
        "metadata": kept,
        "spec": {"nodeName": _shared((pod.get("spec") or {}).get("nodeName"))},
        # Only the Ready condition is read (PodInfo.ready).
        "status": {"phase": _shared(status.get("phase")), "podIP": status.get("podIP"),
                   "conditions": [_READY_TRUE if c.get("status") == "True" else _READY_NOT
                                  for c in status.get("conditions") or [] if c.get("type") == "Ready"]},
    }


class Observer:
    def __init__(self, kube: ClusterApi, namespace: str, name: str, uid: str | None,
                 expectations: Expectations, retirement: Retirement, clock: Clock,
                 relisted_at: Callable[[], float] = lambda: float("-inf"), resync: float = 300.0,
                 watched: bool = True, pod_version: Callable[[], str | None] = lambda: None) -> None:
        self.kube, self.namespace, self.name, self.uid = kube, namespace, name, uid
        self.expectations, self.retirement, self.clock = expectations, retirement, clock
        self.relisted_at, self.resync, self.watched = relisted_at, resync, watched
        self.pod_version = pod_version
        #: The view: pods by name, and the Service and PDB by kind (None: none); None until first read.
        self.pods: dict[str, Body] | None = None
        self.owned: dict[str, Body | None] = {}
        self.read_at = float("-inf")
        self.reads = 0
        #: Events seen while a read is in flight, by (kind, name): (deleted, object), applied after it.
        self._during_read: dict[tuple[str, str], tuple[bool, Body]] | None = None
        self._foreign = False
        #: Each viewed pod's facts, computed once per version of it (a pass is then O(N) of lookups).
        self._facts: dict[str, tuple[Mapping[str, Any], PodFacts]] = {}

    def pod_event(self, event_type: str | None, pod: Body) -> None:
        """A pod event from the watch: settles what this process expects of its pods and updates the view."""
        deleted = event_type == "DELETED"
        if owned_by(pod, self.uid):
            self.expectations.seen(pod["metadata"]["name"], deleted or bool(pod["metadata"].get("deletionTimestamp")))
        self._apply("Pod", deleted, pod)

    def owned_event(self, event_type: str | None, obj: Body) -> None:
        """A Service or PDB event: the view follows it if it carries the request's scheduler name."""
        if obj.get("kind") in _OWNED_KINDS and obj["metadata"]["name"] == scheduler_name(self.name):
            self._apply(str(obj["kind"]), event_type == "DELETED", obj)

    def _apply(self, kind: str, deleted: bool, obj: Body) -> None:
        if self._during_read is not None:
            self._during_read[kind, obj["metadata"]["name"]] = (deleted, obj)
        if kind != "Pod":
            self._apply_owned(self.owned, kind, deleted, obj)
        elif self.pods is not None:
            self._apply_pod(self.pods, deleted, obj)

    @staticmethod
    def _apply_owned(owned: dict[str, Body | None], kind: str, deleted: bool, obj: Body) -> None:
        """The Service or PDB in ``owned`` follows ``obj`` unless it is older (kinds not viewed are left)."""
        if kind in owned and _newer(obj, owned[kind]):
            owned[kind] = None if deleted else obj

    @staticmethod
    def _apply_pod(pods: dict[str, Body], deleted: bool, pod: Body) -> None:
        name = pod["metadata"]["name"]
        if not _newer(pod, pods.get(name)):
            return  # an event older than what was read (a pod of the same name, deleted before)
        if deleted:
            pods.pop(name, None)
        else:
            pods[name] = slim(pod)

    def _must_read(self, request: ClusterRequest) -> bool:
        now = self.clock.monotonic()
        return (not self.watched or self.pods is None or self._foreign or now - self.read_at >= self.resync
                or now - self.relisted_at() < RELIST_GRACE or self.expectations.overdue()
                or (request.deploy_mode == "remote" and len(self.owned) < len(_OWNED_KINDS)))

    async def _read(self, request: ClusterRequest) -> None:
        self._during_read = {}
        self.read_at = self.clock.monotonic()
        # A driver's first LIST comes from the API server's cache, no older than what the pod watch has seen:
        # a consistent LIST right after a write of another kind (a new request) waits for the pod cache to
        # hear of that revision, up to 0.1 s. It sees all that the watch saw (nothing of the request's is
        # missed: pods made before the watch listed are in its list, a new request's predecessor's
        # leftovers were there before it, and the pods made since come from this leader).
        # Every later read is consistent: they are the check on the watch.
        since = self.pod_version() if self.pods is None else None
        try:
            pods, service, pdb = await asyncio.gather(
                self.kube.list_pods(self.namespace, builders.selector_string(self.name), since),
                self._get(request, self.kube.get_service), self._get(request, self.kube.get_pdb))
        finally:
            during, self._during_read = self._during_read, None
        self.reads += 1
        view = {p["metadata"]["name"]: slim(p) for p in pods}
        owned: dict[str, Body | None] = {"Service": service, "PodDisruptionBudget": pdb} \
            if request.deploy_mode == "remote" else {}
        for (kind, _), (deleted, obj) in during.items():
            if kind == "Pod":
                self._apply_pod(view, deleted, obj)
            else:
                self._apply_owned(owned, kind, deleted, obj)
        self.pods, self.owned = view, owned

    async def _get(self, request: ClusterRequest, get: Callable[[str, str], Any]) -> Body | None:
        if request.deploy_mode != "remote":
            return None
        found: Body | None = await get(self.namespace, scheduler_name(self.name))
        return found

    async def observe(self, request: ClusterRequest) -> Observation:
        if self._must_read(request):
            await self._read(request)
        assert self.pods is not None
        pods = list(self.pods.values())
        self.retirement.forget_gone(p["metadata"]["name"] for p in pods)
        if len(self._facts) > 2 * len(pods):
            self._facts = {name: kept for name, kept in self._facts.items() if name in self.pods}
        seen = observe(self.name, self.uid, pods, self.expectations, self.owned.get("Service"),
                       self.owned.get("PodDisruptionBudget"), retired=frozenset(self.retirement.retired),
                       retiring=self.retirement.in_flight, facts=self._facts_of)
        self._foreign = bool(seen.taken or seen.leftovers)  # not in the watch: read again next pass
        return seen

    def _facts_of(self, pod: Mapping[str, Any]) -> PodFacts:
        name = pod["metadata"]["name"]
        kept = self._facts.get(name)
        if kept is not None and kept[0] is pod:
            return kept[1]
        facts = pod_facts(pod, self.uid)
        self._facts[name] = (pod, facts)
        return facts

"""One in-memory reconcile loop per request, fed by watch events; it executes the pure plan.

Why not Kopf's create/update handlers: they keep a diff base and handler progress in the request's
annotations (API writes, even at rest, and the 256 KiB annotation limit) and they fire again on the
controller's own status writes. Here Kopf only delivers watch events (``on.event``, which store nothing);
each request gets a serial asyncio task that wakes on a relevant change, on its pods' events, or on a
timer (adaptive scaling, idle and heartbeat checks, a slow resync), and does a level-triggered pass:

1. list what exists for the request (a consistent LIST by label, not the possibly-stale watch cache);
2. ask :func:`reconcile.plan` what to do; 3. do it; 4. write the status if, and only if, it changed.

Expectations: pods this process created but has not yet seen listed are counted as existing, and pods
it deleted as gone, until they show up (or a deadline passes), so neither a slow watch nor a lagging
read can cause a duplicate create. A restarted controller starts with none and relies on the
consistent LIST, which includes every pod whose create reached the API server before the crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubedask.spec import (
    CLUSTER_NAME_LABEL,
    COMPONENT_LABEL,
    HEARTBEAT_ANNOTATION,
    ClusterRequest,
    ClusterStatus,
    RequestError,
    fingerprint,
    parse_heartbeat,
    parse_request,
    parse_status,
)
from kubernetes.client.exceptions import ApiException

from . import builders, metrics, reconcile, status
from .kube import Kube
from .policy import Policy, check_request
from .scheduler import SchedulerClient, SchedulerUnavailable

logger = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name), the only way a request is keyed anywhere
Body = dict[str, Any]
Manifest = dict[str, Any]


def key_of(body: Mapping[str, Any]) -> Key:
    metadata = body["metadata"]
    return metadata["namespace"], metadata["name"]


@dataclasses.dataclass
class Settings:
    policy: Policy = dataclasses.field(default_factory=Policy)
    #: A pass with nothing else to trigger it (reads only, writes only if something drifted).
    resync_interval: float = 300.0
    #: Re-check soon after acting, in case a watch event is missed.
    settle_delay: float = 2.0
    #: Coalesce bursts of pod events (1000 pods starting) into one pass.
    debounce: float = 0.2
    #: Slow start for creates: this many first, then the rest with ``max_in_flight`` at a time.
    first_batch: int = 16
    max_in_flight: int = 64
    #: How long an unseen create / delete is trusted before the LIST is believed instead.
    expectation_timeout: float = 60.0
    idle_poll_interval: float = 15.0
    adapt_max_step: int = 100


class Controller:
    """All request loops of this process, and the glue from watch events to them."""

    def __init__(self, kube: Kube, settings: Settings, is_leader: Callable[[], bool] = lambda: True) -> None:
        self.kube = kube
        self.settings = settings
        self.is_leader = is_leader
        self.loops: dict[Key, ClusterLoop] = {}

    def on_request_event(self, event_type: str | None, body: Body) -> None:
        key = key_of(body)
        if event_type == "DELETED":
            loop = self.loops.pop(key, None)
            if loop:
                loop.stop()
            metrics.CLUSTERS.set(len(self.loops))
            return
        loop = self.loops.get(key)
        if loop is None or loop.uid != body["metadata"].get("uid"):
            if loop:  # deleted and recreated under the same name while we looked away
                loop.stop()
            self.loops[key] = loop = ClusterLoop(self, key, body)
            metrics.CLUSTERS.set(len(self.loops))
            loop.start()
        else:
            loop.update(body)

    def on_pod_event(self, event_type: str | None, body: Body) -> None:
        labels = body["metadata"].get("labels") or {}
        cluster = labels.get(CLUSTER_NAME_LABEL)
        loop = self.loops.get((body["metadata"]["namespace"], cluster)) if cluster else None
        logger.debug("pod event: %s/%s phase=%s (cluster loop %s)", body["metadata"]["namespace"],
                     body["metadata"]["name"], (body.get("status") or {}).get("phase"),
                     "found" if loop else "missing")
        if loop is not None:
            loop.on_pod_event(event_type, body)

    def wake_all(self) -> None:
        for loop in self.loops.values():
            loop.wake()

    async def stop(self) -> None:
        loops = list(self.loops.values())
        self.loops.clear()
        for loop in loops:
            loop.stop()
        await asyncio.gather(*(loop.wait_stopped() for loop in loops), return_exceptions=True)


class ClusterLoop:
    def __init__(self, controller: Controller, key: Key, body: Body) -> None:
        self.controller = controller
        self.kube = controller.kube
        self.settings = controller.settings
        self.key = key
        self.body = body
        self.uid: str | None = body["metadata"].get("uid")
        self._view = self._relevant(body)
        self._wake = asyncio.Event()
        self._wake.set()
        self._task: asyncio.Task[None] | None = None
        self.last_status: ClusterStatus | None = parse_status(body["metadata"].get("annotations"))
        self.last_labels: dict[str, str] = dict(body["metadata"].get("labels") or {})
        self.expected_creates: dict[str, float] = {}
        self.expected_deletes: dict[str, float] = {}
        self.adapt_state: reconcile.AdaptState | None = None
        self.next_adapt_poll = 0.0
        self.next_idle_poll = 0.0
        self.idle_since: float | None = None
        self.observed_since = time.time()
        self.failure_streak = 0
        self.error_streak = 0

    # --- lifecycle ---
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name=f"kubedask:{self.key}")

    def stop(self) -> None:
        if self._task:
            self._task.cancel()

    async def wait_stopped(self) -> None:
        if self._task:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def wake(self) -> None:
        self._wake.set()

    @staticmethod
    def _relevant(body: Mapping[str, Any]) -> tuple[Any, ...]:
        """What about the request may change the outcome of a pass. The status annotation and phase
        label are deliberately absent: the controller's own status writes must not wake it."""
        metadata = body["metadata"]
        return (fingerprint(body.get("data") or {}),
                (metadata.get("annotations") or {}).get(HEARTBEAT_ANNOTATION),
                bool(metadata.get("deletionTimestamp")))

    def update(self, body: Body) -> None:
        self.body = body
        view = self._relevant(body)
        if view != self._view:
            self._view = view
            self.wake()

    def on_pod_event(self, event_type: str | None, pod: Body) -> None:
        owners = pod["metadata"].get("ownerReferences") or []
        if self.uid and not any(o.get("uid") == self.uid for o in owners):
            return
        # Any event about a pod proves the API server has it: the create expectation is met even if
        # the pod is gone again before the next LIST (created, then deleted by a user at once).
        name = pod["metadata"]["name"]
        self.expected_creates.pop(name, None)
        if event_type == "DELETED" or pod["metadata"].get("deletionTimestamp"):
            self.expected_deletes.pop(name, None)
        self.wake()

    async def run(self) -> None:
        delay: float | None = 0.0
        while True:
            try:
                timeout = None if delay is None else max(delay, 0.0)
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
            await asyncio.sleep(self.settings.debounce)
            self._wake.clear()
            if not self.controller.is_leader():
                delay = None  # woken again by wake_all() when this replica becomes the leader
                continue
            started = time.monotonic()
            logger.debug("%s/%s: reconcile pass starts", *self.key)
            try:
                delay = await self.reconcile_once()
                logger.debug("%s/%s: reconcile pass done in %.3fs; next timed pass in %s s", *self.key,
                             time.monotonic() - started, delay)
                self.error_streak = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.error_streak += 1
                delay = min(60.0, 2.0 ** self.error_streak)
                metrics.ERRORS.inc()
                metrics.RECONCILES.labels(result="error").inc()
                logger.warning("reconcile %s/%s failed (retry in %.0f s): %s", *self.key, delay, exc,
                               exc_info=logger.isEnabledFor(logging.DEBUG))
            finally:
                metrics.LATENCY.observe(time.monotonic() - started)

    # --- one pass ---
    async def reconcile_once(self) -> float | None:
        """One level-triggered pass; returns seconds until the next timed pass (None: only on events)."""
        body = self.body
        namespace, name = self.key
        if body["metadata"].get("deletionTimestamp"):
            return None  # the garbage collector removes the owned objects
        data = body.get("data") or {}
        try:
            request = parse_request(name, data)
            check_request(request, self.settings.policy)
        except RequestError as exc:
            metrics.INVALID_REQUESTS.inc()
            metrics.RECONCILES.labels(result="invalid").inc()
            await self.write_status(status.invalid_status(str(exc), fingerprint(data)),
                                    event=("InvalidRequest", str(exc), "Warning"))
            return None  # nothing to do until the request changes

        observed, scheduler_pod, service = await self.observe(request)
        now = time.time()
        scheduler = self._scheduler_client(observed)

        reason = await self._shutdown_reason(request, scheduler, now)
        if reason:
            await self.write_status(status.terminating_status(request, reason),
                                    event=("ShuttingDown", reason, "Normal"))
            await self.kube.delete_configmap(namespace, name)
            return None

        desired = await self._desired_workers(request, observed, scheduler)
        the_plan = reconcile.plan(request, observed, desired)
        if the_plan.actions:
            try:
                await self.execute(request, the_plan, observed, scheduler)
            except Rejected as exc:
                # The schema passed it but the API server (or an admission policy or quota) did not:
                # as visible as an invalid request, and retried slowly in case a quota frees up.
                metrics.RECONCILES.labels(result="rejected").inc()
                await self.write_status(status.invalid_status(str(exc), request.fingerprint),
                                        event=("CreateRejected", str(exc), "Warning"))
                return REJECTED_RETRY
        new_status = status.cluster_status(request, namespace, observed, desired,
                                           external_address=_external_address(service, scheduler_pod))
        await self.write_status(new_status)
        metrics.RECONCILES.labels(result="acted" if the_plan.actions else "ok").inc()
        return self._next_delay(request, the_plan, observed)

    def _next_delay(self, request: ClusterRequest, the_plan: reconcile.Plan, observed: reconcile.Observed
                    ) -> float:
        replaced = any(isinstance(a, reconcile.DeletePod) and "replaced" in a.reason
                       for a in the_plan.actions)
        # Pods that keep failing are replaced with exponential backoff, not in a hot loop.
        self.failure_streak = self.failure_streak + 1 if replaced else 0
        delays = [self.settings.resync_interval]
        if the_plan.actions:
            delays.append(max(self.settings.settle_delay, min(300.0, 2.0 ** self.failure_streak)))
        if request.adapt:
            delays.append(request.adapt.interval)
        if request.idle_timeout:
            delays.append(min(self.settings.idle_poll_interval, request.idle_timeout / 4))
        if request.client_heartbeat_timeout:
            delays.append(min(30.0, request.client_heartbeat_timeout / 4))
        return min(delays)

    async def observe(self, request: ClusterRequest
                      ) -> tuple[reconcile.Observed, Body | None, Body | None]:
        namespace, name = self.key
        pods = await self.kube.list_pods(namespace, builders.selector_string(name))
        scheduler_pod: Body | None = None
        workers: dict[str, reconcile.PodInfo] = {}
        for pod in pods:
            owners = pod["metadata"].get("ownerReferences") or []
            if self.uid and not any(o.get("uid") == self.uid for o in owners):
                continue  # left over from an earlier request of the same name, awaiting GC
            component = (pod["metadata"].get("labels") or {}).get(COMPONENT_LABEL)
            info = reconcile.PodInfo.from_manifest(pod)
            if component == "scheduler" and info.name == builders.scheduler_name(name):
                scheduler_pod = pod
            elif component == "worker":
                workers[info.name] = info
        mono = time.monotonic()
        for pod_name, deadline in list(self.expected_creates.items()):
            if pod_name in workers or deadline < mono:
                del self.expected_creates[pod_name]
            else:
                workers[pod_name] = reconcile.PodInfo(name=pod_name)
        for pod_name, deadline in list(self.expected_deletes.items()):
            info_or_none = workers.get(pod_name)
            if info_or_none is None or info_or_none.deleting or deadline < mono:
                del self.expected_deletes[pod_name]
            else:
                workers[pod_name] = dataclasses.replace(info_or_none, deleting=True)
        service = pdb = None
        if request.deploy_mode == "remote":
            service, pdb = await asyncio.gather(
                self.kube.get_service(namespace, builders.scheduler_name(name)),
                self.kube.get_pdb(namespace, builders.scheduler_name(name)))
        observed = reconcile.Observed(
            scheduler=reconcile.PodInfo.from_manifest(scheduler_pod) if scheduler_pod else None,
            service=service is not None, pdb=pdb is not None, workers=tuple(workers.values()))
        return observed, scheduler_pod, service

    def _scheduler_client(self, observed: reconcile.Observed) -> SchedulerClient | None:
        scheduler = observed.scheduler
        if scheduler and scheduler.ready and scheduler.ip and not scheduler.deleting:
            return SchedulerClient(scheduler.ip)
        return None

    async def _shutdown_reason(self, request: ClusterRequest, scheduler: SchedulerClient | None,
                               now: float) -> str | None:
        if request.idle_timeout and scheduler and time.monotonic() >= self.next_idle_poll:
            self.next_idle_poll = time.monotonic() + min(self.settings.idle_poll_interval,
                                                         request.idle_timeout / 4)
            answered, idle_since = await scheduler.idle_since()
            if answered:
                self.idle_since = idle_since
        heartbeat_time = parse_heartbeat(
            (self.body["metadata"].get("annotations") or {}).get(HEARTBEAT_ANNOTATION))
        return reconcile.shutdown_reason(
            request, now=now, idle_since=self.idle_since,
            heartbeat=heartbeat_time.timestamp() if heartbeat_time else None,
            observed_since=self.observed_since)

    async def _desired_workers(self, request: ClusterRequest, observed: reconcile.Observed,
                               scheduler: SchedulerClient | None) -> int:
        if request.adapt is None:
            self.adapt_state = None
            return request.workers
        if self.adapt_state is None:
            start = len(observed.active_workers) or request.workers
            self.adapt_state = reconcile.AdaptState(target=start)
        target = None
        if scheduler and time.monotonic() >= self.next_adapt_poll:
            self.next_adapt_poll = time.monotonic() + request.adapt.interval
            target = await scheduler.adaptive_target()
        if target is not None or self.adapt_state.target != _clamp(self.adapt_state.target, request):
            self.adapt_state = reconcile.adapt_step(request.adapt, self.adapt_state, target, time.monotonic(),
                                                    self.settings.adapt_max_step)
        return self.adapt_state.target

    # --- acting ---
    async def execute(self, request: ClusterRequest, the_plan: reconcile.Plan, observed: reconcile.Observed,
                      scheduler: SchedulerClient | None) -> None:
        namespace, name = self.key
        owner = builders.owner_reference(name, self.uid or "")
        deleted: list[str] = []
        for action in the_plan.actions:
            match action:
                case reconcile.CreateSchedulerPod():
                    if await _refused_as_rejected("scheduler pod", self.kube.create_pod(
                            builders.build_scheduler_pod(request, namespace, owner))):
                        await self.event("SchedulerCreated",
                                         f"created scheduler pod {builders.scheduler_name(name)}")
                case reconcile.CreateService():
                    if await _refused_as_rejected("Service", self.kube.create_service(
                            builders.build_service(request, namespace, owner))):
                        await self.event("ServiceCreated", f"created Service {builders.scheduler_name(name)} "
                                         f"({request.scheduler_service_type})")
                case reconcile.CreatePdb():
                    await self.kube.create_pdb(builders.build_pdb(request, namespace, owner))
                case reconcile.DeletePod(name=pod_name, reason=why):
                    await self._delete_pods([pod_name])
                    deleted.append(f"{pod_name} ({why})")
                case reconcile.CreateWorkers(count=count):
                    created = await self._create_workers(request, count, owner)
                    await self.event("ScaledUp", f"created {created} worker pods "
                                     f"(target {the_plan.desired_workers})")
                case reconcile.RetireWorkers(count=count, candidates=candidates):
                    names = await self._retire(count, candidates, observed, scheduler)
                    await self._delete_pods(names)
                    deleted.extend(f"{n} (retired)" for n in names)
        if deleted:
            shown = ", ".join(deleted[:10]) + (f" and {len(deleted) - 10} more" if len(deleted) > 10 else "")
            await self.event("PodsDeleted", f"deleted {len(deleted)} pods: {shown}")

    async def _create_workers(self, request: ClusterRequest, count: int, owner: Mapping[str, Any]) -> int:
        """Create ``count`` workers: a small first batch proves the API server accepts the pod, then the
        rest flow with ``max_in_flight`` creates at a time (no batch barriers, so one slow create does
        not hold the others back)."""
        first = min(self.settings.first_batch, count)
        created = await self._create_batch(request, first, owner, in_flight=first)
        if count > first:
            created += await self._create_batch(request, count - first, owner,
                                                in_flight=self.settings.max_in_flight)
        return created

    async def _create_batch(self, request: ClusterRequest, count: int, owner: Mapping[str, Any],
                            in_flight: int) -> int:
        namespace, name = self.key
        manifests = [builders.build_worker_pod(request, namespace, builders.new_worker_name(name), owner)
                     for _ in range(count)]
        deadline = time.monotonic() + self.settings.expectation_timeout
        for manifest in manifests:  # expected before sent: a crash mid-way is covered by the LIST
            self.expected_creates[manifest["metadata"]["name"]] = deadline
        gate = asyncio.Semaphore(in_flight)
        failed = asyncio.Event()  # after the first refusal, the rest are not even sent

        async def create(manifest: Manifest) -> bool:
            async with gate:
                if failed.is_set():
                    raise _NotSent()
                try:
                    return await self.kube.create_pod(manifest)
                except Exception:
                    failed.set()
                    raise

        results = await asyncio.gather(*(create(m) for m in manifests), return_exceptions=True)
        for result, manifest in zip(results, manifests, strict=True):
            if isinstance(result, BaseException):
                self.expected_creates.pop(manifest["metadata"]["name"], None)
        failures = [r for r in results if isinstance(r, BaseException) and not isinstance(r, _NotSent)]
        if failures:
            # Quota, admission or API errors: stop here; the next pass retries with backoff.
            refusal = _refusal(failures[0])
            if refusal:
                raise Rejected(f"the API server refused a worker pod: {refusal}")
            await self.event("CreateFailed", f"could not create worker pods: {failures[0]}", "Warning")
            raise RuntimeError(f"creating worker pods failed: {failures[0]}")
        return count

    async def _delete_pods(self, names: list[str]) -> None:
        namespace = self.key[0]
        deadline = time.monotonic() + self.settings.expectation_timeout
        for pod_name in names:
            self.expected_deletes[pod_name] = deadline
        await asyncio.gather(*(self.kube.delete_pod(namespace, n) for n in names))

    async def _retire(self, count: int, candidates: tuple[str, ...], observed: reconcile.Observed,
                      scheduler: SchedulerClient | None) -> list[str]:
        """Which pods to delete: the workers the scheduler chose and retired (their data moved), or,
        if the scheduler can't be asked, the newest running candidates."""
        if scheduler is not None:
            try:
                retired = await scheduler.retire_workers(count)
            except SchedulerUnavailable as exc:
                await self.event("RetireFailed", f"could not retire workers through the scheduler ({exc}); "
                                 f"deleting {count} pods without moving their data", "Warning")
            else:
                by_ip = {w.ip: w.name for w in observed.workers if w.ip}
                names = []
                for worker in retired:
                    pod_name = worker.name if worker.name in candidates else by_ip.get(worker.host or "")
                    if pod_name in candidates and pod_name not in names:
                        names.append(pod_name)
                if names:
                    await self.event("WorkersRetired", f"scheduler retired {len(names)} workers")
                    return names[:count]
                # The scheduler knows none of the candidates (not connected yet): they hold no data.
        return list(candidates[:count])

    # --- status and events ---
    async def write_status(self, new: ClusterStatus, event: tuple[str, str, str] | None = None) -> None:
        patch = status.status_patch(new, self.last_status, self.last_labels)
        if patch is None:
            return
        namespace, name = self.key
        previous_phase = self.last_status.phase if self.last_status else None
        logger.debug("%s/%s: status changes: %s", *self.key, patch["metadata"]["annotations"])
        await self.kube.patch_configmap(namespace, name, patch)
        self.last_status = parse_status(patch["metadata"]["annotations"])
        self.last_labels.update(patch["metadata"]["labels"])
        phase_changed = previous_phase != new.phase
        if event:
            await self.event(*event)
        elif phase_changed and new.phase in ("Running", "Failed"):
            await self.event(f"Phase{new.phase}", new.message)

    async def event(self, reason: str, message: str, type_: str = "Normal") -> None:
        log = logger.warning if type_ == "Warning" else logger.info
        log("%s/%s: %s: %s", *self.key, reason, message)
        await self.kube.post_event(self.body, reason, message, type_)


#: Seconds between attempts while the API server refuses what a request asks for.
REJECTED_RETRY = 60.0


class _NotSent(Exception):
    """A create skipped because an earlier one in the same batch failed."""


class Rejected(Exception):
    """The API server refused an object built from a valid request (admission, quota, bad value)."""


def _refusal(exc: BaseException) -> str | None:
    """The API server's message if ``exc`` is a refusal no retry would fix by itself soon."""
    if not isinstance(exc, ApiException) or exc.status not in (400, 403, 422):
        return None
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except ValueError:
        return str(exc.reason)


async def _refused_as_rejected(what: str, coro: Any) -> Any:
    try:
        return await coro
    except ApiException as exc:
        refusal = _refusal(exc)
        if refusal:
            raise Rejected(f"the API server refused the {what}: {refusal}") from exc
        raise


def _clamp(target: int, request: ClusterRequest) -> int:
    assert request.adapt is not None
    return min(max(target, request.adapt.minimum), request.adapt.maximum)


def _external_address(service: Body | None, scheduler_pod: Body | None) -> str | None:
    if not service:
        return None
    spec = service.get("spec") or {}
    port = next((p for p in spec.get("ports") or [] if p.get("port") == 8786), None)
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

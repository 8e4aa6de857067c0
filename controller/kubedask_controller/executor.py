"""Carrying out a plan (:func:`reconcile.plan`) for one request: creates, deletes, retiring, Events.

The scheduler pod and the workers are created together, so a new request's workers are sent in the same
round trip as its scheduler (they start pulling and starting while the scheduler does); the Service and the
PDB once the first batch of workers is answered. Those two are not on the way to running workers (a worker
connects through the Service seconds later, when its process is up), and sent alongside, they and what the
API server and its controllers do for them were answered before the workers: a 10-worker start on the
devcluster, kubedask/raw medians of 7 in alternating batches, was 1.43, 1.35, 1.52, 1.73 with them alongside
and 1.32, 1.23, 1.37, 1.39 after. A scheduler name held by a foreign pod shows only when its create is
refused: the workers this pass created are deleted again, and until a scheduler of the request's own has
been created the scheduler goes first, alone (one wasted round of creates per conflict, not one per retry).
Worker creates go in a slow start (a small first batch proves the API server accepts the pod, then the rest
with a bounded number in flight); every create and delete is registered with the :class:`Expectations`
before it is sent, and every delete names the pod's uid. A refusal no retry would fix soon (admission,
quota, an invalid value) raises :class:`Rejected`, which the driver reports like an invalid request, except
the one that passes by itself (a new namespace's ``default`` ServiceAccount not created yet),
:class:`NotYet`: Pending, tried again in seconds; a name held by an object that is not the request's raises
:class:`NameTaken`. Retiring is started here and runs beside the loop (:mod:`retirement`).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from kubedask.spec import DEFAULT_GROUP, ClusterRequest, job_name, scheduler_name
from kubernetes.client.exceptions import ApiException

from . import builders, drift, job, reconcile
from .api import ClusterApi, SchedulerApi
from .expectations import Expectations
from .observe import name_conflict
from .retirement import Retirement

Manifest = dict[str, Any]
T = TypeVar("T")


class Rejected(Exception):
    """The API server refused an object built from a valid request (admission, quota, bad value)."""


class NotYet(Exception):
    """The API server refused an object for a reason that passes by itself within seconds: the namespace's
    ``default`` ServiceAccount, which the kube-controller-manager creates for every new namespace, does not
    exist yet (a request made right after its namespace). str() says so; the pass is tried again soon."""


class NameTaken(Exception):
    """An object that is not the request's holds one of its names; str() says which and what to do."""


class _NotSent(Exception):
    """A create skipped because an earlier one in the same batch failed."""


class EventSink(Protocol):
    def __call__(self, reason: str, message: str, type_: str = "Normal") -> Awaitable[None]: ...


class Executor:
    def __init__(self, kube: ClusterApi, namespace: str, name: str, uid: str | None,
                 expectations: Expectations, event: EventSink, retirement: Retirement, first_batch: int = 16,
                 max_in_flight: int = 64) -> None:
        self.kube = kube
        self.namespace, self.name, self.uid = namespace, name, uid
        self.owner = builders.owner_reference(name, uid or "")
        self.expectations = expectations
        self.event = event
        self.retirement = retirement
        self.first_batch = first_batch
        self.max_in_flight = max_in_flight
        #: The scheduler's name was held by a foreign pod: its create goes before anything else until it succeeds.
        self.scheduler_first = False

    async def execute(self, request: ClusterRequest, plan: reconcile.Plan, observed: reconcile.Observed,
                      scheduler: SchedulerApi | None) -> None:
        deleted: list[str] = []
        #: The scheduler pod and workers are created together once the rest of the plan is done; the Service
        #: and PDB once a first batch of workers was answered (at once when this pass creates none).
        together: list[Awaitable[Any]] = []
        later: list[Callable[[], Awaitable[Any]]] = []
        first_batch = asyncio.Event()
        created: list[str] = []  # the worker pods of this pass, deleted again if the scheduler's name is taken
        uids = {w.name: w.uid for w in observed.workers}
        # A failed retirement makes only the very next scale-down delete without asking (taken each pass).
        fallback = self.retirement.take_fallback()
        for action in plan.actions:
            match action:
                case reconcile.CreateSchedulerPod():
                    if self.scheduler_first:
                        await self.create_scheduler(request)
                    else:
                        together.append(self.create_scheduler(request))
                case reconcile.CreateService():
                    later.append(lambda: self.create_service(request))
                case reconcile.PatchService(type=service_type, patch=patch):
                    await _refused_as_rejected("Service change", self.kube.patch_service(
                        self.namespace, scheduler_name(self.name), dict(patch) or {"spec": {"type": service_type}}))
                    what = sorted({*patch.get("metadata", {}), *patch.get("spec", {})}) or ["type"]
                    await self.event("ServiceUpdated", f"Service {scheduler_name(self.name)} updated "
                                     f"({', '.join(what)}); its type is {service_type}")
                case reconcile.CreatePdb():
                    later.append(lambda: self.kube.create_pdb(builders.build_pdb(request, self.namespace, self.owner)))
                case reconcile.CreateJobPod():
                    await self.create_job(request)
                case reconcile.DeleteService(uid=uid):
                    if await self.kube.delete_service(self.namespace, scheduler_name(self.name), uid):
                        await self.event("ServiceDeleted",
                                         f"deleted Service {scheduler_name(self.name)} (the job ended)")
                case reconcile.DeletePdb(uid=uid):
                    if await self.kube.delete_pdb(self.namespace, scheduler_name(self.name), uid):
                        await self.event("PdbDeleted", f"deleted PodDisruptionBudget {scheduler_name(self.name)} "
                                         "(the job ended)")
                case reconcile.DeletePod(name=pod_name, reason=why, uid=uid):
                    await self.delete_pods([(pod_name, uid)])
                    deleted.append(f"{pod_name} ({why})")
                case reconcile.CreateWorkers(count=count, group=group):
                    together.append(self.scale_up(request, count, group, plan.desired_workers, created, first_batch))
                case reconcile.RetireWorkers(count=count, candidates=candidates, scheduler_chooses=chooses):
                    if scheduler is not None and not fallback:
                        # Beside the loop: the retired pods are deleted by a later pass. When other workers
                        # run too, the candidates themselves are retired (by address), not the scheduler's pick.
                        self.retirement.start(scheduler, count, candidates,
                                              {w.ip: w.name for w in observed.workers if w.ip}, self.event,
                                              chosen=not chooses)
                        continue
                    if scheduler is None:
                        await self.event("RetireFailed", f"the scheduler is not ready to retire workers; deleting "
                                         f"{count} pods without moving their data", "Warning")
                    names = list(candidates[:count])
                    await self.delete_pods([(n, uids.get(n)) for n in names])
                    deleted.extend(f"{n} (scale down, not retired)" for n in names)
        if not any(isinstance(a, reconcile.CreateWorkers) for a in plan.actions):
            first_batch.set()
        together += [_once_set(first_batch, call) for call in later]
        try:
            await _all(together)
        except NameTaken:
            if created:  # a request whose scheduler cannot be created runs no workers
                await self.delete_pods([(name, None) for name in created])
            raise
        if deleted:
            shown = ", ".join(deleted[:10]) + (f" and {len(deleted) - 10} more" if len(deleted) > 10 else "")
            await self.event("PodsDeleted", f"deleted {len(deleted)} pods: {shown}")

    async def create_service(self, request: ClusterRequest) -> None:
        if await _refused_as_rejected("Service", self.kube.create_service(
                builders.build_service(request, self.namespace, self.owner))):
            await self.event("ServiceCreated", f"created Service {scheduler_name(self.name)} "
                             f"({request.scheduler_service_type})")

    async def scale_up(self, request: ClusterRequest, count: int, group: str, target: int,
                       created: list[str] | None = None, first_batch: asyncio.Event | None = None) -> None:
        done = await self.create_workers(request, count, group, created, first_batch)
        where = "" if group == DEFAULT_GROUP else f" in group {group}"
        await self.event("ScaledUp", f"created {done} worker pods{where} (target {target})")

    async def create_scheduler(self, request: ClusterRequest) -> None:
        manifest = drift.stamp(builders.build_scheduler_pod(request, self.namespace, self.owner), request)
        if await _refused_as_rejected("scheduler pod", self.kube.create_pod(manifest)):
            self.scheduler_first = False
            await self.event("SchedulerCreated", f"created scheduler pod {scheduler_name(self.name)}")
            return
        # The name exists although no pod of ours was listed under it: whose is it? Never adopted.
        conflict = name_conflict("Pod", await self.kube.get_pod(self.namespace, scheduler_name(self.name)),
                                 self.name, self.uid)
        if conflict is not None and not conflict[1]:
            self.scheduler_first = True
            raise NameTaken(conflict[0])

    async def create_job(self, request: ClusterRequest) -> None:
        """The batch job's pod; a name held by a pod that is not the request's is never adopted."""
        if await _refused_as_rejected("job pod", self.kube.create_pod(
                job.build_job_pod(request, self.namespace, self.owner))):
            await self.event("JobCreated", f"created job pod {job_name(self.name)}")
            return
        conflict = name_conflict("Pod", await self.kube.get_pod(self.namespace, job_name(self.name)),
                                 self.name, self.uid)
        if conflict is not None and not conflict[1]:
            raise NameTaken(conflict[0])

    async def create_workers(self, request: ClusterRequest, count: int, group: str = DEFAULT_GROUP,
                             created: list[str] | None = None, first_batch: asyncio.Event | None = None) -> int:
        """Create ``count`` workers of ``group``: a small first batch, then the rest with ``max_in_flight``
        creates at a time (no batch barriers, so one slow create does not hold the others back). The names
        of the pods created are added to ``created``; ``first_batch`` is set once the first batch was answered
        (or failed)."""
        first = min(self.first_batch, count)
        try:
            done = await self._create_batch(request, first, first, group, created)
        finally:
            if first_batch is not None:
                first_batch.set()
        if count > first:
            done += await self._create_batch(request, count - first, self.max_in_flight, group, created)
        return done

    async def _create_batch(self, request: ClusterRequest, count: int, in_flight: int, group: str,
                            created: list[str] | None) -> int:
        names = [builders.new_worker_name(self.name, group=group) for _ in range(count)]
        if not names:
            return 0
        # The first manifest is built before anything is sent (a template that cannot be built raises here);
        # the others once their turn comes: 100 clusters scaling at once would otherwise hold every pod
        # they are about to create as a built manifest (~10 KB each) until it is sent.
        first = builders.build_worker_pod(request, self.namespace, names[0], self.owner, group)
        self.expectations.created(names, group)
        gate = asyncio.Semaphore(in_flight)
        failed = asyncio.Event()  # after the first refusal, the rest are not even sent

        async def create(name: str) -> bool:
            async with gate:
                if failed.is_set():
                    raise _NotSent()
                manifest = first if name == names[0] else builders.build_worker_pod(
                    request, self.namespace, name, self.owner, group)
                try:
                    return await self.kube.create_pod(manifest)
                except Exception:
                    failed.set()
                    raise

        results = await asyncio.gather(*(create(n) for n in names), return_exceptions=True)
        for result, name in zip(results, names, strict=True):
            if isinstance(result, BaseException):
                self.expectations.not_created(name)
            elif result and created is not None:
                created.append(name)
        failures = [r for r in results if isinstance(r, BaseException) and not isinstance(r, _NotSent)]
        if failures:
            # Quota, admission or API errors: stop here; the next pass retries with backoff.
            refusal = _refusal(failures[0])
            if refusal:
                raise _refused("a worker pod", refusal)
            await self.event("CreateFailed", f"could not create worker pods: {failures[0]}", "Warning")
            raise RuntimeError(f"creating worker pods failed: {failures[0]}")
        return count

    async def delete_pods(self, pods: list[tuple[str, str | None]]) -> None:
        """Delete ``(name, uid)`` pods, each only if it still has that uid. A delete that fails is not
        expected any more (the pod is there until a LIST says otherwise); the first failure is raised
        once all were tried."""
        self.expectations.deleted(name for name, _ in pods)
        results = await asyncio.gather(*(self.kube.delete_pod(self.namespace, name, uid) for name, uid in pods),
                                       return_exceptions=True)
        failures = []
        for (name, _), result in zip(pods, results, strict=True):
            if isinstance(result, BaseException):
                self.expectations.not_deleted(name)
                failures.append(result)
        if failures:
            raise failures[0]


async def _once_set(event: asyncio.Event, call: Callable[[], Awaitable[T]]) -> T:
    await event.wait()
    return await call()


async def _all(calls: list[Awaitable[Any]]) -> None:
    """Run ``calls`` together, each to its end; then raise the first failure, a refusal first (it is what
    the status should say)."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise next((f for f in failures if isinstance(f, Rejected | NameTaken)),
                   next((f for f in failures if isinstance(f, NotYet)), failures[0]))


def _refusal(exc: BaseException) -> str | None:
    """The API server's message if ``exc`` is a refusal no retry would fix by itself soon."""
    if not isinstance(exc, ApiException) or exc.status not in (400, 403, 422):
        return None
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except ValueError:
        return str(exc.reason)


async def _refused_as_rejected(what: str, call: Awaitable[T]) -> T:
    try:
        return await call
    except ApiException as exc:
        refusal = _refusal(exc)
        if refusal:
            raise _refused(f"the {what}", refusal) from exc
        raise


#: The ServiceAccount admission plugin's refusal while a namespace's default account is not created yet,
#: whole: a webhook's or policy's message that merely quotes it (a label value) is an ordinary refusal,
#: retried once a minute, not every few seconds.
_NO_DEFAULT_ACCOUNT = re.compile(
    r'pods "[a-z0-9.-]+" is forbidden: error looking up service account ([a-z0-9-]+)/default: '
    r'serviceaccount "default" not found')


def _refused(what: str, refusal: str) -> Rejected | NotYet:
    missing = _NO_DEFAULT_ACCOUNT.fullmatch(refusal)
    if missing:
        return NotYet(f"waiting for the ServiceAccount 'default' of namespace {missing.group(1)}, which the "
                      f"cluster creates for every new namespace (the API server refused {what} without it); "
                      "trying again every few seconds")
    return Rejected(f"the API server refused {what}: {refusal}")

"""One serial driver per request. It wakes on a relevant change of the request, on its pods' events or on
a timer (:mod:`passes`), and does a level-triggered pass: admit the request (schema, policy, namespace
caps), observe what exists for it (:mod:`observer`), let a finished job wind down (:mod:`job_runner`) or the
cluster end itself (:mod:`shutdown`), plan and execute, and write the status if, and only if, it differs from
the one on the request. Its own status writes do not wake it (:func:`observe.relevant`), so a cluster at
rest is quiet. Retiring runs beside the passes (:mod:`retirement`); every write is fenced (:mod:`fence`).
"""

from __future__ import annotations

from typing import Any

from kubedask.spec import ClusterRequest, RequestError, parse_status

from . import drift, job, metrics, reconcile, status
from .admission import Admission
from .api import Host
from .executor import Executor, NameTaken, NotYet, Rejected
from .expectations import Expectations
from .job_runner import JobRunner
from .observe import Observation, reachable_scheduler_ip, relevant
from .observer import Observer
from .passes import run_passes
from .policy import NamespaceUsage, worker_claim
from .reporter import Reporter
from .retirement import Retirement
from .scheduler_polls import SchedulerPolls
from .shutdown import Shutdown
from .trigger import Trigger

Body = dict[str, Any]


class RequestDriver:
    def __init__(self, host: Host, body: Body) -> None:
        self.host, self.kube, self.settings, self.clock = host, host.kube, host.settings, host.clock
        metadata = body["metadata"]
        self.namespace, self.name, self.uid = metadata["namespace"], metadata["name"], metadata.get("uid")
        #: Older requests of a namespace are admitted first: (creationTimestamp, name) orders them.
        self.age = (str(metadata.get("creationTimestamp") or ""), self.name)
        self.body, self._view = body, relevant(body)
        self.trigger = Trigger(self.settings.debounce)
        self.reporter = Reporter(self.kube, body, self.clock, self.settings.expectation_timeout,
                                 self.settings.status_interval, self.trigger.pull)
        self.expectations = Expectations(self.clock, self.settings.expectation_timeout)
        self.retirement = Retirement(self.settings.retire_timeout, self.trigger.pull)
        self.executor = Executor(self.kube, self.namespace, self.name, self.uid, self.expectations,
                                 self.reporter.event, self.retirement, self.settings.first_batch,
                                 self.settings.max_in_flight)
        self.observer = Observer(self.kube, self.namespace, self.name, self.uid, self.expectations, self.retirement,
                                 self.clock, lambda: host.relisted_at, self.settings.resync_interval,
                                 self.settings.watched_views, lambda: host.pod_version(self.namespace))
        self.job = JobRunner(self.kube, self.namespace, self.name, self.uid, self.clock, self.reporter,
                             self.executor, self.settings.settle_delay)
        self.polls = SchedulerPolls(self.clock, self.settings.idle_poll_interval, self.settings.adapt_max_step)
        self.shutdown = Shutdown(self.kube, self.namespace, self.name, self.uid, self.clock, self.reporter,
                                 self.polls, self.settings.settle_delay)
        #: Workers this request was admitted to run (policy.worker_claim); None while not admitted.
        self.claim: int | None = None
        self._admission = Admission(self.name, self.namespace, self.settings.policy)
        self.failure_streak = 0

    def update(self, body: Body) -> None:
        self.body = body
        tampered = self.reporter.update(body)
        view = relevant(body)
        if view.heartbeat != self._view.heartbeat:
            self.shutdown.heartbeat_changed()
        if view != self._view or tampered:
            self._view = view
            self.trigger.pull()

    def on_pod_event(self, event_type: str | None, pod: Body) -> None:
        self.observer.pod_event(event_type, pod)
        self.trigger.pull()  # not ours: maybe one that holds our name went away

    def on_owned_event(self, event_type: str | None, obj: Body) -> None:
        """A Service or PodDisruptionBudget labelled with this cluster's name changed or went."""
        self.observer.owned_event(event_type, obj)
        self.trigger.pull()

    async def run(self) -> None:
        """Passes until cancelled (the controller cancels the task when the request goes)."""
        try:
            await run_passes(self.trigger, self.host.is_leader, self.reconcile_once, self.clock,
                             f"{self.namespace}/{self.name}")
        finally:
            self.retirement.cancel()
            self.reporter.cancel_deferred()

    async def reconcile_once(self) -> float | None:
        """One level-triggered pass; returns seconds until the next timed pass (None: only on events)."""
        if self.body["metadata"].get("deletionTimestamp"):
            return None  # the garbage collector removes the owned objects
        request = self.admission(self.host.usage_before(self))
        self._set_claim(None if isinstance(request, RequestError) or self.job.ended else worker_claim(request))
        if isinstance(request, RequestError):
            metrics.INVALID_REQUESTS.inc()
            metrics.RECONCILES.labels(result="invalid").inc()
            await self.reporter.failed(str(request), self._view.spec, "InvalidRequest")
            return None  # nothing to do until the request (or the usage of a namespace cap) changes
        seen = await self.observer.observe(request)
        if request.job_template is not None:
            final = await self.job.final(request, seen, parse_status(self.body["metadata"].get("annotations")))
            if final is not None:
                self._set_claim(None)  # a finished job holds no cluster and no workers: the caps free up
                return await self.job.wind_down(request, seen, final)
        if seen.taken or seen.leftovers:
            return await self._blocked(request, seen)
        ip = reachable_scheduler_ip(seen.observed)
        scheduler = self.settings.scheduler_client(ip) if ip else None
        reason = await self.shutdown.reason(request, scheduler)
        if reason:
            return await self.shutdown.end(request, reason)
        desired = await self.polls.desired_workers(request, seen.observed, scheduler)
        plan = reconcile.plan(request, seen.observed, desired, seen.service_type, seen.service)
        try:
            await self.executor.execute(request, plan, seen.observed, scheduler)
        except Rejected as exc:
            # The schema passed it but the API server (or an admission policy or quota) did not: as visible
            # as an invalid request, and retried slowly in case a quota frees up.
            metrics.RECONCILES.labels(result="rejected").inc()
            await self.reporter.failed(str(exc), request.fingerprint, "CreateRejected")
            return self.settings.rejected_retry
        except NameTaken as exc:
            return await self._blocked(request, seen, str(exc))
        except NotYet as exc:
            metrics.RECONCILES.labels(result="waiting").inc()
            await self.reporter.status(status.not_yet_status(str(exc), request.fingerprint))
            return self.settings.settle_delay
        if any(isinstance(a, reconcile.CreateJobPod) for a in plan.actions):
            self.job.created()
        restart = drift.scheduler_restart_message(request, seen.scheduler_pod)
        await self.reporter.status(job.with_job(status.cluster_status(
            request, self.namespace, seen.observed, desired, seen.external_address, self.polls.condition,
            scheduler_restart=restart, scheduler_spec=drift.built_from(seen.scheduler_pod)[1]),
            self.job.shown(seen), request))
        metrics.RECONCILES.labels(result="acted" if plan.actions else "ok").inc()
        self.failure_streak = self.failure_streak + 1 if plan.replaces_workers else 0  # backoff: pods keep exiting
        return reconcile.next_pass_delay(request, plan, self.failure_streak, resync=self.settings.resync_interval,
                                         settle=self.settings.settle_delay, idle_poll=self.settings.idle_poll_interval)

    async def _blocked(self, request: ClusterRequest, seen: Observation, taken: str | None = None) -> float:
        """One of the request's names is held by an object that is not its own: Failed (never adopted),
        or Pending while an earlier request's objects are garbage-collected. Looked at again soon: a
        foreign object need not carry labels that the watch would see go."""
        metrics.RECONCILES.labels(result="blocked").inc()
        taken = taken or next(iter(seen.taken), None)
        await self.reporter.status(*status.blocked_status(taken, next(iter(seen.leftovers), None),
                                                          request.fingerprint))
        return self.settings.name_taken_retry if taken else self.settings.settle_delay

    def admission(self, usage: NamespaceUsage) -> ClusterRequest | RequestError:
        """The request as admitted while older requests of the namespace hold ``usage``, carrying its
        ``user.kubedask.io/`` labels (every pass works on the labelled request), or why not."""
        return self._admission.of(self.body.get("data") or {}, self._view.spec, self.body["metadata"].get("labels"),
                                  usage)

    def _set_claim(self, claim: int | None) -> None:
        if claim != self.claim:
            self.claim = claim
            self.host.claim_changed(self)

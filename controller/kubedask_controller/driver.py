"""One serial driver per request. It wakes on a relevant change of the request, on its pods' events, or
on a timer (adapt, idle and heartbeat checks, a slow resync), and does a level-triggered pass: admit the
request (schema, policy, namespace caps); list what exists for it (a consistent LIST by label, not the
possibly-stale watch cache) and observe it; plan and execute; write the status if, and only if, it changed.
The controller's own status writes do not wake it (:func:`observe.relevant`), so a cluster at rest is quiet.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from kubedask.spec import ClusterRequest, RequestError, scheduler_name

from . import builders, metrics, reconcile, status
from .admission import Admission
from .api import Host, SchedulerApi
from .executor import Executor, Rejected
from .expectations import Expectations
from .observe import Observation, heartbeat_of, observe, owned_by, relevant
from .policy import NamespaceUsage, worker_claim
from .reporter import Reporter
from .scheduler_polls import SchedulerPolls
from .trigger import Trigger

logger = logging.getLogger(__name__)
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
        self.reporter = Reporter(self.kube, body, self.clock)
        self.expectations = Expectations(self.clock, self.settings.expectation_timeout)
        self.executor = Executor(self.kube, self.namespace, self.name, self.uid, self.expectations,
                                 self.reporter.event, self.settings.first_batch, self.settings.max_in_flight)
        self.polls = SchedulerPolls(self.clock, self.settings.idle_poll_interval, self.settings.adapt_max_step)
        self.observed_since = self.clock.wall()  # a silent client gets a full heartbeat timeout first
        #: Workers this request was admitted to run (policy.worker_claim); None while not admitted.
        self.claim: int | None = None
        self._admission = Admission(self.name, self.namespace, self.settings.policy)
        self.failure_streak = self.error_streak = 0

    def update(self, body: Body) -> None:
        self.body = self.reporter.body = body
        if relevant(body) != self._view:
            self._view = relevant(body)
            self.trigger.pull()

    def on_pod_event(self, event_type: str | None, pod: Body) -> None:
        if owned_by(pod, self.uid):
            deleting = event_type == "DELETED" or bool(pod["metadata"].get("deletionTimestamp"))
            self.expectations.seen(pod["metadata"]["name"], deleting)
            self.trigger.pull()

    async def run(self) -> None:
        """Passes until cancelled (the controller cancels the task when the request goes)."""
        delay: float | None = 0.0
        while True:
            await self.trigger.wait(delay)
            if not self.host.is_leader():
                delay = None  # pulled again when this replica becomes the leader
                continue
            started = self.clock.monotonic()
            try:
                delay = await self.reconcile_once()
                self.error_streak = 0
            except Exception as exc:
                self.error_streak += 1
                delay = min(60.0, 2.0 ** self.error_streak)
                metrics.ERRORS.inc()
                metrics.RECONCILES.labels(result="error").inc()
                logger.warning("reconcile %s/%s failed (retry in %.0f s): %s", self.namespace, self.name, delay,
                               exc, exc_info=logger.isEnabledFor(logging.DEBUG))
            finally:
                metrics.LATENCY.observe(self.clock.monotonic() - started)

    async def reconcile_once(self) -> float | None:
        """One level-triggered pass; returns seconds until the next timed pass (None: only on events)."""
        if self.body["metadata"].get("deletionTimestamp"):
            return None  # the garbage collector removes the owned objects
        request = self.admission(self.host.usage_before(self))
        self._set_claim(None if isinstance(request, RequestError) else worker_claim(request))
        if isinstance(request, RequestError):
            metrics.INVALID_REQUESTS.inc()
            metrics.RECONCILES.labels(result="invalid").inc()
            await self.reporter.failed(str(request), self._view.spec, "InvalidRequest")
            return None  # nothing to do until the request (or the usage of a namespace cap) changes
        seen = await self._observe(request)
        scheduler = self._scheduler(seen.observed)
        reason = reconcile.shutdown_reason(
            request, now=self.clock.wall(), idle_since=await self.polls.poll_idle(request, scheduler),
            heartbeat=heartbeat_of(self.body), observed_since=self.observed_since)
        if reason:
            await self.reporter.status(status.terminating_status(request, reason), ("ShuttingDown", reason, "Normal"))
            await self.kube.delete_configmap(self.namespace, self.name)
            return None

        desired = await self.polls.desired_workers(request, seen.observed, scheduler)
        plan = reconcile.plan(request, seen.observed, desired)
        try:
            await self.executor.execute(request, plan, seen.observed, scheduler)
        except Rejected as exc:
            # The schema passed it but the API server (or an admission policy or quota) did not: as visible
            # as an invalid request, and retried slowly in case a quota frees up.
            metrics.RECONCILES.labels(result="rejected").inc()
            await self.reporter.failed(str(exc), request.fingerprint, "CreateRejected")
            return self.settings.rejected_retry
        await self.reporter.status(status.cluster_status(request, self.namespace, seen.observed, desired,
                                                         seen.external_address, self.polls.condition))
        metrics.RECONCILES.labels(result="acted" if plan.actions else "ok").inc()
        self.failure_streak = self.failure_streak + 1 if plan.replaces_workers else 0  # backoff: pods keep exiting
        return reconcile.next_pass_delay(request, plan, self.failure_streak, resync=self.settings.resync_interval,
                                         settle=self.settings.settle_delay, idle_poll=self.settings.idle_poll_interval)

    async def _observe(self, request: ClusterRequest) -> Observation:
        pods = await self.kube.list_pods(self.namespace, builders.selector_string(self.name))
        service = pdb = None
        if request.deploy_mode == "remote":
            service, pdb = await asyncio.gather(self.kube.get_service(self.namespace, scheduler_name(self.name)),
                                                self.kube.get_pdb(self.namespace, scheduler_name(self.name)))
        return observe(self.name, self.uid, pods, self.expectations, service, pdb)

    def admission(self, usage: NamespaceUsage) -> ClusterRequest | RequestError:
        """The request as admitted while older requests of the namespace hold ``usage``, or why not."""
        return self._admission.of(self.body.get("data") or {}, self._view.spec, usage)

    def _set_claim(self, claim: int | None) -> None:
        if claim != self.claim:
            self.claim = claim
            self.host.claim_changed(self)

    def _scheduler(self, observed: reconcile.Observed) -> SchedulerApi | None:
        scheduler = observed.scheduler
        if scheduler and scheduler.ready and scheduler.ip and not scheduler.deleting:
            return self.settings.scheduler_client(scheduler.ip)
        return None

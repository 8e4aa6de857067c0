"""One request's batch job between passes: whether it has ended, its final status (read once), its TTL,
and the passes after its end (:meth:`JobRunner.wind_down`).

The driver asks :meth:`JobRunner.final` on every pass of a request with a ``job-template``. A job has ended
when its pod did (:func:`job.outcome`), when a pod it created went away before it ended, or when the
request already carries a final status (written by an earlier controller process): a finished job is
never run again. The log tail is read once, when the end is first seen, so the final status, and with it
the request, stay as they are from then on. ``job-ttl`` is counted on this process's clock from then.
"""

from __future__ import annotations

import logging

from kubedask.spec import ClusterRequest, ClusterStatus, job_name
from kubernetes.client.exceptions import ApiException

from . import job, metrics
from .api import ClusterApi
from .clock import Clock
from .executor import Executor
from .observe import Observation
from .reporter import Reporter

logger = logging.getLogger(__name__)


class JobRunner:
    def __init__(self, kube: ClusterApi, namespace: str, name: str, uid: str | None, clock: Clock,
                 reporter: Reporter, executor: Executor, settle_delay: float) -> None:
        self.kube, self.namespace, self.name, self.uid, self.clock = kube, namespace, name, uid, clock
        self.reporter, self.executor, self.settle_delay = reporter, executor, settle_delay
        #: The job pod was seen or created by this process (so a missing one went away).
        self.started = False
        self.final_status: ClusterStatus | None = None
        #: When (this process's monotonic clock) the end was first seen: job-ttl counts from here.
        self.ended_at: float | None = None

    @property
    def ended(self) -> bool:
        return self.final_status is not None

    def shown(self, seen: Observation) -> job.JobOutcome | None:
        """How the job is doing by the pod listed in this pass (None: not listed, e.g. created after the LIST)."""
        return job.outcome(seen.job_pod) if seen.job_pod is not None else None

    def outcome(self, seen: Observation) -> job.JobOutcome | None:
        """How the job is doing now (None: its pod is not created yet); a pod that was there and is not any
        more went away before it ended."""
        if seen.job_pod is not None:
            self.started = True
            return job.outcome(seen.job_pod)
        return job.gone(job_name(self.name)) if self.started else None

    def created(self) -> None:
        self.started = True

    async def final(self, request: ClusterRequest, seen: Observation,
                    on_request: ClusterStatus | None) -> ClusterStatus | None:
        """The request's final status if its job has ended, else None (the cluster runs on)."""
        if self.final_status is None:
            recorded = job.recorded(on_request)
            if recorded is not None:
                self.final_status = recorded.model_copy(update={"updated_at": None})
            else:
                self.started = self.started or job.started(on_request)
                result = self.outcome(seen)
                if result is None or not result.finished:
                    return None
                tail, problem = ("", None) if result.never_started else await self._log_tail(result.pod)
                self.final_status = job.final_status(request, result, job.message(result, tail, problem))
            self.ended_at = self.clock.monotonic()
        return self.final_status

    async def wind_down(self, request: ClusterRequest, seen: Observation, final: ClusterStatus) -> float | None:
        """A pass after the job ended: its cluster goes (the job pod stays, for its log), the request keeps its
        final status, and is deleted ``job-ttl`` seconds after this process saw the end. Returns the seconds
        until the next timed pass."""
        self.executor.retirement.cancel()
        succeeded = final.phase == "Succeeded"
        # The outcome first: a delete that fails (and is retried) must not hide how the job went.
        await self.reporter.status(final, ("JobSucceeded" if succeeded else "JobFailed", final.message,
                                           "Normal" if succeeded else "Warning"))
        plan = job.teardown(seen)
        await self.executor.execute(request, plan, seen.observed, None)
        metrics.RECONCILES.labels(result="acted" if plan.actions else "ok").inc()
        left = self.ttl_left(request)
        if left is not None and left <= 0:
            await self.reporter.event("JobExpired", f"the job ended {int(request.job_ttl or 0)} s ago (job-ttl); "
                                      "deleting the request")
            if await self.kube.delete_configmap(self.namespace, self.name, self.uid):
                return None
            return self.settle_delay  # gone or replaced meanwhile: its watch event drops the driver
        delays = [d for d in (self.settle_delay if plan.actions else None, left) if d is not None]
        return min(delays) if delays else None

    def ttl_left(self, request: ClusterRequest) -> float | None:
        """Seconds until the finished request is deleted (<= 0: now), or None: it is kept."""
        if request.job_ttl is None or self.ended_at is None:
            return None
        return request.job_ttl - (self.clock.monotonic() - self.ended_at)

    async def _log_tail(self, pod: str) -> tuple[str, str | None]:
        """The last lines of the job's log, or why they cannot be read (the job finishes either way)."""
        try:
            return job.log_tail(await self.kube.read_pod_log(self.namespace, pod, job.LOG_LINES)), None
        except ApiException as exc:
            if exc.status == 403:
                return "", (f"the controller may not read pod logs in namespace {self.namespace} (it needs get on "
                            f"pods/log)")
            if exc.status in (400, 404):  # no container ever started, or the pod is gone
                return "", None
            return "", f"{exc.status} {exc.reason}"
        except Exception as exc:  # an unreachable API server must not keep the job from finishing
            logger.warning("%s/%s: cannot read the job's log: %s", self.namespace, self.name, exc)
            return "", str(exc) or type(exc).__name__

"""A cluster that ends itself: its scheduler idle past ``idle-timeout``, or its client silent past
``client-heartbeat-timeout`` (:func:`decisions.shutdown_reason` decides; this module watches the heartbeat
and carries the decision out).

The heartbeat's value is never compared with a clock: this process notes, on its own monotonic clock,
when the annotation last changed (or the request was first seen, so a silent client gets a full timeout
after a controller restart too). Ending means a Terminating status and an Event, then deleting the
request, only if it is unchanged since that status write: a heartbeat renewed meanwhile (409) keeps the
cluster, and the next pass looks again. The garbage collector removes the owned objects.
"""

from __future__ import annotations

from kubedask.spec import ClusterRequest

from . import decisions, status
from .api import ClusterApi, SchedulerApi
from .clock import Clock
from .reporter import Reporter
from .scheduler_polls import SchedulerPolls


class Shutdown:
    def __init__(self, kube: ClusterApi, namespace: str, name: str, uid: str | None, clock: Clock,
                 reporter: Reporter, polls: SchedulerPolls, settle_delay: float) -> None:
        self.kube, self.namespace, self.name, self.uid, self.clock = kube, namespace, name, uid, clock
        self.reporter, self.polls, self.settle_delay = reporter, polls, settle_delay
        #: When (this process's monotonic clock) the heartbeat annotation last changed, or was first seen.
        self.heartbeat_changed_at = clock.monotonic()

    def heartbeat_changed(self) -> None:
        self.heartbeat_changed_at = self.clock.monotonic()

    async def reason(self, request: ClusterRequest, scheduler: SchedulerApi | None) -> str | None:
        """Why the cluster should end now (asking the scheduler's idle time at its own pace), or None."""
        return decisions.shutdown_reason(
            request, now=self.clock.wall(), idle_since=await self.polls.poll_idle(request, scheduler),
            heartbeat_silence=self.clock.monotonic() - self.heartbeat_changed_at)

    async def end(self, request: ClusterRequest, reason: str) -> float | None:
        """Report the end and delete the request; seconds until the next pass if it was not deleted."""
        await self.reporter.status(status.terminating_status(request, reason), ("ShuttingDown", reason, "Normal"))
        deleted = await self.kube.delete_configmap(self.namespace, self.name, self.uid,
                                                   self.reporter.resource_version)
        return None if deleted else self.settle_delay

"""Leader election on a coordination.k8s.io Lease, so several replicas never act at once.

Every replica watches and keeps its caches warm; only the holder of the Lease reconciles. This follows
client-go's leaderelection: a replica takes over only after it has seen the Lease unchanged for a full
``lease_duration`` by its own clock (no trust in other machines' clocks), and the holder stops acting
once it has failed to renew for ``renew_deadline`` (< ``lease_duration``), so the two never overlap.

The holder's deadline is measured from when its successful renewal was SENT (the standby's full lease
duration starts only once it has read that renewal), on the loop's monotonic clock: a replica paused past
its deadline (SIGSTOP) wakes up no longer leading, and every write is fenced by :attr:`is_leader`
(``fence.py``) until it has renewed.

Cost at rest: a healthy holder renews every ``renew_period`` (15 s: 4 writes a minute) with a plain
update on the resourceVersion its last write returned, no GET before it (a conflict, 409, means someone
else wrote: the next round reads the Lease again). A renewal that fails is retried every ``retry_period``
(2 s) until one goes through or the deadline passes: the default 25 s deadline leaves 10 s for retries
and for an event loop too busy to renew on time (a stall of seconds at 10,000 pods on 2 cores), and 5 s
(``lease_duration`` 30 s) before a standby may act. The standby reads the Lease every ``retry_period``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import uuid
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

from . import metrics
from .api import LeaseApi, Manifest
from .clock import Clock

logger = logging.getLogger(__name__)


def default_identity() -> str:
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}-{uuid.uuid4().hex[:6]}"


def _micro_time(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def timing_error(lease_duration: float, renew_deadline: float, renew_period: float, retry_period: float) -> str | None:
    """Why these durations could let two replicas act at once (or the holder lapse at rest), if they could:
    the holder must renew before its deadline, and stop acting before anyone may take over."""
    if 0 < renew_period < renew_deadline < lease_duration and retry_period > 0:
        return None
    return (f"leader election needs 0 < renew period ({renew_period:g} s) < renew deadline ({renew_deadline:g} s) "
            f"< lease duration ({lease_duration:g} s) and a retry period > 0 ({retry_period:g} s)")


class LeaderElector:
    def __init__(self, kube: LeaseApi | None, namespace: str, name: str = "kubedask-controller",
                 identity: str | None = None, lease_duration: float = 30.0, renew_deadline: float = 25.0,
                 retry_period: float = 2.0, on_started_leading: Callable[[], None] | None = None,
                 enabled: bool = True, clock: Clock | None = None, renew_period: float = 15.0) -> None:
        error = timing_error(lease_duration, renew_deadline, renew_period, retry_period)
        if error:
            raise ValueError(error)
        self.kube = kube
        self.clock = clock or Clock()
        self.namespace = namespace
        self.name = name
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.renew_period = renew_period
        self.retry_period = retry_period
        self.on_started_leading = on_started_leading
        self.enabled = enabled
        self._renewed_at = float("-inf")  # monotonic time of our last successful acquire/renew
        #: The Lease as our last successful write returned it: renewed without a GET while it holds.
        self._held: Manifest | None = None
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        #: Whether a round of the election has gone through (readiness: until then this replica does not
        #: know whether it leads).
        self.settled = not enabled

    @property
    def deadline(self) -> float:
        """Until when (monotonic) this replica may act: its last renewal's send time plus the renew
        deadline, a margin (``lease_duration - renew_deadline``) before anyone may take over, for writes in
        flight and clock drift."""
        return self._renewed_at + self.renew_deadline

    @property
    def is_leader(self) -> bool:
        if not self.enabled:
            return True
        return self.clock.monotonic() < self.deadline

    def leads_at(self, monotonic_now: float) -> bool:
        """:attr:`is_leader` at a time read elsewhere: for threads, where no event loop runs to ask."""
        return not self.enabled or monotonic_now < self.deadline

    async def run(self) -> None:
        if not self.enabled:
            metrics.LEADER.set(1)
            if self.on_started_leading:
                self.on_started_leading()
            return
        was_leader = False  # as of the end of the previous round (the deadline may pass while sleeping)
        while True:
            # Lapsed since the last round (a pause, a slow round): drivers that found no lease wait for a wake-up.
            lapsed = not self.is_leader
            renewed = False
            try:
                renewed = await self._try_acquire_or_renew()
            except (ApiException, OSError) as exc:
                self._held = None  # the write may or may not have landed: read the Lease next round
                logger.warning("leader election: lease %s/%s not renewed (retry in %g s): %s", self.namespace,
                               self.name, self.retry_period, exc)
            except Exception:
                self._held = None
                logger.exception("leader election: unexpected error")
            else:
                self.settled = True
            leader = self.is_leader
            metrics.LEADER.set(1 if leader else 0)
            if leader and (lapsed or not was_leader):
                logger.info("leader election: %s is now the leader", self.identity)
                if self.on_started_leading:
                    self.on_started_leading()
            elif was_leader and not leader:
                logger.warning("leader election: %s lost the lease", self.identity)
            was_leader = leader
            await asyncio.sleep(self._next_round(renewed))

    def _next_round(self, renewed: bool) -> float:
        """Seconds to the next round: a renew period after a renewal was sent, else (a failed or refused
        renewal, a standby watching the holder) a retry period."""
        if renewed:
            return max(0.0, self._renewed_at + self.renew_period - self.clock.monotonic())
        return self.retry_period

    async def _try_acquire_or_renew(self) -> bool:
        """One round; True if this replica wrote the Lease (acquired or renewed it)."""
        assert self.kube is not None
        # Taken before anything is sent: a renewal that takes long must not extend the deadline.
        sent = self.clock.monotonic()
        now = dt.datetime.fromtimestamp(self.clock.wall(), dt.UTC)
        spec_new = {"holderIdentity": self.identity, "leaseDurationSeconds": int(self.lease_duration),
                    "renewTime": _micro_time(now)}
        lease = self._held
        if lease is None:
            lease = await self.kube.get_lease(self.namespace, self.name)
        if lease is None:
            spec_new["acquireTime"] = _micro_time(now)
            try:
                created = await self.kube.create_lease(self.namespace, {
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec_new})
            except ApiException as exc:
                if exc.status == 409:
                    return False
                raise
            self._renewed_at, self._held = sent, created
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        if lease is not self._held:  # read just now: is someone else holding it?
            record = (holder, spec.get("renewTime"), spec.get("leaseTransitions"))
            mono = self.clock.monotonic()
            if record != self._observed:
                self._observed, self._observed_at = record, mono
            expired = mono - self._observed_at >= float(spec.get("leaseDurationSeconds") or self.lease_duration)
            if holder and holder != self.identity and not expired:
                return False
        if holder == self.identity:
            spec_new["acquireTime"] = spec.get("acquireTime") or _micro_time(now)
            spec_new["leaseTransitions"] = spec.get("leaseTransitions") or 0
        else:
            spec_new["acquireTime"] = _micro_time(now)
            spec_new["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace,
                             "resourceVersion": lease["metadata"]["resourceVersion"]},
                "spec": spec_new}
        try:
            replaced = await self.kube.replace_lease(self.namespace, self.name, body)
        except ApiException as exc:
            if exc.status == 409:  # someone else wrote first (or our copy is stale); read it next round
                self._held = None
                return False
            raise
        self._renewed_at, self._held = sent, replaced
        return True

    async def release(self) -> None:
        """Give the lease up on a clean shutdown so a standby takes over at once."""
        if not self.enabled or not self.is_leader or self.kube is None:
            return
        try:
            lease = await self.kube.get_lease(self.namespace, self.name)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = None
                lease["spec"]["leaseDurationSeconds"] = 1
                await self.kube.replace_lease(self.namespace, self.name, lease)
        except Exception as exc:
            # Not fatal: a standby takes over once the lease expires, only later.
            logger.warning("leader election: could not release lease %s/%s (a standby takes over when it "
                           "expires, in %.0f s): %s", self.namespace, self.name, self.lease_duration, exc)
        self._renewed_at, self._held = float("-inf"), None

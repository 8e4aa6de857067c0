"""What a request's users see of the controller: the status written back to the request, and Events.

The status is compared with the status actually ON the request (the watched body), not with a memory
of what was written, so a status a user removes or alters is written again; and it is written only when
something visible differs (``status.status_patch``), so a cluster at rest costs no writes. Between a
write and its watch event the written status stands in for the body's (else the next pass would write
it twice). A phase change to Running or Failed is announced as an Event.

Progress alone (counts and messages, with the same phase and the same condition states) is written at
most once per ``progress_interval``: a cluster of 1,000 workers coming up would otherwise write its status
on most passes, and 100 such clusters keep the API server and etcd busy with writes nobody reads that
fast. A change held back is written by the pass that ``wake`` asks for when the interval is over (that
pass computes the status afresh); phase and condition changes, Events and repairs are written at once.

Events never hold up a pass: :meth:`Reporter.event` queues one and returns, and a single task per request
posts the queue in order (fenced like every write: one whose send finds the lease gone is not sent). The
queue is bounded (:data:`EVENT_BACKLOG`): while the Event API is slow or down, the oldest waiting Events
are dropped and counted (``kubedask_events_dropped_total``). The task exists only while Events wait, so
the ones a request's last pass queued (``ShuttingDown``) are still posted after its driver has stopped.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from kubedask.spec import PHASE_LABEL, STATUS_ANNOTATION, ClusterStatus, parse_status

from . import metrics, status
from .api import ClusterApi
from .clock import Clock
from .fence import LostLease

logger = logging.getLogger(__name__)

Body = dict[str, Any]
#: Events of one request waiting to be posted, at most (a pass announces a handful).
EVENT_BACKLOG = 32


class Reporter:
    def __init__(self, kube: ClusterApi, body: Body, clock: Clock, echo_timeout: float = 60.0,
                 progress_interval: float = 0.0, wake: Callable[[], None] = lambda: None) -> None:
        self.kube = kube
        self.clock = clock
        #: How long a write not yet seen in the watch stands in for the body's status.
        self.echo_timeout = echo_timeout
        #: Seconds between writes that only show progress, and how to ask for the pass that writes one.
        self.progress_interval, self.wake = progress_interval, wake
        self._written_at = float("-inf")
        self._deferred: asyncio.TimerHandle | None = None
        metadata = body["metadata"]
        self.namespace, self.name = metadata["namespace"], metadata["name"]
        self.body = body
        #: The last status annotation and phase this process wrote, and until when it awaits its echo.
        self._written: tuple[str | None, str | None] | None = None
        self._unseen_until = float("-inf")
        #: The request's resourceVersion after the last status write (for preconditions), else the body's.
        self.resource_version: str | None = metadata.get("resourceVersion")
        #: Events not yet posted (the request as it was, reason, message, type), oldest first.
        self.backlog: collections.deque[tuple[Body, str, str, str]] = collections.deque(maxlen=EVENT_BACKLOG)
        self._poster: asyncio.Task[None] | None = None

    def _on_body(self, body: Body) -> tuple[str | None, str | None]:
        metadata = body["metadata"]
        return ((metadata.get("annotations") or {}).get(STATUS_ANNOTATION),
                (metadata.get("labels") or {}).get(PHASE_LABEL))

    def update(self, body: Body) -> bool:
        """A newer body from the watch; True if its status is not what this process last wrote (a user
        removed or changed it), so a pass should repair it."""
        self.body = body
        self.resource_version = body["metadata"].get("resourceVersion") or self.resource_version
        if self._written is None:
            return False
        if self._on_body(body) == self._written:
            self._unseen_until = float("-inf")  # our write has come back
            return False
        return not self._awaiting_echo

    @property
    def _awaiting_echo(self) -> bool:
        return self.clock.monotonic() < self._unseen_until

    async def event(self, reason: str, message: str, type_: str = "Normal") -> None:
        """Queue an Event on the request; it is posted after those queued before it, without waiting."""
        log = logger.warning if type_ == "Warning" else logger.info
        log("%s/%s: %s: %s", self.namespace, self.name, reason, message)
        if len(self.backlog) == self.backlog.maxlen:
            dropped = self.backlog[0]
            metrics.EVENTS_DROPPED.inc()
            logger.warning("%s/%s: Event %s not posted: %d Events already wait for a slow Event API",
                           self.namespace, self.name, dropped[1], len(self.backlog))
        self.backlog.append((self.body, reason, message, type_))  # the deque drops the oldest when full
        if self._poster is None or self._poster.done():
            self._poster = asyncio.get_running_loop().create_task(
                self._post_backlog(), name=f"kubedask:events:{self.namespace}/{self.name}")
            await asyncio.sleep(0)  # its request goes out now, not after the rest of the pass

    async def _post_backlog(self) -> None:
        while self.backlog:
            body, reason, message, type_ = self.backlog.popleft()
            try:
                await self.kube.post_event(body, reason, message, type_)
            except LostLease as exc:
                logger.info("%s/%s: Event %s: %s", self.namespace, self.name, reason, exc)
            except Exception as exc:  # best effort, like the API's own refusals (kube.post_event)
                logger.warning("%s/%s: could not post Event %s: %s", self.namespace, self.name, reason, exc)

    async def flush(self) -> None:
        """Until every queued Event has been posted (or refused)."""
        while self._poster is not None and not self._poster.done():
            await asyncio.shield(self._poster)

    async def close(self, timeout: float) -> None:
        """Post what is queued for up to ``timeout`` seconds, then drop the rest (counted) and stop."""
        poster = self._poster
        if poster is None or poster.done():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), timeout)
        if not poster.done():
            metrics.EVENTS_DROPPED.inc(len(self.backlog) + 1)  # the one being posted, too
            self.backlog.clear()
            poster.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poster

    async def failed(self, message: str, fingerprint: str | None, reason: str) -> None:
        """The request cannot run as it stands: phase Failed with ``message``, and a Warning Event."""
        await self.status(status.invalid_status(message, fingerprint), event=(reason, message, "Warning"))

    async def status(self, new: ClusterStatus, event: tuple[str, str, str] | None = None) -> None:
        """Write ``new`` if it differs from the status on the request; ``event`` goes with the write."""
        if self._written is not None and self._awaiting_echo:
            raw, phase = self._written
        else:
            raw, phase = self._on_body(self.body)
        previous = parse_status({STATUS_ANNOTATION: raw} if raw else None)
        # Any byte of the annotation not as written (a field added to the JSON) is repaired too.
        altered = self._written is not None and raw != self._written[0]
        patch = status.status_patch(new, previous, {PHASE_LABEL: phase} if phase else {},
                                    now=status.timestamp(self.clock.wall()), force=altered)
        if patch is None:
            self.cancel_deferred()
            return
        if event is None and not altered and phase == new.phase and status.progress_only(previous, new):
            wait = self._written_at + self.progress_interval - self.clock.monotonic()
            if wait > 0:
                self._defer(wait)
                return
        self.cancel_deferred()
        logger.debug("%s/%s: status changes: %s", self.namespace, self.name, patch["metadata"]["annotations"])
        # Phase Events follow what this process announced, not a phase someone else wrote meanwhile.
        announced = self._written[1] if self._written is not None else (previous.phase if previous else None)
        patched = await self.kube.patch_configmap(self.namespace, self.name, patch)
        self._written = (patch["metadata"]["annotations"][STATUS_ANNOTATION], new.phase)
        self._written_at = self.clock.monotonic()
        self._unseen_until = self._written_at + self.echo_timeout
        if patched is not None:
            self.resource_version = (patched.get("metadata") or {}).get("resourceVersion") or self.resource_version
        if event:
            await self.event(*event)
        elif announced != new.phase and new.phase in ("Running", "Failed"):
            await self.event(f"Phase{new.phase}", new.message)

    def _defer(self, wait: float) -> None:
        if self._deferred is None:
            self._deferred = asyncio.get_running_loop().call_later(wait, self._deferred_due)

    def _deferred_due(self) -> None:
        self._deferred = None
        self.wake()

    def cancel_deferred(self) -> None:
        """No pass is to be asked for a held-back write (one is being written, or the driver stops)."""
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None

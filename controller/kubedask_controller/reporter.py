"""What a request's users see of the controller: the status written back to the request, and Events.

The status is compared with the status actually ON the request (the watched body), not with a memory
of what was written, so a status a user removes or alters is written again; and it is written only when
something visible differs (``status.status_patch``), so a cluster at rest costs no writes. Between a
write and its watch event the written status stands in for the body's (else the next pass would write
it twice). A phase change to Running or Failed is announced as an Event.
"""

from __future__ import annotations

import logging
from typing import Any

from kubedask.spec import PHASE_LABEL, STATUS_ANNOTATION, ClusterStatus, parse_status

from . import status
from .api import ClusterApi
from .clock import Clock

logger = logging.getLogger(__name__)

Body = dict[str, Any]


class Reporter:
    def __init__(self, kube: ClusterApi, body: Body, clock: Clock, echo_timeout: float = 60.0) -> None:
        self.kube = kube
        self.clock = clock
        #: How long a write not yet seen in the watch stands in for the body's status.
        self.echo_timeout = echo_timeout
        metadata = body["metadata"]
        self.namespace, self.name = metadata["namespace"], metadata["name"]
        self.body = body
        #: The last status annotation and phase this process wrote, and until when it awaits its echo.
        self._written: tuple[str | None, str | None] | None = None
        self._unseen_until = float("-inf")
        #: The request's resourceVersion after the last status write (for preconditions), else the body's.
        self.resource_version: str | None = metadata.get("resourceVersion")

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
        log = logger.warning if type_ == "Warning" else logger.info
        log("%s/%s: %s: %s", self.namespace, self.name, reason, message)
        await self.kube.post_event(self.body, reason, message, type_)

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
            return
        logger.debug("%s/%s: status changes: %s", self.namespace, self.name, patch["metadata"]["annotations"])
        # Phase Events follow what this process announced, not a phase someone else wrote meanwhile.
        announced = self._written[1] if self._written is not None else (previous.phase if previous else None)
        patched = await self.kube.patch_configmap(self.namespace, self.name, patch)
        self._written = (patch["metadata"]["annotations"][STATUS_ANNOTATION], new.phase)
        self._unseen_until = self.clock.monotonic() + self.echo_timeout
        if patched is not None:
            self.resource_version = (patched.get("metadata") or {}).get("resourceVersion") or self.resource_version
        if event:
            await self.event(*event)
        elif announced != new.phase and new.phase in ("Running", "Failed"):
            await self.event(f"Phase{new.phase}", new.message)

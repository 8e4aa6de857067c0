"""What a request's users see of the controller: the status written back to the request, and Events.

The status is written only when something visible changed (see ``status.status_patch``), so a cluster at
rest costs no writes; a phase change to Running or Failed is announced as an Event.
"""

from __future__ import annotations

import logging
from typing import Any

from kubedask.spec import ClusterStatus, parse_status

from . import status
from .api import ClusterApi
from .clock import Clock

logger = logging.getLogger(__name__)

Body = dict[str, Any]


class Reporter:
    def __init__(self, kube: ClusterApi, body: Body, clock: Clock) -> None:
        self.kube = kube
        self.clock = clock
        #: The request as last seen; Events are posted on it (the driver keeps it current).
        self.body = body
        metadata = body["metadata"]
        self.namespace, self.name = metadata["namespace"], metadata["name"]
        self.last_status: ClusterStatus | None = parse_status(metadata.get("annotations"))
        self.last_labels: dict[str, str] = dict(metadata.get("labels") or {})

    async def event(self, reason: str, message: str, type_: str = "Normal") -> None:
        log = logger.warning if type_ == "Warning" else logger.info
        log("%s/%s: %s: %s", self.namespace, self.name, reason, message)
        await self.kube.post_event(self.body, reason, message, type_)

    async def failed(self, message: str, fingerprint: str | None, reason: str) -> None:
        """The request cannot run as it stands: phase Failed with ``message``, and a Warning Event."""
        await self.status(status.invalid_status(message, fingerprint), event=(reason, message, "Warning"))

    async def status(self, new: ClusterStatus, event: tuple[str, str, str] | None = None) -> None:
        """Write ``new`` if it differs from what was last written; ``event`` goes with the write."""
        patch = status.status_patch(new, self.last_status, self.last_labels, now=status.timestamp(self.clock.wall()))
        if patch is None:
            return
        previous_phase = self.last_status.phase if self.last_status else None
        logger.debug("%s/%s: status changes: %s", self.namespace, self.name, patch["metadata"]["annotations"])
        await self.kube.patch_configmap(self.namespace, self.name, patch)
        self.last_status = parse_status(patch["metadata"]["annotations"])
        self.last_labels.update(patch["metadata"]["labels"])
        if event:
            await self.event(*event)
        elif previous_phase != new.phase and new.phase in ("Running", "Failed"):
            await self.event(f"Phase{new.phase}", new.message)

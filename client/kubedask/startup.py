"""Waiting for a new (or adopted) request to become a usable cluster: visible, bounded, and explicit.

Three clocks bound the wait: no status at all within ``controller_timeout`` means no controller is acting
on the request; after that, the scheduler must become ready within ``scheduler_timeout``; and a scheduler
pod that cannot start (image pull failure, crash loop) ends the wait at once, quoting its events and log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import diagnostics, spec
from .errors import (
    ControllerNotRespondingError,
    KubeClusterError,
    RequestRejectedError,
    SchedulerStartError,
    SchedulerStartTimeoutError,
)
from .kube import Api
from .request_io import POLL_START

#: Seconds between reads of the status at most while a cluster starts: a scheduler is often ready 2-3 s
#: in, and a wait that had doubled to 2 s would add most of that again to a cold start.
READY_POLL_MAX = 0.5


@dataclass
class StartupWait:
    """Polls one request's status until its scheduler is ready.

    Example:
        >>> status = await StartupWait(api, "team-a", "analysis", "remote", 30, 120, print).until_ready(cm)
        ... # doctest: +SKIP
    """

    api: Api
    namespace: str
    name: str
    deploy_mode: str
    controller_timeout: float
    scheduler_timeout: float  # 0: no limit
    log: Callable[[str], Any]

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def scheduler_pod(self) -> str:
        return spec.scheduler_name(self.name)

    async def until_ready(self, request: dict[str, Any]) -> spec.ClusterStatus:
        """Poll the request's status until the scheduler is ready; raise a clear error otherwise."""
        # The event loop's clock: the one asyncio.sleep follows, and the one a test can make fake.
        loop = asyncio.get_running_loop()
        started = loop.time()
        accepted_at: float | None = None
        interval = POLL_START
        last_report = ""
        while True:
            status = spec.parse_status((request.get("metadata") or {}).get("annotations"))
            now = loop.time()
            if status is None:
                if now - started > self.controller_timeout:
                    raise ControllerNotRespondingError(
                        f"No kubedask controller acted on request {self.where} within "
                        f"{self.controller_timeout:g}s (kubernetes.controller-timeout). Is the controller "
                        f"installed and watching namespace {self.namespace!r}? "
                        f"See: kubectl -n {self.namespace} describe configmap {self.name}"
                    )
            else:
                if accepted_at is None:
                    accepted_at = now
                report = (
                    f"{status.phase}: {status.message} "
                    f"(workers ready {status.workers.ready}/{status.workers.requested})"
                )
                if report != last_report:
                    self.log(f"Cluster {self.name}: {report}")
                    last_report = report
                if status.phase == "Failed":
                    raise await self._failure(status)
                if self._ready(status):
                    return status
                if self.deploy_mode == "remote":
                    await self._check_scheduler_pod()
                waited = now - accepted_at
                if self.scheduler_timeout and waited > self.scheduler_timeout:
                    raise SchedulerStartTimeoutError(
                        f"The scheduler of {self.where} did not become ready within "
                        f"{self.scheduler_timeout:g}s (kubernetes.scheduler-service-wait-timeout); "
                        f"last status {report}\n{await self._scheduler_diagnostics(None)}"
                    )
            await asyncio.sleep(interval)
            interval = min(interval * 2, READY_POLL_MAX)
            latest = await self.api.read_configmap(self.name)
            if latest is None:
                raise KubeClusterError(f"the request {self.where} was deleted while waiting for the cluster")
            request = latest

    def _ready(self, status: spec.ClusterStatus) -> bool:
        if self.deploy_mode == "local":
            return True  # our own scheduler is running; the controller accepted the request
        condition = status.condition("SchedulerReady")
        if condition is not None:
            return condition.status == "True" and bool(status.scheduler_address)
        return status.phase in ("Running", "Scaling") and bool(status.scheduler_address)

    async def _failure(self, status: spec.ClusterStatus) -> KubeClusterError:
        valid = status.condition("RequestValid")
        if valid is not None and valid.status == "False":
            return RequestRejectedError(
                f"The controller rejected request {self.where}: {valid.message or status.message}"
            )
        if self.deploy_mode == "remote":
            return SchedulerStartError(
                f"Cluster {self.where} failed: {status.message}\n{await self._scheduler_diagnostics(None)}"
            )
        return RequestRejectedError(f"Cluster {self.where} failed: {status.message}")

    async def _check_scheduler_pod(self) -> None:
        pod = await self.api.read_pod(self.scheduler_pod)
        if pod is None:
            return
        reason = diagnostics.fatal_reason(pod)
        if reason is not None:
            raise SchedulerStartError(
                f"The scheduler of {self.where} cannot start: {reason}\n"
                f"{await self._scheduler_diagnostics(reason)}"
            )

    async def _scheduler_diagnostics(self, reason: str | None) -> str:
        name = self.scheduler_pod
        try:
            events = diagnostics.format_events(await self.api.events_for("Pod", name))
            log_tail = diagnostics.tail(await self.api.pod_log(name, tail_lines=20))
        except Exception as e:  # diagnostics must never hide the error they explain
            return f"(could not read the scheduler pod's events and log: {e})"
        return diagnostics.explain(name, reason, events, log_tail)

# mypy: disallow-untyped-calls=False
# (distributed has no type hints; calling it is the point here.)
"""One KubeCluster's hold on its cluster: the API client, the request, the heartbeat, the way to the
scheduler, and what closing must undo. :class:`~kubedask.KubeCluster` is the facade Dask users see;
this is what it drives.

Example:
    >>> options = ClusterOptions.resolve(name="analysis", namespace="team-a",
    ...                                  pod_template={"spec": {"containers": [{"image": "i"}]}})
    >>> session = Session(options, attach=False, auth=[], security=None, log=print)
    >>> session.manifest()["metadata"]["name"]
    'analysis'
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from dask.utils import parse_timedelta

from . import spec
from .auth import ClusterAuth, LoadedAuth
from .connect import host_of, reach_scheduler
from .kube import Api, KubeApi, Manifest
from .local_mode import local_worker_address, start_local_scheduler
from .logs import selector as pod_selector
from .options import ClusterOptions
from .portforward import PortForward
from .request_io import RequestIO, build_manifest, heartbeat_interval
from .startup import StartupWait
from .templates import add_env, required_affinity

logger = logging.getLogger(__name__)


class Session:
    """Opens (creates or adopts) one cluster and connects to it; closes or aborts what it opened."""

    def __init__(
        self, options: ClusterOptions, *, attach: bool, auth: ClusterAuth | list[ClusterAuth], security: Any,
        log: Callable[[str], Any],
    ) -> None:
        self.name = options.name
        self.options = options
        self.attach = attach
        self.auth = auth
        self.security = security
        self.log = log
        self.namespace = options.namespace
        # Attaching learns these two from the request itself.
        self.deploy_mode = options.deploy_mode
        self.heartbeat_timeout = options.heartbeat_timeout
        self.api: Api | None = None
        self.request: RequestIO | None = None
        self.loaded_auth: LoadedAuth | None = None
        self.created = False
        self.heartbeat: asyncio.Task[None] | None = None
        self.forward: PortForward | None = None
        self.local_scheduler: Any = None
        self.dashboard: tuple[str, int] | None = None
        self.route = "unknown"

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.name}"

    def kube(self) -> Api:
        if self.api is None:
            raise RuntimeError(f"the cluster {self.where} is not started")
        return self.api

    def requests(self) -> RequestIO:
        if self.request is None:
            raise RuntimeError(f"the cluster {self.where} is not started")
        return self.request

    def manifest(self, scheduler_address: str | None = None) -> Manifest:
        """The request ConfigMap this cluster writes (a dict), built without contacting Kubernetes."""
        options = self.options
        assert options.worker_template is not None
        env, affinity = options.env, options.apply_default_affinity
        worker = add_env(options.worker_template, env)
        scheduler = add_env(options.scheduler_template, env) if options.scheduler_template else None
        if affinity == "required":
            worker = required_affinity(worker, "worker")
            scheduler = required_affinity(scheduler, "scheduler") if scheduler is not None else None
        idle = self.options.idle_timeout
        return build_manifest(
            self.name, self.namespace or "default", worker=worker, workers=self.options.n_workers,
            scheduler=scheduler if self.deploy_mode == "remote" else None, service_type=self.options.service_type,
            idle_timeout=None if idle is None else float(parse_timedelta(idle, default="seconds")),
            deploy_mode=self.deploy_mode, scheduler_address=scheduler_address,
            heartbeat_timeout=self.heartbeat_timeout,
            worker_groups={g: (add_env(t, env), n) for g, (t, n) in options.worker_groups.items()},
        )

    async def open(self) -> str:
        """Create (or adopt) the request, wait until the cluster is usable, and return the scheduler's
        address. On failure the caller calls :meth:`abort`."""
        self.loaded_auth = await asyncio.to_thread(ClusterAuth.load_first, self.auth)
        self.namespace = self.namespace or self.loaded_auth.namespace or "default"
        self.api = KubeApi(self.loaded_auth.configuration, self.namespace)
        self.request = RequestIO(self.api, self.name)
        if self.attach:
            adopted = await self.request.adopt()
            request = adopted.request
            self.deploy_mode = adopted.deploy_mode
            self.heartbeat_timeout = adopted.heartbeat_timeout or self.heartbeat_timeout
        else:
            request = await self._create()
        self.heartbeat = asyncio.create_task(self.request.renew_heartbeats(heartbeat_interval(self.heartbeat_timeout)))
        status = await StartupWait(
            api=self.api, namespace=self.namespace, name=self.name, deploy_mode=self.deploy_mode,
            controller_timeout=self.options.controller_timeout, scheduler_timeout=self.options.service_wait_timeout,
            log=self.log,
        ).until_ready(request)
        return await self._connect(status)

    async def _create(self) -> Manifest:
        address = None
        if self.deploy_mode == "local":
            options = self.options
            self.local_scheduler = await start_local_scheduler(
                options.host, options.port, options.interface, options.protocol, options.dashboard_address,
                self.security, options.idle_timeout)
            assert self.loaded_auth is not None
            address = await local_worker_address(
                self.kube(), self.loaded_auth.configuration.host, self.local_scheduler.address, options.protocol,
                options.host, options.interface)
        if self.options.apply_default_affinity == "none":
            logger.info("apply_default_affinity='none': the controller still adds its preferred node affinity")
        created = await self.requests().create(self.manifest(scheduler_address=address))
        self.created = True
        self.log(f"Requested Dask cluster {self.where} ({self.deploy_mode} scheduler)")
        return created

    async def _connect(self, status: spec.ClusterStatus) -> str:
        if self.deploy_mode == "local" and self.local_scheduler is not None:
            address = str(self.local_scheduler.address)
            dashboard = self.local_scheduler.services.get("dashboard")
            if dashboard is not None:
                self.dashboard = (host_of(address), dashboard.port)
            self.route = "local"
        elif self.deploy_mode == "local":
            # Attached to someone else's local-mode cluster: its scheduler is where the workers connect.
            address = ((await self.requests().read()).get("data") or {}).get(spec.KEY_SCHEDULER_ADDRESS, "")
            self.route = "local"
        else:
            assert self.loaded_auth is not None and self.namespace is not None
            connection = await reach_scheduler(
                status, self.loaded_auth.configuration, self.namespace, self.name, self.options.dns_retries)
            address, self.route = connection.address, connection.route
            self.dashboard, self.forward = connection.dashboard, connection.forward
        logger.info("Connecting to scheduler %s (%s)", address, self.route)
        return address

    async def close(self, delete: bool, timeout: float | None = None) -> None:
        """Stop the heartbeat; delete the request and wait (bounded) for its pods if ``delete``; release."""
        await self.stop_heartbeat()
        try:
            if delete and self.request is not None:
                selector = pod_selector(self.name, None)
                await self.request.delete_and_wait(selector, self.options.close_timeout if timeout is None else timeout)
        finally:
            await self.release()

    async def abort(self) -> None:
        """Undo a failed start: delete what we requested, stop what we started."""
        await self.stop_heartbeat()
        if self.created and self.api is not None:
            with contextlib.suppress(Exception):
                await self.api.delete_configmap(self.name)
        with contextlib.suppress(Exception):
            await self.release()

    async def stop_heartbeat(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.heartbeat
            self.heartbeat = None

    async def release(self) -> None:
        if self.forward is not None:
            await self.forward.close()
            self.forward = None
        if self.local_scheduler is not None:
            await self.local_scheduler.close()
            self.local_scheduler = None
        if self.api is not None:
            self.api.close()

    def delete_at_exit(self) -> None:
        """Blocking, loop-free deletion of the request; used at interpreter exit."""
        if self.api is None:
            return
        try:
            self.api.delete_configmap_blocking(self.name)
        except Exception as e:
            logger.warning("Could not delete %s at exit: %r", self.where, e)

# mypy: disallow-untyped-calls=False
# (distributed and the kubernetes config loaders have no type hints; calling them is the point here.)
"""KubeCluster: a classic-compatible Dask cluster manager that talks to Kubernetes through ConfigMaps.

The client never creates pods. It writes a request ConfigMap, renews a heartbeat on it while open, reads
the status the controller writes back, and connects to the scheduler (cluster DNS, an external address,
or an in-process port-forward). See :class:`KubeCluster`.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import math
import time
import weakref
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any, ClassVar

import dask.config
from dask.utils import parse_timedelta
from distributed.core import Status, rpc
from distributed.deploy.cluster import Cluster
from distributed.security import Security
from distributed.utils import Log, Logs, format_dashboard_link
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from . import config as kconfig
from . import spec
from .auth import ClusterAuth, LoadedAuth
from .connect import PortForward, choose_route, host_of, local_scheduler_ip, port_of, running_in_cluster
from .errors import (
    ClusterNotFoundError,
    KubeClusterError,
)
from .kube import KubeApi
from .naming import render_name, validate_name
from .startup import POLL_MAX, POLL_START, StartupWait
from .templates import PodTemplate, add_env, load_pod_template, required_affinity

logger = logging.getLogger(__name__)


class KubeCluster(Cluster):
    """Launch a Dask cluster on Kubernetes, through the kubedask controller.

    A drop-in replacement for the classic ``dask_kubernetes.KubeCluster``: the same arguments, the same
    ``kubernetes.*`` Dask configuration, ``scale``, ``adapt``, ``get_logs``, ``pods``, ``close`` and
    ``dashboard_link``. The difference is underneath: the client only writes a labelled ConfigMap (so users
    need no pod rights), the controller creates and repairs the pods, scaling and adaptivity happen in the
    controller, and a cluster whose client disappears is reaped after ``client-heartbeat-timeout``.

    Parameters:
        pod_template: the worker pod: a ``kubernetes.client.V1Pod`` (e.g. from :func:`make_pod_spec`), a
            dict, or a path to a YAML file. Defaults to ``kubernetes.worker-template`` or the file in
            ``kubernetes.worker-template-path``.
        name: the cluster name or a name template (``{user}``, ``{uuid}``, environment variables);
            default ``kubernetes.name`` (``"dask-{user}-{uuid}"``).
        namespace: default: the service account's or kubeconfig context's namespace, else ``default``.
        n_workers: workers to request at start (``kubernetes.count.start``).
        host, port, interface, protocol, dashboard_address, security: where the scheduler listens in
            ``deploy_mode="local"``. ``host`` (or ``interface``) also chooses the address workers use
            to connect back; by default it is discovered (see :func:`local_scheduler_ip`).
        env: environment variables for the scheduler and worker containers.
        auth: a :class:`~kubedask.ClusterAuth` or a list tried in order (``[InCluster(), KubeConfig()]``).
        idle_timeout: shut the cluster down after this long without work (e.g. ``"1 hour"``).
        deploy_mode: ``"remote"`` (scheduler in a pod) or ``"local"`` (scheduler in this process).
        scheduler_service_wait_timeout: seconds to wait for the scheduler once the controller accepted
            the request (0: no limit; image-pull failures and crashes still end the wait at once).
        scheduler_service_name_resolution_retries: DNS attempts for the scheduler Service in-cluster.
        scheduler_pod_template: the scheduler pod; default: derived from the worker template by the
            controller (its main container runs the scheduler).
        apply_default_affinity: ``"preferred"`` (the controller's default), ``"required"`` or ``"none"``.
        scheduler_service_type: ``ClusterIP``, ``NodePort`` or ``LoadBalancer``.
        controller_timeout: seconds to wait for a controller to act on the request.
        client_heartbeat_timeout: seconds without heartbeat after which the controller reaps the cluster.
        shutdown_on_close: delete the cluster on :meth:`close` (``from_name`` defaults to False).
        asynchronous: use with ``await`` / ``async with``.

    Example:
        >>> from kubedask import KubeCluster, make_pod_spec
        >>> pod_spec = make_pod_spec(image="ghcr.io/dask/dask:latest", memory_limit="1G",
        ...                          memory_request="512M", cpu_limit=1, cpu_request="100m")
        >>> cluster = KubeCluster(pod_spec)  # doctest: +SKIP
        >>> cluster.scale(2)  # doctest: +SKIP
        >>> from dask.distributed import Client
        >>> client = Client(cluster)  # doctest: +SKIP
    """

    _instances: ClassVar[weakref.WeakSet[KubeCluster]] = weakref.WeakSet()

    def __init__(
        self,
        pod_template: PodTemplate | None = None,
        name: str | None = None,
        namespace: str | None = None,
        n_workers: int | None = None,
        host: str | None = None,
        port: int | None = None,
        env: Mapping[str, Any] | None = None,
        auth: ClusterAuth | list[ClusterAuth] | None = None,
        idle_timeout: str | float | None = None,
        deploy_mode: str | None = None,
        interface: str | None = None,
        protocol: str | None = None,
        dashboard_address: str | None = None,
        security: Security | None = None,
        scheduler_service_wait_timeout: float | None = None,
        scheduler_service_name_resolution_retries: int | None = None,
        scheduler_pod_template: PodTemplate | None = None,
        apply_default_affinity: str = "preferred",
        scheduler_service_type: str | None = None,
        controller_timeout: float | None = None,
        client_heartbeat_timeout: float | None = None,
        shutdown_on_close: bool = True,
        asynchronous: bool = False,
        loop: Any = None,
        quiet: bool = False,
        _attach: bool = False,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise TypeError(f"KubeCluster got unexpected keyword arguments {sorted(kwargs)}")
        self._attach = _attach
        self.namespace = kconfig.get("namespace", namespace)
        self.env = dict(kconfig.get("env", env) or {})
        self.host = kconfig.get("host", host)
        self.port = int(kconfig.get("port", port) or 0)
        self._interface = kconfig.get("interface", interface)
        self._protocol = kconfig.get("protocol", protocol)
        self._dashboard_address = kconfig.get("dashboard_address", dashboard_address)
        self._n_workers = int(kconfig.get("count.start", n_workers) or 0)
        self._idle_timeout = kconfig.get("idle-timeout", idle_timeout)
        self._deploy_mode = kconfig.get("deploy-mode", deploy_mode)
        self._service_type = kconfig.get("scheduler-service-type", scheduler_service_type)
        self._service_wait_timeout = float(
            kconfig.get("scheduler-service-wait-timeout", scheduler_service_wait_timeout) or 0
        )
        self._dns_retries = int(
            kconfig.get(
                "scheduler-service-name-resolution-retries", scheduler_service_name_resolution_retries
            )
        )
        self._controller_timeout = float(kconfig.get("controller-timeout", controller_timeout))
        self._heartbeat_timeout = float(kconfig.get("client-heartbeat-timeout", client_heartbeat_timeout))
        self._close_timeout = float(kconfig.get("close-timeout"))
        self.apply_default_affinity = apply_default_affinity
        self.shutdown_on_close = shutdown_on_close
        self.auth = auth if auth is not None else ClusterAuth.DEFAULT
        self.security = security
        if security is not None and not isinstance(security, Security):
            raise RuntimeError("security must be a distributed.security.Security object")
        if self._deploy_mode not in ("remote", "local"):
            raise ValueError(f"deploy_mode must be 'remote' or 'local', not {self._deploy_mode!r}")
        if apply_default_affinity not in ("preferred", "required", "none"):
            raise ValueError('apply_default_affinity must be one of "none", "preferred" or "required"')

        self.pod_template = _template_from_config(pod_template, "worker")
        self.scheduler_pod_template = _template_from_config(scheduler_pod_template, "scheduler")
        if self.pod_template is None and not _attach:
            raise ValueError(
                "Worker pod specification not provided: pass a pod template (make_pod_spec(...), a dict or a "
                "YAML path) or set kubernetes.worker-template / kubernetes.worker-template-path"
            )

        if _attach:
            if name is None:
                raise ValueError("from_name needs the name of an existing cluster")
            validate_name(name)
            cluster_name = name
        else:
            template = name if name is not None else (kconfig.get("worker-name") or kconfig.get("name"))
            cluster_name = render_name(template)

        # The request's name, kept apart from Cluster.name, which distributed may overwrite with metadata
        # stored on the scheduler.
        self.request_name = cluster_name
        self._api: KubeApi | None = None
        self._loaded_auth: LoadedAuth | None = None
        self._created_request = False
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._forward: PortForward | None = None
        self._local_scheduler: Any = None
        self._dashboard_hostport: tuple[str, int] | None = None
        self._route = "unknown"

        super().__init__(asynchronous=asynchronous, loop=loop, quiet=quiet, name=cluster_name)
        KubeCluster._instances.add(self)

        if not self.called_from_running_loop:
            self._loop_runner.start()
            try:
                self.sync(self._start)
            except BaseException:
                self._loop_runner.stop()  # _start already cleaned up; don't leak the loop thread
                raise

    # --- alternative constructors ---------------------------------------------------------------------

    @classmethod
    def from_dict(cls, pod_spec: Mapping[str, Any], **kwargs: Any) -> KubeCluster:
        """Create a cluster from a worker pod manifest given as a dict (same as the constructor).

        Example:
            >>> KubeCluster.from_dict({"spec": {"containers": [{"image": "ghcr.io/dask/dask:latest",
            ...     "args": ["dask-worker", "$(DASK_SCHEDULER_ADDRESS)"]}]}})  # doctest: +SKIP
        """
        return cls(dict(pod_spec), **kwargs)

    @classmethod
    def from_yaml(cls, yaml_path: str, **kwargs: Any) -> KubeCluster:
        """Create a cluster from a worker pod manifest in a YAML file (same as the constructor).

        Example:
            >>> KubeCluster.from_yaml("worker-spec.yml", deploy_mode="local")  # doctest: +SKIP
        """
        return cls(yaml_path, **kwargs)

    @classmethod
    def from_name(cls, name: str, namespace: str | None = None, **kwargs: Any) -> KubeCluster:
        """Attach to an existing cluster by name; closing it then does not delete it (by default).

        Example:
            >>> cluster = KubeCluster.from_name("analysis", namespace="team-a")  # doctest: +SKIP
            >>> cluster.scale(5)  # doctest: +SKIP
        """
        kwargs.setdefault("shutdown_on_close", False)
        return cls(name=name, namespace=namespace, _attach=True, **kwargs)

    # --- start ----------------------------------------------------------------------------------------

    def __await__(self) -> Any:
        async def _() -> KubeCluster:
            if self.status == Status.created:
                await self._start()
            return self

        return _().__await__()

    async def _start(self) -> None:
        self.status = Status.starting
        try:
            self._loaded_auth = await asyncio.to_thread(ClusterAuth.load_first, self.auth)
            self.namespace = self.namespace or self._loaded_auth.namespace or "default"
            self._api = KubeApi(self._loaded_auth.configuration, self.namespace)
            if self._attach:
                request = await self._adopt_request()
            else:
                if self._deploy_mode == "local":
                    await self._start_local_scheduler()
                request = await self._create_request()
            self._heartbeat_task = asyncio.create_task(self._renew_heartbeat())
            assert self.namespace is not None
            status = await StartupWait(
                api=self._api,
                namespace=self.namespace,
                name=self.request_name,
                deploy_mode=self._deploy_mode,
                controller_timeout=self._controller_timeout,
                scheduler_timeout=self._service_wait_timeout,
                log=self._log,
            ).until_ready(request)
            await self._connect(status)
            await super()._start()
        except BaseException:
            await self._abort()
            raise
        self._log(f"Cluster {self._where} is ready; dashboard: {self.dashboard_link}")

    def request_manifest(self, scheduler_address: str | None = None) -> dict[str, Any]:
        """The request ConfigMap this cluster writes (a dict), built without contacting Kubernetes."""
        assert self.pod_template is not None
        worker = add_env(self.pod_template, self.env)
        scheduler = add_env(self.scheduler_pod_template, self.env) if self.scheduler_pod_template else None
        if self.apply_default_affinity == "required":
            worker = required_affinity(worker, "worker")
            if scheduler is not None:
                scheduler = required_affinity(scheduler, "scheduler")
        data = spec.build_request_data(
            worker_template=worker,
            workers=self._n_workers,
            scheduler_template=scheduler if self._deploy_mode == "remote" else None,
            scheduler_service_type=self._service_type,
            idle_timeout=_seconds(self._idle_timeout),
            deploy_mode=self._deploy_mode,
            scheduler_address=scheduler_address,
            client_heartbeat_timeout=self._heartbeat_timeout,
        )
        manifest = spec.build_request_configmap(self.request_name, self.namespace or "default", data)
        manifest["metadata"]["annotations"] = {spec.HEARTBEAT_ANNOTATION: spec.format_heartbeat()}
        return manifest

    async def _create_request(self) -> dict[str, Any]:
        assert self._api is not None
        address = await self._local_worker_address() if self._deploy_mode == "local" else None
        if self.apply_default_affinity == "none":
            logger.info(
                "apply_default_affinity='none': the controller still adds its preferred node affinity"
            )
        manifest = self.request_manifest(scheduler_address=address)
        try:
            created = await self._api.create_configmap(manifest)
        except ApiException as e:
            if e.status == 409:
                raise KubeClusterError(
                    f"a cluster named {self.request_name!r} already exists in namespace {self.namespace!r}; "
                    f"attach to it with KubeCluster.from_name({self.request_name!r}) or choose another name"
                ) from None
            raise
        self._created_request = True
        self._log(f"Requested Dask cluster {self._where} ({self._deploy_mode} scheduler)")
        return created

    async def _adopt_request(self) -> dict[str, Any]:
        assert self._api is not None
        request = await self._api.read_configmap(self.request_name)
        labels = ((request or {}).get("metadata") or {}).get("labels") or {}
        if request is None or labels.get(spec.REQUEST_LABEL) != spec.REQUEST_LABEL_VALUE:
            raise ClusterNotFoundError(
                f"no kubedask cluster named {self.request_name!r} in namespace {self.namespace!r}"
            )
        data = request.get("data") or {}
        self._deploy_mode = data.get(spec.KEY_DEPLOY_MODE) or "remote"
        raw_timeout = data.get(spec.KEY_HEARTBEAT_TIMEOUT)
        if raw_timeout:
            self._heartbeat_timeout = spec.parse_duration(raw_timeout, spec.KEY_HEARTBEAT_TIMEOUT)
        return request

    @property
    def _where(self) -> str:
        return f"{self.namespace}/{self.request_name}"

    @property
    def _scheduler_pod_name(self) -> str:
        return f"{self.request_name}-scheduler"

    # --- connecting -----------------------------------------------------------------------------------

    async def _connect(self, status: spec.ClusterStatus) -> None:
        connection_args = self.security.get_connection_args("client") if self.security else {}
        if self._deploy_mode == "local" and self._local_scheduler is not None:
            address = self._local_scheduler.address
            dashboard = self._local_scheduler.services.get("dashboard")
            if dashboard is not None:
                self._dashboard_hostport = (host_of(address), dashboard.port)
            self._route = "local"
        elif self._deploy_mode == "local":
            # Attached to someone else's local-mode cluster: its scheduler is where the workers connect.
            address = ((await self._read_request()).get("data") or {}).get(spec.KEY_SCHEDULER_ADDRESS, "")
            self._route = "local"
        else:
            route = await choose_route(
                status.scheduler_address,
                status.external_address,
                in_cluster=running_in_cluster(),
                dns_retries=self._dns_retries,
            )
            self._route = route.kind
            if route.address is not None and route.kind == "dns" and status.dashboard_address:
                self._dashboard_hostport = (
                    host_of(status.dashboard_address),
                    port_of(status.dashboard_address),
                )
            if route.address is None or self._dashboard_hostport is None:
                assert self._loaded_auth is not None and self.namespace is not None
                self._forward = PortForward(
                    self._loaded_auth.configuration,
                    self.namespace,
                    self._scheduler_pod_name,
                    [spec.SCHEDULER_PORT, spec.DASHBOARD_PORT],
                )
                await self._forward.start()
                if route.address is None:  # the scheduler itself goes through the forward
                    await self._forward.check(spec.SCHEDULER_PORT)
                self._dashboard_hostport = (
                    self._forward.host,
                    self._forward.local_ports[spec.DASHBOARD_PORT],
                )
            address = route.address or self._forward.address(spec.SCHEDULER_PORT)  # type: ignore[union-attr]
        logger.info("Connecting to scheduler %s (%s)", address, self._route)
        self.scheduler_comm = rpc(address, connection_args=connection_args)

    async def _read_request(self) -> dict[str, Any]:
        assert self._api is not None
        request = await self._api.read_configmap(self.request_name)
        if request is None:
            raise ClusterNotFoundError(f"the request {self._where} no longer exists")
        return request

    @property
    def dashboard_link(self) -> str:
        """The dashboard URL, formatted with ``distributed.dashboard.link`` (reachable from this process)."""
        if self._dashboard_hostport is None:
            return ""
        host, port = self._dashboard_hostport
        return str(format_dashboard_link(host, port))

    # --- local deploy mode ----------------------------------------------------------------------------

    async def _start_local_scheduler(self) -> None:
        from distributed import Scheduler

        protocol = self._protocol if "://" in self._protocol else f"{self._protocol}://"
        self._local_scheduler = Scheduler(
            # distributed refuses host and interface together; the configured host is only a default.
            host=None if self._interface else self.host,
            port=self.port,
            interface=self._interface,
            protocol=protocol,
            dashboard_address=self._dashboard_address,
            security=self.security,
            idle_timeout=self._idle_timeout,
        )
        await self._local_scheduler

    async def _local_worker_address(self) -> str:
        """The address pods use to reach the in-process scheduler."""
        assert self._local_scheduler is not None and self._api is not None and self._loaded_auth is not None
        port = port_of(self._local_scheduler.address)
        protocol = self._protocol.split("://")[0]
        # Towards the address the API server advertises to pods first: pods reach it by construction.
        targets = [*await self._api.apiserver_endpoints(), host_of(self._loaded_auth.configuration.host)]
        return f"{protocol}://{local_scheduler_ip(self.host, self._interface, targets)}:{port}"

    # --- heartbeat ------------------------------------------------------------------------------------

    async def _renew_heartbeat(self) -> None:
        """Renew the heartbeat annotation while open; the controller reaps the cluster if it stops."""
        # Three renewals per timeout tolerate a missed write or two; no more often than every 5 s.
        interval = max(5.0, self._heartbeat_timeout / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self._patch(
                    {"metadata": {"annotations": {spec.HEARTBEAT_ANNOTATION: spec.format_heartbeat()}}}
                )
            except ApiException as e:
                if e.status == 404:
                    logger.warning("The request %s was deleted; the cluster is gone", self._where)
                    return
                logger.warning("Could not renew the heartbeat of %s: %s", self._where, e.reason)
            except Exception as e:
                logger.warning("Could not renew the heartbeat of %s: %r", self._where, e)

    async def _patch(self, patch: Mapping[str, Any]) -> None:
        assert self._api is not None
        await self._api.patch_configmap(self.request_name, patch)

    # --- scaling --------------------------------------------------------------------------------------

    def scale(self, n: int) -> Any:
        """Ask for ``n`` workers (capped by ``kubernetes.count.max``); turns adaptive scaling off.

        Example:
            >>> cluster.scale(10)  # doctest: +SKIP
        """
        return self._request_change(self._scale(n))

    def _request_change(self, change: Coroutine[Any, Any, None]) -> Any:
        """Run a change of the request: blocking when synchronous; when asynchronous, start it now and
        return the task, so both ``cluster.scale(3)`` (as classic async code wrote it) and
        ``await cluster.scale(3)`` work."""
        if self.asynchronous:
            return asyncio.ensure_future(change)
        return self.sync(lambda: change)

    async def _scale(self, n: int) -> None:
        n = int(n)
        if n < 0:
            raise ValueError(f"cannot scale to {n} workers")
        maximum = kconfig.get("count.max")
        if maximum is not None and n > int(maximum):
            logger.info("Tried to scale beyond the maximum number of workers %d > %d", n, maximum)
            n = int(maximum)
        await self._patch({"data": {spec.KEY_WORKERS: str(n), spec.KEY_ADAPT: None}})

    def adapt(  # type: ignore[override]
        self,
        minimum: int | None = None,
        maximum: int | float | None = None,
        interval: str | float | None = None,
        cooldown: str | float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Let the controller scale between ``minimum`` and ``maximum`` workers, following the scheduler.

        Adaptivity runs in the controller, so it keeps working while this process sleeps. ``maximum``
        defaults to ``kubernetes.count.max`` (or unbounded). Options of distributed's client-side
        ``Adaptive`` other than ``interval`` are accepted and ignored.

        Example:
            >>> cluster.adapt(minimum=1, maximum=100)  # doctest: +SKIP
        """
        if kwargs:
            logger.info("adapt(): ignoring client-side Adaptive options %s", sorted(kwargs))
        return self._request_change(self._adapt(minimum, maximum, interval, cooldown))

    async def _adapt(
        self,
        minimum: int | None,
        maximum: int | float | None,
        interval: str | float | None,
        cooldown: str | float | None,
    ) -> None:
        cap = kconfig.get("count.max")
        if maximum is None or math.isinf(maximum):
            maximum = int(cap) if cap is not None else spec.MAX_WORKERS
        maximum = min(int(maximum), int(cap)) if cap is not None else int(maximum)
        minimum = int(minimum or 0)
        if minimum > maximum:
            raise ValueError(f"adapt(): minimum {minimum} is larger than maximum {maximum}")
        adapt: dict[str, Any] = {"minimum": minimum, "maximum": maximum}
        if interval is not None:
            adapt["interval"] = parse_timedelta(interval, default="seconds")
        if cooldown is not None:
            adapt["cooldown"] = parse_timedelta(cooldown, default="seconds")
        data = spec.build_request_data(worker_template="containers: [{name: x, image: x}]", adapt=adapt)
        await self._patch({"data": {spec.KEY_ADAPT: data[spec.KEY_ADAPT]}})

    # --- pods and logs --------------------------------------------------------------------------------

    def _selector(self, component: str | None) -> str:
        selector = f"{spec.CLUSTER_NAME_LABEL}={self.request_name}"
        if component is not None:
            selector += f",{spec.COMPONENT_LABEL}={component}"
        return selector

    def pods(self, component: str | None = "worker") -> Any:
        """The cluster's pods (``kubernetes.client.V1Pod``): workers by default, ``None`` for all.

        Example:
            >>> [p.metadata.name for p in cluster.pods()]  # doctest: +SKIP
            ['dask-alice-1a2b3c4d-5e-worker-x7k2p']
        """
        return self.sync(self._pods, component)

    async def _pods(self, component: str | None = "worker") -> list[client.V1Pod]:
        assert self._api is not None
        pods = await self._api.list_pod_objects(self._selector(component))
        return sorted(pods, key=pod_name)

    def logs(self, pod: str | client.V1Pod | None = None) -> Any:
        """The log of one pod (a name or a V1Pod), or with no argument all logs like :meth:`get_logs`.

        Example:
            >>> print(cluster.logs(cluster.pods()[0]))  # doctest: +SKIP
        """
        if pod is None:
            return self.get_logs()
        name = pod if isinstance(pod, str) else pod_name(pod)
        return self.sync(self._pod_log, name)

    async def _pod_log(self, name: str) -> Log:
        assert self._api is not None
        return Log(await self._api.pod_log(name))

    async def _get_logs(
        self, cluster: bool = True, scheduler: bool = True, workers: bool | Iterable[str] = True
    ) -> Logs:
        """Logs keyed ``"Scheduler"`` and by worker pod name (plus ``"Cluster"``: this client's messages)."""
        logs = Logs()
        if cluster:
            logs["Cluster"] = Log("\n".join(line for _, line in self._cluster_manager_logs))
        if scheduler:
            if self._local_scheduler is not None and self.scheduler_comm is not None:
                lines = await self.scheduler_comm.get_logs()
                logs["Scheduler"] = Log("\n".join(line for _, line in lines))
            elif self._deploy_mode == "remote":
                logs["Scheduler"] = await self._pod_log(self._scheduler_pod_name)
        if workers:
            wanted = None if workers is True else set(workers)
            names = [pod_name(p) for p in await self._pods("worker")]
            names = [n for n in names if wanted is None or n in wanted]
            for name, log in zip(
                names, await asyncio.gather(*(self._pod_log(n) for n in names)), strict=True
            ):
                logs[name] = log
        return logs

    # --- closing --------------------------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> Any:
        """Delete the cluster (unless attached with ``from_name``) and wait, bounded, for its pods to go.

        Example:
            >>> cluster.close()  # doctest: +SKIP
        """
        if self.status == Status.closed:
            return None if not self.asynchronous else _done()
        result = self.sync(self._close, timeout=timeout)
        if not self.asynchronous:
            self._loop_runner.stop()
        return result

    async def _close(self, timeout: float | None = None) -> None:
        if self.status == Status.closed:
            return
        await super()._close()
        await self._stop_heartbeat()
        try:
            if self.shutdown_on_close and self._api is not None:
                await self._delete_and_wait(self._close_timeout if timeout is None else timeout)
        finally:
            await self._release()

    async def _delete_and_wait(self, timeout: float) -> None:
        assert self._api is not None
        await self._api.delete_configmap(self.request_name)
        deadline = time.monotonic() + timeout
        interval = POLL_START
        while True:
            try:
                remaining = await self._api.list_pods(self._selector(None))
            except ApiException as e:
                logger.warning("Cannot check that the pods of %s are gone: %s", self.request_name, e.reason)
                return
            if not remaining:
                return
            if time.monotonic() > deadline:
                names = ", ".join(p["metadata"]["name"] for p in remaining)
                logger.warning("Pods of %s still terminating after %gs: %s", self._where, timeout, names)
                return
            await asyncio.sleep(interval)
            interval = min(interval * 2, POLL_MAX)

    async def _stop_heartbeat(self) -> None:
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
            self._heartbeat_task = None

    async def _release(self) -> None:
        if self._forward is not None:
            await self._forward.close()
            self._forward = None
        if self._local_scheduler is not None:
            await self._local_scheduler.close()
            self._local_scheduler = None
        if self._api is not None:
            self._api.close()
        KubeCluster._instances.discard(self)

    async def _abort(self) -> None:
        """Undo a failed start: delete what we requested, stop what we started."""
        await self._stop_heartbeat()
        if self._created_request and self._api is not None:
            with contextlib.suppress(Exception):
                await self._api.delete_configmap(self.request_name)
        with contextlib.suppress(Exception):
            if self.scheduler_comm is not None:
                await self.scheduler_comm.close_rpc()
        with contextlib.suppress(Exception):
            await self._release()
        self.status = Status.closed

    def _delete_at_exit(self) -> None:
        """Blocking, loop-free deletion of the request; used at interpreter exit."""
        if self.status == Status.closed or not self.shutdown_on_close or self._api is None:
            return
        try:
            self._api.delete_configmap_blocking(self.request_name)
        except Exception as e:
            logger.warning("Could not delete %s at exit: %r", self._where, e)
        self.status = Status.closed


def pod_name(pod: client.V1Pod) -> str:
    """The name of a pod object (the generated models type every field as optional)."""
    return str(pod.metadata.name) if pod.metadata is not None else ""


def _template_from_config(template: PodTemplate | None, pod_type: str) -> dict[str, Any] | None:
    """The explicit template, else ``kubernetes.<type>-template``, else ``...-template-path``."""
    loaded = load_pod_template(template)
    if loaded is not None:
        return loaded
    inline = kconfig.get(f"{pod_type}-template")
    if inline:
        return load_pod_template(dask.config.expand_environment_variables(inline))
    path = kconfig.get(f"{pod_type}-template-path")
    if path:
        return load_pod_template(str(path))
    return None


def _seconds(value: str | float | None) -> float | None:
    if value is None:
        return None
    return float(parse_timedelta(value, default="seconds"))


async def _done() -> None:
    return None


@atexit.register
def _reap_clusters() -> None:
    # At exit the event loop may be gone (async users) or busy; deleting the request is what matters, and
    # the controller's garbage collection removes the pods.
    for cluster in list(KubeCluster._instances):
        cluster._delete_at_exit()

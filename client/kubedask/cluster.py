# mypy: disallow-untyped-calls=False
# (distributed and the kubernetes config loaders have no type hints; calling them is the point here.)
"""KubeCluster: a classic-compatible Dask cluster manager that talks to Kubernetes through ConfigMaps.

The client never creates pods. It writes a request ConfigMap, renews a heartbeat on it while open, reads
the status the controller writes back, and connects to the scheduler (cluster DNS, an external address,
or an in-process port-forward). This is the facade Dask users see; ``session`` opens and closes the cluster
behind it, ``options`` reads arguments and Dask config.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import weakref
from collections.abc import Coroutine, Mapping
from typing import Any, ClassVar

from distributed.core import Status, rpc
from distributed.deploy.cluster import Cluster
from distributed.security import Security
from distributed.utils import format_dashboard_link

from . import config as kconfig
from .auth import ClusterAuth
from .connect import with_forward_error
from .logs import PodsAndLogsMixin
from .options import ClusterOptions
from .request_io import adapt_settings, scale_target
from .session import Session
from .templates import PodTemplate
from .worker_groups import GroupsArgument, WorkerGroupsMixin

logger = logging.getLogger(__name__)


class KubeCluster(WorkerGroupsMixin, PodsAndLogsMixin, Cluster):
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
        worker_groups: named worker groups besides the default one: ``{"gpu": (pod_template, n_workers)}``
            (or just a pod template: no workers yet); see :meth:`add_worker_group`.
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
        self, pod_template: PodTemplate | None = None, name: str | None = None, namespace: str | None = None,
        n_workers: int | None = None, host: str | None = None, port: int | None = None,
        env: Mapping[str, Any] | None = None, auth: ClusterAuth | list[ClusterAuth] | None = None,
        idle_timeout: str | float | None = None, deploy_mode: str | None = None, interface: str | None = None,
        protocol: str | None = None, dashboard_address: str | None = None, security: Security | None = None,
        scheduler_service_wait_timeout: float | None = None,
        scheduler_service_name_resolution_retries: int | None = None,
        scheduler_pod_template: PodTemplate | None = None, apply_default_affinity: str = "preferred",
        scheduler_service_type: str | None = None, controller_timeout: float | None = None,
        client_heartbeat_timeout: float | None = None, shutdown_on_close: bool = True,
        worker_groups: GroupsArgument | None = None,
        asynchronous: bool = False, loop: Any = None, quiet: bool = False, _attach: bool = False, **kwargs: Any,
    ) -> None:
        if kwargs:
            raise TypeError(f"KubeCluster got unexpected keyword arguments {sorted(kwargs)}")
        self._options = ClusterOptions.resolve(
            name=name, attach=_attach, pod_template=pod_template, scheduler_pod_template=scheduler_pod_template,
            namespace=namespace, env=env, host=host, port=port, interface=interface, protocol=protocol,
            dashboard_address=dashboard_address, n_workers=n_workers, idle_timeout=idle_timeout,
            deploy_mode=deploy_mode, scheduler_service_type=scheduler_service_type,
            scheduler_service_wait_timeout=scheduler_service_wait_timeout,
            scheduler_service_name_resolution_retries=scheduler_service_name_resolution_retries,
            controller_timeout=controller_timeout, client_heartbeat_timeout=client_heartbeat_timeout,
            apply_default_affinity=apply_default_affinity, worker_groups=worker_groups,
        )
        if security is not None and not isinstance(security, Security):
            raise RuntimeError("security must be a distributed.security.Security object")
        # The request's name: Cluster.name may be overwritten by distributed from the scheduler's metadata.
        self.request_name = self._options.name
        self.pod_template, self.scheduler_pod_template = self._options.worker_template, self._options.scheduler_template
        self.env, self.host, self.port = self._options.env, self._options.host, self._options.port
        self.apply_default_affinity, self.shutdown_on_close = apply_default_affinity, shutdown_on_close
        self.auth, self.security = auth if auth is not None else ClusterAuth.DEFAULT, security
        self._session = Session(self._options, attach=_attach, auth=self.auth, security=security, log=self._log)

        super().__init__(asynchronous=asynchronous, loop=loop, quiet=quiet, name=self.request_name)
        KubeCluster._instances.add(self)
        if not self.called_from_running_loop:
            self._loop_runner.start()
            try:
                self.sync(self._start)
            except BaseException:
                self._loop_runner.stop()  # _start already cleaned up; don't leak the loop thread
                raise

    @property
    def namespace(self) -> str | None:
        """The cluster's namespace (known once started, when it comes from the service account or context)."""
        return self._session.namespace

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
            address = await self._session.open()
            connection_args = self.security.get_connection_args("client") if self.security else {}
            self.scheduler_comm = rpc(address, connection_args=connection_args)
            await super()._start()
        except BaseException as exc:
            explained = with_forward_error(exc, self._session.forward)
            await self._abort()
            if explained is not exc:
                raise explained from exc
            raise
        self._log(f"Cluster {self._session.where} is ready; dashboard: {self.dashboard_link}")

    def request_manifest(self, scheduler_address: str | None = None) -> dict[str, Any]:
        """The request ConfigMap this cluster writes (a dict), built without contacting Kubernetes."""
        return self._session.manifest(scheduler_address)

    @property
    def dashboard_link(self) -> str:
        """The dashboard URL, formatted with ``distributed.dashboard.link`` (reachable from this process)."""
        if self._session.dashboard is None:
            return ""
        host, port = self._session.dashboard
        return str(format_dashboard_link(host, port))

    # --- scaling --------------------------------------------------------------------------------------

    def scale(self, n: int, worker_group: str | None = None) -> Any:
        """Ask for ``n`` workers (capped by ``kubernetes.count.max``); turns adaptive scaling off. With
        ``worker_group``, ask for ``n`` workers of that group only.

        Example:
            >>> cluster.scale(10)  # doctest: +SKIP
            >>> cluster.scale(2, worker_group="gpu")  # doctest: +SKIP
        """
        target = scale_target(n, kconfig.get("count.max"))
        if worker_group is not None and worker_group != "default":
            return self._request_change(self._scale_group(worker_group, target))
        return self._request_change(self._session.requests().set_workers(target))

    def _request_change(self, change: Coroutine[Any, Any, None]) -> Any:
        """Run a change of the request: blocking when synchronous; when asynchronous, start it now and
        return the task, so both ``cluster.scale(3)`` (as classic async code wrote it) and
        ``await cluster.scale(3)`` work."""
        if self.asynchronous:
            return asyncio.ensure_future(change)
        return self.sync(lambda: change)

    def adapt(  # type: ignore[override]
        self,
        minimum: int | None = None,
        maximum: int | float | None = None,
        interval: str | float | None = None,
        cooldown: str | float | None = None,
        worker_group: str | None = None,
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
        adapt = adapt_settings(minimum, maximum, interval, cooldown, kconfig.get("count.max"))
        return self.adapt_group(worker_group or "default", adapt)  # worker_groups.py: adapt.GROUP

    # --- closing --------------------------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> Any:
        """Delete the cluster (unless attached with ``from_name``) and wait, bounded, for its pods to go.

        Example:
            >>> cluster.close()  # doctest: +SKIP
        """
        if self.status == Status.closed:
            return None if not self.asynchronous else asyncio.sleep(0)
        result = self.sync(self._close, timeout=timeout)
        if not self.asynchronous:
            self._loop_runner.stop()
        return result

    async def _close(self, timeout: float | None = None) -> None:
        if self.status == Status.closed:
            return
        await super()._close()
        try:
            await self._session.close(delete=self.shutdown_on_close, timeout=timeout)
        finally:
            KubeCluster._instances.discard(self)

    async def _abort(self) -> None:
        if self.scheduler_comm is not None:
            with contextlib.suppress(Exception):
                await self.scheduler_comm.close_rpc()
        await self._session.abort()
        KubeCluster._instances.discard(self)
        self.status = Status.closed

    def _delete_at_exit(self) -> None:
        if self.status != Status.closed and self.shutdown_on_close:
            self._session.delete_at_exit()
            self.status = Status.closed


@atexit.register
def _reap_clusters() -> None:
    # At exit the event loop may be gone or busy; deleting the request is what matters (the GC does the rest).
    for cluster in list(KubeCluster._instances):
        cluster._delete_at_exit()

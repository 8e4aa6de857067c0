"""What the controller needs from the outside world, as Protocols.

:class:`kube.Kube` implements :class:`ClusterApi` and :class:`LeaseApi`, :class:`scheduler.SchedulerClient`
implements :class:`SchedulerApi`; the driver, the executor and the leader elector take these types, so the
unit tests' in-memory fakes type-check like the real thing. Typing only: importing this module does no I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .clock import Clock
    from .driver import RequestDriver
    from .policy import NamespaceUsage
    from .scheduler import RetiredWorker
    from .settings import Settings

Manifest = dict[str, Any]


class ClusterApi(Protocol):
    """The calls a request's driver makes: what it lists, creates and deletes, and what it reports."""

    async def list_pods(self, namespace: str, selector: str) -> list[Manifest]: ...
    async def get_service(self, namespace: str, name: str) -> Manifest | None: ...
    async def get_pdb(self, namespace: str, name: str) -> Manifest | None: ...
    async def create_pod(self, manifest: Manifest) -> bool: ...
    async def delete_pod(self, namespace: str, name: str) -> bool: ...
    async def create_service(self, manifest: Manifest) -> bool: ...
    async def create_pdb(self, manifest: Manifest) -> bool: ...
    async def patch_configmap(self, namespace: str, name: str, patch: Manifest) -> None: ...
    async def delete_configmap(self, namespace: str, name: str) -> None: ...
    async def post_event(self, request: Manifest, reason: str, message: str, type_: str = "Normal") -> None: ...


class LeaseApi(Protocol):
    """The calls of leader election on a coordination.k8s.io Lease."""

    async def get_lease(self, namespace: str, name: str) -> Manifest | None: ...
    async def create_lease(self, namespace: str, body: Manifest) -> Manifest: ...
    async def replace_lease(self, namespace: str, name: str, body: Manifest) -> Manifest: ...


class SchedulerApi(Protocol):
    """A cluster's Dask scheduler. Each call raises ``scheduler.SchedulerUnavailable`` (its message
    says what went wrong) when the scheduler cannot be asked."""

    async def retire_workers(self, n: int) -> list[RetiredWorker]: ...
    async def adaptive_target(self) -> int: ...
    async def idle_since(self) -> float | None: ...


class Host(Protocol):
    """What a request's driver needs from the process that runs it (:class:`controller.Controller`):
    the APIs, the settings, the clock, whether to act at all, and the namespace's admitted usage."""

    kube: ClusterApi
    settings: Settings
    clock: Clock

    def is_leader(self) -> bool: ...
    def usage_before(self, driver: RequestDriver) -> NamespaceUsage: ...
    def claim_changed(self, driver: RequestDriver) -> None: ...

"""Fenced writes: every write a request's driver makes first checks that this replica still holds the lease.

Leadership is checked per write, not per pass: a pass (or a retirement running beside it) can outlast
the lease, and a replica paused past its lease (SIGSTOP, a long GC, a frozen VM) that wakes up must not
send one more write before it has renewed. The check is the elector's own monotonic deadline
(:attr:`leader.LeaderElector.is_leader`), so it needs no API call and trusts no other machine's clock.
"""

from __future__ import annotations

from collections.abc import Callable

from .api import ClusterApi, Manifest


class LostLease(Exception):
    """This replica does not hold the lease (any more): the write was not sent."""


def send_guard(leads_at: Callable[[float], bool], now: Callable[[], float]) -> Callable[[], None]:
    """The check a write makes in the thread that sends it, just before its bytes go out (``Kube.write_guard``).

    A write fenced on the event loop may wait for a pool thread, and a replica paused past its lease
    meanwhile must not send it when it wakes. ``now`` is the event loop's clock, read directly (no loop
    runs in that thread): it is the clock of the lease deadline.
    """
    def still_leading() -> None:
        if not leads_at(now()):
            raise LostLease("not sent: this replica lost the leader lease while the write waited to be sent")
    return still_leading


class FencedApi:
    """A :class:`api.ClusterApi` whose writes are refused with :class:`LostLease` unless ``holds_lease()``."""

    def __init__(self, api: ClusterApi, holds_lease: Callable[[], bool]) -> None:
        self.api = api
        self.holds_lease = holds_lease

    def _check(self, what: str) -> None:
        if not self.holds_lease():
            raise LostLease(f"not sent ({what}): this replica does not hold the leader lease")

    # --- reads go straight through ---
    async def list_pods(self, namespace: str, selector: str, not_older_than: str | None = None) -> list[Manifest]:
        return await self.api.list_pods(namespace, selector, not_older_than)

    async def get_service(self, namespace: str, name: str) -> Manifest | None:
        return await self.api.get_service(namespace, name)

    async def get_pdb(self, namespace: str, name: str) -> Manifest | None:
        return await self.api.get_pdb(namespace, name)

    async def get_pod(self, namespace: str, name: str) -> Manifest | None:
        return await self.api.get_pod(namespace, name)

    async def read_pod_log(self, namespace: str, name: str, tail_lines: int) -> str:
        return await self.api.read_pod_log(namespace, name, tail_lines)

    # --- writes are fenced ---
    async def create_pod(self, manifest: Manifest) -> bool:
        self._check(f"create pod {manifest['metadata']['name']}")
        return await self.api.create_pod(manifest)

    async def delete_pod(self, namespace: str, name: str, uid: str | None = None) -> bool:
        self._check(f"delete pod {name}")
        return await self.api.delete_pod(namespace, name, uid)

    async def delete_service(self, namespace: str, name: str, uid: str | None = None) -> bool:
        self._check(f"delete Service {name}")
        return await self.api.delete_service(namespace, name, uid)

    async def delete_pdb(self, namespace: str, name: str, uid: str | None = None) -> bool:
        self._check(f"delete PodDisruptionBudget {name}")
        return await self.api.delete_pdb(namespace, name, uid)

    async def create_service(self, manifest: Manifest) -> bool:
        self._check(f"create Service {manifest['metadata']['name']}")
        return await self.api.create_service(manifest)

    async def patch_service(self, namespace: str, name: str, patch: Manifest) -> Manifest | None:
        self._check(f"patch Service {name}")
        return await self.api.patch_service(namespace, name, patch)

    async def create_pdb(self, manifest: Manifest) -> bool:
        self._check(f"create PodDisruptionBudget {manifest['metadata']['name']}")
        return await self.api.create_pdb(manifest)

    async def patch_configmap(self, namespace: str, name: str, patch: Manifest) -> Manifest | None:
        self._check(f"patch request {name}")
        return await self.api.patch_configmap(namespace, name, patch)

    async def delete_configmap(self, namespace: str, name: str, uid: str | None = None,
                               resource_version: str | None = None) -> bool:
        self._check(f"delete request {name}")
        return await self.api.delete_configmap(namespace, name, uid, resource_version)

    async def post_event(self, request: Manifest, reason: str, message: str, type_: str = "Normal") -> None:
        self._check(f"Event {reason}")
        await self.api.post_event(request, reason, message, type_)


_FITS: type[ClusterApi] = FencedApi  # checked by mypy

"""Leader election on a Lease: one leader at a time, takeover only after the lease expires."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from kubedask_controller.leader import LeaderElector
from kubernetes.client.exceptions import ApiException


class FakeLeases:
    """Leases with resourceVersion conflicts, like the API server's optimistic concurrency."""

    def __init__(self) -> None:
        self.leases: dict[str, dict[str, Any]] = {}
        self.version = 0

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        lease = self.leases.get(name)
        return copy.deepcopy(lease) if lease else None

    async def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if name in self.leases:
            raise ApiException(status=409)
        return self._store(name, body)

    async def replace_lease(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        if body["metadata"].get("resourceVersion") != self.leases[name]["metadata"]["resourceVersion"]:
            raise ApiException(status=409)
        return self._store(name, body)

    def _store(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.leases[name] = stored
        return copy.deepcopy(stored)


def elector(leases: FakeLeases, identity: str) -> LeaderElector:
    return LeaderElector(leases, "ns", identity=identity, lease_duration=1.2,  # type: ignore[arg-type]
                         renew_deadline=0.6, retry_period=0.05)


async def test_only_one_replica_leads_and_the_other_takes_over_after_expiry() -> None:
    leases = FakeLeases()
    a, b = elector(leases, "a"), elector(leases, "b")
    task_a = asyncio.create_task(a.run())
    await asyncio.sleep(0.1)
    task_b = asyncio.create_task(b.run())
    try:
        for _ in range(10):  # both running for a while: never two leaders
            await asyncio.sleep(0.05)
            assert a.is_leader and not b.is_leader
        task_a.cancel()  # the leader dies without releasing the lease
        await asyncio.sleep(0.8)
        assert not a.is_leader  # stops acting before anyone else may start
        assert not b.is_leader  # the lease has not expired yet
        await asyncio.sleep(1.2)
        assert b.is_leader
        assert leases.leases["kubedask-controller"]["spec"]["holderIdentity"] == "b"
    finally:
        task_b.cancel()


async def test_released_lease_is_taken_at_once() -> None:
    leases = FakeLeases()
    a, b = elector(leases, "a"), elector(leases, "b")
    task_a = asyncio.create_task(a.run())
    await asyncio.sleep(0.1)
    task_a.cancel()
    await a.release()
    task_b = asyncio.create_task(b.run())
    try:
        await asyncio.sleep(0.15)
        assert b.is_leader
    finally:
        task_b.cancel()


async def test_disabled_election_always_leads() -> None:
    started: list[bool] = []
    single = LeaderElector(None, "ns", enabled=False, on_started_leading=lambda: started.append(True))
    await single.run()
    assert single.is_leader and started == [True]

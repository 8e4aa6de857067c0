"""Leader election on a Lease: one leader at a time, takeover only after the lease expires.

Runs on the event loop's fake time (looptime) with the real durations (30 s lease, 20 s renew deadline):
the elector reads time only from its clock, which is the loop's.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from controller_fakes import FakeLeases
from kubedask_controller.leader import LeaderElector

pytestmark = pytest.mark.looptime


def elector(leases: FakeLeases, identity: str) -> LeaderElector:
    return LeaderElector(leases, "ns", identity=identity, lease_duration=30, renew_deadline=20, retry_period=5)


async def test_only_one_replica_leads_and_the_other_takes_over_after_expiry() -> None:
    leases = FakeLeases()
    a, b = elector(leases, "a"), elector(leases, "b")
    task_a = asyncio.create_task(a.run())
    await asyncio.sleep(1)
    task_b = asyncio.create_task(b.run())
    try:
        for _ in range(20):  # both running for a while: never two leaders
            await asyncio.sleep(5)
            assert a.is_leader and not b.is_leader
        task_a.cancel()  # the leader dies without releasing the lease
        await asyncio.sleep(20)
        assert not a.is_leader  # stops acting (renew deadline) before anyone else may start
        assert not b.is_leader  # the lease has not expired yet
        await asyncio.sleep(20)
        assert b.is_leader
        assert leases.leases["kubedask-controller"]["spec"]["holderIdentity"] == "b"
        assert leases.leases["kubedask-controller"]["spec"]["leaseTransitions"] == 1
    finally:
        task_b.cancel()


async def test_a_leader_that_cannot_renew_stops_leading_within_the_renew_deadline() -> None:
    leases = FakeLeases()
    a = elector(leases, "a")
    task = asyncio.create_task(a.run())
    try:
        await asyncio.sleep(1)
        assert a.is_leader
        leases.failing = OSError("connection refused")
        await asyncio.sleep(18)  # renewed last at 0 s
        assert a.is_leader  # within the deadline
        await asyncio.sleep(2)
        assert not a.is_leader
    finally:
        task.cancel()


async def test_released_lease_is_taken_at_once() -> None:
    leases = FakeLeases()
    a, b = elector(leases, "a"), elector(leases, "b")
    task_a = asyncio.create_task(a.run())
    await asyncio.sleep(1)
    task_a.cancel()
    await a.release()
    assert not a.is_leader
    task_b = asyncio.create_task(b.run())
    try:
        await asyncio.sleep(1)  # no holder: taken in b's first round, not after a lease duration
        assert b.is_leader
    finally:
        task_b.cancel()


async def test_a_release_that_fails_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    leases = FakeLeases()
    a = elector(leases, "a")
    task = asyncio.create_task(a.run())
    await asyncio.sleep(1)
    task.cancel()
    leases.failing = OSError("connection refused")
    with caplog.at_level(logging.WARNING):
        await a.release()
    assert any("could not release" in r.getMessage() and "connection refused" in r.getMessage()
               for r in caplog.records)


async def test_settled_after_the_first_round_that_reaches_the_api() -> None:
    leases = FakeLeases()
    leases.failing = OSError("connection refused")
    a = elector(leases, "a")
    task = asyncio.create_task(a.run())
    try:
        await asyncio.sleep(1)
        assert not a.settled
        leases.failing = None
        await asyncio.sleep(5)
        assert a.settled and a.is_leader
    finally:
        task.cancel()


async def test_disabled_election_always_leads() -> None:
    started: list[bool] = []
    single = LeaderElector(None, "ns", enabled=False, on_started_leading=lambda: started.append(True))
    await single.run()
    assert single.is_leader and single.settled and started == [True]

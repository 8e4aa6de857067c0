"""Leader election on a Lease: one leader at a time, takeover only after the lease expires.

Runs on the event loop's fake time (looptime) with the real durations (30 s lease, 20 s renew deadline):
the elector reads time only from its clock, which is the loop's.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from controller_fakes import FakeLeases
from kubedask_controller.leader import LeaderElector

pytestmark = pytest.mark.looptime


def elector(leases: FakeLeases, identity: str) -> LeaderElector:
    return LeaderElector(leases, "ns", identity=identity, lease_duration=30, renew_deadline=20, retry_period=5)


async def sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - asyncio.get_running_loop().time()))


async def test_only_one_replica_leads_and_the_other_takes_over_after_expiry() -> None:
    leases = FakeLeases()
    a, b = elector(leases, "a"), elector(leases, "b")
    both: list[float] = []

    async def watch_for_overlap() -> None:
        while True:
            if a.is_leader and b.is_leader:
                both.append(asyncio.get_running_loop().time())
            await asyncio.sleep(0.25)

    watcher = asyncio.create_task(watch_for_overlap())
    task_a = asyncio.create_task(a.run())
    await asyncio.sleep(1)
    task_b = asyncio.create_task(b.run())
    try:
        for _ in range(20):  # both running for a while: never two leaders
            await asyncio.sleep(5)
            assert a.is_leader and not b.is_leader
        task_a.cancel()  # the leader dies without releasing the lease
        last = max(leases.writes())  # when its last renewal was sent
        await sleep_until(last + 20.01)
        assert not a.is_leader  # stops acting (renew deadline) before anyone else may start
        await sleep_until(last + 29.9)
        assert not b.is_leader  # the lease has not expired yet on b's clock
        await sleep_until(last + 30 + 2 * b.retry_period + 0.1)  # b saw it within a retry, polls every retry
        assert b.is_leader
        assert leases.leases["kubedask-controller"]["spec"]["holderIdentity"] == "b"
        assert leases.leases["kubedask-controller"]["spec"]["leaseTransitions"] == 1
        assert both == []
    finally:
        task_b.cancel()
        watcher.cancel()


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


async def test_at_rest_the_holder_writes_the_lease_at_most_four_times_a_minute_and_reads_it_never() -> None:
    leases = FakeLeases()
    a = LeaderElector(leases, "ns", identity="a")  # the defaults the controller runs with
    task = asyncio.create_task(a.run())
    try:
        await asyncio.sleep(600)
        assert a.is_leader
        for minute in range(10):
            assert len(leases.writes(60.0 * minute, 60.0 * (minute + 1))) <= 4
        assert len(leases.writes()) >= 39  # it does renew: every 15 s
        assert [verb for verb, _, _ in leases.calls[1:]] == ["create"] + ["replace"] * (len(leases.calls) - 2)
    finally:
        task.cancel()


async def test_a_failed_renewal_is_retried_every_retry_period_and_the_holder_keeps_leading() -> None:
    leases = FakeLeases()
    a = LeaderElector(leases, "ns", identity="a")  # renew every 15 s, retry every 2 s, deadline 25 s
    task = asyncio.create_task(a.run())
    try:
        await asyncio.sleep(10)
        leases.failing = OSError("connection reset")  # the renewal at 15 s fails, and the next ones
        await asyncio.sleep(8)
        leases.failing = None
        tried = [t for _, _, t in leases.calls if 15 <= t < 18]
        assert tried == [15, 17]  # retried after a retry period (a GET first: did the failed write land?)
        await sleep_until(19.5)
        assert a.is_leader and leases.writes(18, 19.5) == [19]  # renewed well before the deadline (25 s)
        await sleep_until(60)
        assert a.is_leader and leases.writes(19.5, 60) == [34, 49]  # back to a renew period
    finally:
        task.cancel()


async def test_the_holder_stops_acting_at_the_renew_deadline_after_its_last_renewal_was_sent() -> None:
    class StuckLeases(FakeLeases):
        """The API server takes the renewal and never answers."""
        stuck = False

        async def replace_lease(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
            if self.stuck:
                self._called("replace", body["spec"].get("holderIdentity"))
                await asyncio.Event().wait()
            return await super().replace_lease(namespace, name, body)

    leases = StuckLeases()
    a = LeaderElector(leases, "ns", identity="a")
    task = asyncio.create_task(a.run())
    try:
        await asyncio.sleep(20)
        assert a.is_leader
        last = max(leases.writes())  # renewed at 15 s
        leases.stuck = True
        await sleep_until(last + a.renew_deadline - 0.1)
        assert a.is_leader  # the next renewal (30 s) hangs: still within the deadline
        await sleep_until(last + a.renew_deadline)
        assert not a.is_leader and not a.leads_at(last + a.renew_deadline)
        assert a.renew_deadline < a.lease_duration  # before anyone else may take over
    finally:
        task.cancel()


def test_timings_that_could_overlap_two_leaders_are_refused() -> None:
    for durations in ({"renew_deadline": 30.0}, {"renew_period": 25.0}, {"retry_period": 0.0}):
        with pytest.raises(ValueError, match="renew deadline"):
            LeaderElector(FakeLeases(), "ns", **durations)  # type: ignore[arg-type]

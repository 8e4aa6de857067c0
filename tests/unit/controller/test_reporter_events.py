"""Events are posted beside the passes: a slow Event API delays no pass, the backlog is bounded (the
oldest go, counted), Events arrive in the order they were announced, and every one is still fenced.

On the event loop's fake time (looptime): a 30 s Event API costs the test nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from controller_fakes import FakeKube, LoopClock, configmap, request_data
from kubedask_controller import metrics
from kubedask_controller.controller import Controller
from kubedask_controller.driver import RequestDriver
from kubedask_controller.fence import FencedApi
from kubedask_controller.policy import Policy
from kubedask_controller.reporter import EVENT_BACKLOG, Reporter
from kubedask_controller.settings import Settings

pytestmark = pytest.mark.looptime


class SlowEvents(FakeKube):
    """An Event API that takes ``delay`` seconds per Event (or, with ``gate``, until the gate opens)."""

    def __init__(self, delay: float = 30.0) -> None:
        super().__init__()
        self.delay = delay
        self.gate: asyncio.Event | None = None
        self.in_flight = 0

    async def post_event(self, request: dict[str, Any], reason: str, message: str,
                         type_: str = "Normal") -> None:
        self.in_flight += 1
        try:
            if self.gate is not None:
                await self.gate.wait()
            else:
                await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        await super().post_event(request, reason, message, type_)


def new_driver(kube: FakeKube, workers: int = 3) -> RequestDriver:
    controller = Controller(kube, Settings(policy=Policy()), clock=LoopClock())
    return RequestDriver(controller, configmap(request_data(workers=workers)))


def dropped() -> float:
    return metrics.REGISTRY.get_sample_value("kubedask_events_dropped_total") or 0.0


async def test_a_slow_event_api_does_not_delay_the_pass_and_events_arrive_in_order() -> None:
    fast = FakeKube()
    await new_driver(fast).reconcile_once()
    announced = fast.reasons()
    assert len(announced) >= 3  # the scheduler pod, its Service, the workers ...

    slow = SlowEvents(delay=30)
    loop = asyncio.get_running_loop()
    started = loop.time()
    driver = new_driver(slow)
    await driver.reconcile_once()
    assert loop.time() == started  # not a second waited for the Event API
    assert len(slow.workers()) == 3 and "analysis-scheduler" in slow.pods  # the pass did all its work
    assert list(slow.services) == list(slow.pdbs) == ["analysis-scheduler"] and slow.configmap_patches
    assert slow.events == [] and slow.in_flight == 1  # the first Event is on its way, the rest queued

    await asyncio.sleep(30 * len(announced) + 1)
    assert slow.reasons() == announced  # every one, in the order announced
    assert not driver.reporter.backlog


async def test_the_backlog_is_bounded_and_the_oldest_waiting_events_are_dropped_and_counted() -> None:
    kube = SlowEvents()
    kube.gate = asyncio.Event()
    reporter = Reporter(kube, configmap(request_data()), LoopClock())
    before = dropped()
    extra = 5
    for i in range(1 + EVENT_BACKLOG + extra):  # the first is in flight at once, then the backlog fills
        await reporter.event(f"Reason{i}", f"event {i}")
    assert kube.in_flight == 1 and len(reporter.backlog) == EVENT_BACKLOG
    assert dropped() - before == extra
    kube.gate.set()
    await reporter.flush()
    # The one in flight, then the newest EVENT_BACKLOG in order: Reason1 .. Reason5 were dropped.
    assert kube.reasons() == ["Reason0", *(f"Reason{i}" for i in range(1 + extra, 1 + EVENT_BACKLOG + extra))]


async def test_events_are_still_fenced_when_they_are_sent_and_a_refusal_stops_none_of_the_others() -> None:
    kube = SlowEvents(delay=10)
    leading = {"now": True}
    reporter = Reporter(FencedApi(kube, lambda: leading["now"]), configmap(request_data()), LoopClock())
    await reporter.event("First", "sent while leading")
    await reporter.event("Second", "queued while leading, sent after the lease was lost")
    leading["now"] = False
    await asyncio.sleep(11)
    assert kube.reasons() == ["First"]  # Second found no lease when its turn came: never sent
    leading["now"] = True

    class Broken(FakeKube):
        async def post_event(self, request: dict[str, Any], reason: str, message: str,
                             type_: str = "Normal") -> None:
            if reason == "Unlucky":
                raise OSError("connection reset")
            await super().post_event(request, reason, message, type_)

    broken = Broken()
    reporter = Reporter(broken, configmap(request_data()), LoopClock())
    for reason in ("Before", "Unlucky", "After"):
        await reporter.event(reason, "")
    await reporter.flush()
    assert broken.reasons() == ["Before", "After"]


async def test_events_queued_by_a_drivers_last_pass_are_posted_after_it_stops_and_close_bounds_the_wait() -> None:
    kube = SlowEvents(delay=5)
    driver = new_driver(kube)
    task = asyncio.create_task(driver.run())
    await asyncio.sleep(0.5)  # its first pass (after the debounce) has queued its Events
    assert kube.in_flight == 1
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    queued = 1 + len(driver.reporter.backlog)
    await asyncio.sleep(5 * queued + 1)
    assert len(kube.events) == queued  # a request's last Events (e.g. ShuttingDown) are not lost

    stuck = SlowEvents()
    stuck.gate = asyncio.Event()  # never opens
    reporter = Reporter(stuck, configmap(request_data()), LoopClock())
    for reason in ("A", "B", "C"):
        await reporter.event(reason, "")
    before = dropped()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await reporter.close(timeout=2)
    assert loop.time() - started == pytest.approx(2, abs=0.01)
    assert dropped() - before == 3 and not reporter.backlog and stuck.in_flight == 0

"""Progress alone (counts and messages) is written at most once per ``status_interval`` while a cluster
scales; a change held back is written by the pass asked for when the interval is over, with no pod event
needed; phase and condition changes, Events and repairs go at once.

On the event loop's fake time (looptime).
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest
from controller_fakes import FakeKube, LoopClock, configmap, request_data
from kubedask.spec import STATUS_ANNOTATION, ClusterStatus, Condition, WorkerCounts
from kubedask_controller import status
from kubedask_controller.controller import Controller
from kubedask_controller.driver import RequestDriver
from kubedask_controller.policy import Policy
from kubedask_controller.reporter import Reporter
from kubedask_controller.settings import Settings

pytestmark = pytest.mark.looptime


def scaling(running: int, of: int = 10, ready: str = "False") -> ClusterStatus:
    return ClusterStatus(
        phase="Scaling", message=f"{running} of {of} workers running",
        conditions=[Condition(type="RequestValid", status="True", reason="Valid"),
                    Condition(type="WorkersReady", status=ready, reason="Scaling",
                              message=f"{running}/{of} workers running")],
        workers=WorkerCounts(requested=of, created=of, running=running, ready=running),
    )


@pytest.mark.parametrize(("new", "expected"), [
    (scaling(4), True),  # counts and the messages quoting them
    (scaling(3).model_copy(update={"phase": "Running"}), False),
    (scaling(3, ready="True"), False),  # a condition's state
    (scaling(3).model_copy(update={"observed_spec": "abc"}), False),  # a new spec was applied
    (scaling(3).model_copy(update={"scheduler_address": "tcp://x:8786"}), False),
])
def test_progress_only_is_counts_and_messages(new: ClusterStatus, expected: bool) -> None:
    assert status.progress_only(scaling(3), new) is expected
    assert status.progress_only(None, new) is False  # the first status is never held back


def written(kube: FakeKube) -> list[dict[str, Any]]:
    return [json.loads(p["metadata"]["annotations"][STATUS_ANNOTATION]) for p in kube.configmap_patches]


async def test_progress_within_the_interval_waits_and_the_wake_comes_when_it_is_over() -> None:
    kube = FakeKube()
    wakes: list[float] = []
    loop = asyncio.get_running_loop()
    reporter = Reporter(kube, configmap(request_data()), LoopClock(), progress_interval=1.0,
                        wake=lambda: wakes.append(loop.time()))
    start = loop.time()
    await reporter.status(scaling(1))
    await asyncio.sleep(0.3)
    await reporter.status(scaling(2))
    await reporter.status(scaling(3))
    assert [s["workers"]["running"] for s in written(kube)] == [1]  # held back
    await asyncio.sleep(1.0)
    assert wakes == [start + 1.0]  # one wake, when the interval after the write is over
    await reporter.status(scaling(3))  # the pass it asked for
    assert [s["workers"]["running"] for s in written(kube)] == [1, 3]


async def test_phase_and_condition_changes_are_written_at_once() -> None:
    kube = FakeKube()
    reporter = Reporter(kube, configmap(request_data()), LoopClock(), progress_interval=1.0)
    await reporter.status(scaling(9))
    await reporter.status(scaling(10, ready="True"))  # the condition flips: no waiting
    running = scaling(10, ready="True").model_copy(update={"phase": "Running", "message": "10 workers running"})
    await reporter.status(running)
    assert [s["phase"] for s in written(kube)] == ["Scaling", "Scaling", "Running"]
    assert kube.reasons() == ["PhaseRunning"]


async def test_a_status_altered_by_hand_is_repaired_at_once() -> None:
    kube = FakeKube()
    body = configmap(request_data())
    kube.configmap = body
    reporter = Reporter(kube, body, LoopClock(), progress_interval=60.0)
    await reporter.status(scaling(3))
    assert not reporter.update(copy.deepcopy(body))  # the write's watch event
    tampered = json.loads(body["metadata"]["annotations"][STATUS_ANNOTATION]) | {"extra": 1}
    body["metadata"]["annotations"][STATUS_ANNOTATION] = json.dumps(tampered)
    assert reporter.update(body)
    await reporter.status(scaling(4))
    assert len(kube.configmap_patches) == 2 and "extra" not in written(kube)[-1]


def mark_running(kube: FakeKube, name: str) -> None:
    kube.pods[name]["status"] = {"phase": "Running", "podIP": f"10.0.0.{len(name)}",
                                 "conditions": [{"type": "Ready", "status": "True"}]}


def start(workers: int) -> tuple[FakeKube, RequestDriver, asyncio.Task[None]]:
    kube = FakeKube()
    controller = Controller(kube, Settings(policy=Policy(), status_interval=1.0), clock=LoopClock())
    driver = RequestDriver(controller, configmap(request_data(workers=workers)))
    return kube, driver, asyncio.create_task(driver.run())


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_scale_up_writes_progress_about_once_a_second() -> None:
    kube, driver, task = start(workers=20)
    try:
        await asyncio.sleep(0.1)
        assert len(kube.workers()) == 20
        mark_running(kube, "analysis-scheduler")
        driver.trigger.pull()
        for name in kube.workers()[:19]:  # one worker a tenth of a second, each seen by a pass
            await asyncio.sleep(0.1)
            mark_running(kube, name)
            driver.trigger.pull()
        await asyncio.sleep(1.5)
        progress = [s["workers"]["running"] for s in written(kube) if s["phase"] == "Scaling"]
        # 2 s of passes every 0.2 s (the debounce) would write about ten; one a second writes three or four.
        assert 2 <= len(progress) <= 4 and progress[-1] == 19, progress
        mark_running(kube, kube.workers()[19])
        driver.trigger.pull()
        await asyncio.sleep(0.3)
        assert written(kube)[-1]["phase"] == "Running"  # at once, not at the next interval
    finally:
        await stop(task)


async def test_a_held_back_count_is_written_when_the_interval_is_over_without_another_event() -> None:
    kube, driver, task = start(workers=5)
    try:
        await asyncio.sleep(0.1)
        mark_running(kube, "analysis-scheduler")
        driver.trigger.pull()
        await asyncio.sleep(0.2)
        assert written(kube)[-1]["phase"] == "Scaling"  # a phase change: written by the next pass
        mark_running(kube, kube.workers()[0])
        driver.trigger.pull()
        await asyncio.sleep(0.2)
        assert written(kube)[-1]["workers"]["running"] == 0  # the pass ran, its count held back
        await asyncio.sleep(1.0)
        assert written(kube)[-1]["workers"]["running"] == 1  # no pod event since: the reporter asked for a pass
    finally:
        await stop(task)

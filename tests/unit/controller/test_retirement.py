"""Scale-downs through the scheduler run beside the loop: the status keeps being written while the scheduler
takes its time, the retire is bounded, retired workers are deleted and never replaced, and the fallback
deletes only what is still in excess once the workers that exited are counted."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from controller_fakes import FakeKube, FakeScheduler, configmap, request_data
from kubedask_controller.controller import Controller
from kubedask_controller.scheduler import RetiredWorker, SchedulerUnavailable
from test_driver import last_status, new_controller

pytestmark = pytest.mark.looptime


class HangingScheduler(FakeScheduler):
    """Answers retire_workers only when ``answer`` is set (never, if it is not)."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = asyncio.Event()

    async def retire_workers(self, n: int) -> list[RetiredWorker]:
        self.asked.append(f"retire {n}")
        await self.answer.wait()
        return self.retire


async def started(kube: FakeKube, scheduler: FakeScheduler, workers: int) -> tuple[Controller, dict[str, Any]]:
    controller = new_controller(kube, scheduler=scheduler)
    body = configmap(request_data(workers=workers))
    controller.on_request_event("ADDED", body)
    await asyncio.sleep(1)
    kube.run_all()
    for pod in kube.pods.values():
        controller.on_pod_event("MODIFIED", pod)
    await asyncio.sleep(5)
    assert last_status(kube).phase == "Running"
    return controller, body


def scale(controller: Controller, body: dict[str, Any], workers: int) -> None:
    changed = copy.deepcopy(body)
    changed["data"]["workers"] = str(workers)
    controller.on_request_event("MODIFIED", changed)


async def test_the_status_keeps_updating_while_the_scheduler_hangs_on_retire(fake_kube: FakeKube) -> None:
    scheduler = HangingScheduler()
    controller, body = await started(fake_kube, scheduler, 3)
    scale(controller, body, 1)
    await asyncio.sleep(5)
    assert scheduler.asked == ["retire 2"]
    # Meanwhile the scheduler pod goes unready: the loop is not stuck behind the retire, the status says so.
    fake_kube.pods["analysis-scheduler"]["status"]["conditions"] = []
    controller.on_pod_event("MODIFIED", fake_kube.pods["analysis-scheduler"])
    await asyncio.sleep(1)
    assert last_status(fake_kube).phase == "Pending"
    assert len(fake_kube.workers()) == 3  # nothing deleted or created while the retire is in flight
    await controller.stop()


async def test_a_hanging_retire_falls_back_to_deleting_only_what_is_still_in_excess(fake_kube: FakeKube) -> None:
    scheduler = HangingScheduler()
    controller, body = await started(fake_kube, scheduler, 4)
    original = set(fake_kube.workers())
    scale(controller, body, 1)
    await asyncio.sleep(30)
    # The scheduler did retire one worker, which exits, but its answer never comes back.
    exited = fake_kube.workers()[0]
    fake_kube.pods[exited]["status"] = {"phase": "Succeeded"}
    controller.on_pod_event("MODIFIED", fake_kube.pods[exited])
    await asyncio.sleep(10)
    assert len(fake_kube.workers()) == 3 and exited not in fake_kube.workers()  # cleaned up, not replaced
    await asyncio.sleep(controller.settings.retire_timeout)
    assert "RetireFailed" in fake_kube.reasons()
    assert len(fake_kube.workers()) == 1  # 2 deleted: the one that exited counted toward the scale-down
    assert scheduler.asked == ["retire 3"]  # the fallback did not ask again
    assert set(fake_kube.workers()) < original  # no worker was ever created to replace one
    assert last_status(fake_kube).phase == "Running"
    await controller.stop()


async def test_retired_workers_are_deleted_and_never_replaced_even_when_they_exit_first(fake_kube: FakeKube) -> None:
    scheduler = HangingScheduler()
    controller, body = await started(fake_kube, scheduler, 3)
    scale(controller, body, 1)
    await asyncio.sleep(5)
    chosen = fake_kube.workers()[:2]
    scheduler.retire = [RetiredWorker(name=n, host=None) for n in chosen]
    fake_kube.pods[chosen[0]]["status"] = {"phase": "Succeeded"}  # one exits before the answer comes
    controller.on_pod_event("MODIFIED", fake_kube.pods[chosen[0]])
    await asyncio.sleep(5)
    scheduler.answer.set()
    await asyncio.sleep(5)
    assert fake_kube.workers() == sorted(set(fake_kube.workers()) - set(chosen)) and len(fake_kube.workers()) == 1
    assert "WorkersRetired" in fake_kube.reasons()
    await asyncio.sleep(600)
    assert len(fake_kube.workers()) == 1
    await controller.stop()


async def test_a_request_scaled_up_again_during_a_retire_gets_its_workers(fake_kube: FakeKube) -> None:
    scheduler = HangingScheduler()
    controller, body = await started(fake_kube, scheduler, 2)
    scale(controller, body, 1)
    await asyncio.sleep(5)
    scale(controller, body, 5)  # more than are left even if the retire keeps all of them
    await asyncio.sleep(5)
    assert len(fake_kube.workers()) == 5
    await controller.stop()


async def test_after_a_failed_retire_a_later_scale_down_asks_the_scheduler_again(fake_kube: FakeKube) -> None:
    scheduler = HangingScheduler()
    controller, body = await started(fake_kube, scheduler, 3)
    gate = asyncio.Event()

    async def refuse_later(n: int) -> list[RetiredWorker]:
        scheduler.asked.append(f"retire {n}")
        await gate.wait()
        raise SchedulerUnavailable("scheduler 10.0.0.1 answered HTTP 500")

    scheduler.retire_workers = refuse_later  # type: ignore[method-assign]
    scale(controller, body, 2)
    await asyncio.sleep(5)
    exited = fake_kube.workers()[0]  # the worker it was retiring exits, then the answer is an error
    fake_kube.pods[exited]["status"] = {"phase": "Succeeded"}
    controller.on_pod_event("MODIFIED", fake_kube.pods[exited])
    await asyncio.sleep(5)
    gate.set()
    await asyncio.sleep(5)
    assert "RetireFailed" in fake_kube.reasons() and len(fake_kube.workers()) == 2  # nothing was in excess
    del scheduler.retire_workers  # answers again
    scheduler.answer.set()
    scheduler.retire = [RetiredWorker(name=fake_kube.workers()[0], host=None)]
    scale(controller, body, 1)
    await asyncio.sleep(5)
    assert scheduler.asked == ["retire 1", "retire 1"]  # the later scale-down asked, it did not just delete
    assert "WorkersRetired" in fake_kube.reasons() and len(fake_kube.workers()) == 1
    await controller.stop()

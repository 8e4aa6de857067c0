"""Adaptive named groups (``adapt.GROUP``): the schema, the claim the policy counts, how the scheduler's one
adaptive target is shared among groups, and a driver that follows it per group."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from controller_fakes import FakeKube, FakeScheduler, LoopClock, configmap, request_data
from kubedask.spec import RequestError, parse_request
from kubedask_controller import status
from kubedask_controller.decisions import Desired, share_target
from kubedask_controller.policy import Policy, PolicyViolation, admit, worker_claim
from kubedask_controller.reconcile import (
    CreateWorkers,
    Observed,
    Plan,
    PodInfo,
    group_targets,
    next_pass_delay,
    plan,
)
from kubedask_controller.scheduler_polls import SchedulerPolls
from test_driver import last_status, new_driver

GPU = "containers: [{name: w, image: dask, args: [dask, worker, --resources, GPU=1]}]"
SCHEDULER = PodInfo("analysis-scheduler", phase="Running", ready=True, ip="10.0.0.1")


def adapt(minimum: int, maximum: int, **more: float) -> str:
    return json.dumps({"minimum": minimum, "maximum": maximum, **more})


def data(**extra: str) -> dict[str, str]:
    return {**request_data(workers=2), "worker-template.gpu": GPU, **extra}


# --- schema ------------------------------------------------------------------------------------------


def test_adapt_group_gives_a_named_group_bounds_and_its_count_defaults_to_the_minimum() -> None:
    request = parse_request("analysis", data(**{"adapt.gpu": adapt(1, 4, interval=3)}))
    (gpu,) = request.worker_groups
    assert (gpu.workers, gpu.adapt and gpu.adapt.maximum, gpu.adapt and gpu.adapt.interval) == (1, 4, 3.0)
    assert request.group_adapt("gpu") == gpu.adapt and request.group_adapt("default") is None
    assert parse_request("analysis", data()).worker_groups[0].adapt is None
    explicit = parse_request("analysis", data(**{"adapt.gpu": adapt(1, 4), "workers.gpu": "3"}))
    assert explicit.worker_groups[0].workers == 3


@pytest.mark.parametrize(("extra", "key", "words"), [
    ({"adapt.gpu": '{"minimum": 1}'}, "adapt.gpu", "key 'adapt.gpu' needs a 'maximum'"),
    ({"adapt.gpu": adapt(5, 2)}, "adapt.gpu", "'minimum' (5) is larger than 'maximum' (2)"),
    ({"adapt.gpu": '{"maximum": 2, "every": 1}'}, "adapt.gpu", "unknown field 'every'"),
    ({"adapt.gpu": "[1, 2]"}, "adapt.gpu", "expected a mapping"),
    ({"adapt.tpu": adapt(0, 2)}, "adapt.tpu", "'worker-template.tpu' is missing"),
    ({"adapt.GPU": adapt(0, 2)}, "adapt.GPU", "lower-case letters"),
])
def test_a_bad_adapt_group_is_refused_naming_its_key(extra: dict[str, str], key: str, words: str) -> None:
    with pytest.raises(RequestError) as err:
        parse_request("analysis", data(**extra))
    assert words in str(err.value) and err.value.key == key


def test_the_unknown_key_message_mentions_adapt_group() -> None:
    with pytest.raises(RequestError, match=r"'adapt\.GROUP'"):
        parse_request("analysis", data(adaptive="x"))


# --- policy ------------------------------------------------------------------------------------------


def test_an_adaptive_groups_maximum_counts_toward_the_claim_and_is_named_when_refused() -> None:
    request = parse_request("analysis", data(**{"adapt.gpu": adapt(0, 6)}))
    assert worker_claim(request) == 2 + 6
    with pytest.raises(PolicyViolation) as err:
        admit(request, Policy(max_workers=5), "team-a")
    assert err.value.key == "adapt.gpu" and "at most 5 workers" in str(err.value)
    both = parse_request("analysis", data(adapt=adapt(1, 10), **{"adapt.gpu": adapt(0, 6), "workers.gpu": "7"}))
    assert worker_claim(both) == 10 + 7  # per group the larger of its count and its maximum


def test_an_adaptive_group_may_not_poll_more_often_than_the_policy_allows() -> None:
    request = parse_request("analysis", data(**{"adapt.gpu": adapt(0, 2, interval=0.5)}))
    with pytest.raises(PolicyViolation) as err:
        admit(request, Policy(), "team-a")
    assert err.value.key == "adapt.gpu" and "adapt.gpu.interval" in str(err.value)


# --- sharing the scheduler's target ----------------------------------------------------------------------


def three_groups() -> Any:
    """default adapt 1..3, gpu adapt 0..2, and a fixed group mem of 1."""
    return parse_request("analysis", {**data(adapt=adapt(1, 3), **{"adapt.gpu": adapt(0, 2)}),
                                      "worker-template.mem": GPU, "workers.mem": "1"})


@pytest.mark.parametrize(("target", "shares"), [
    (0, {"default": 1, "gpu": 0}),  # the minimums, whatever the scheduler says
    (1, {"default": 1, "gpu": 0}),  # the fixed group covers one worker of the target
    (3, {"default": 2, "gpu": 0}),
    (4, {"default": 3, "gpu": 0}),  # the default group fills first ...
    (5, {"default": 3, "gpu": 1}),  # ... then the named ones, by name
    (100, {"default": 3, "gpu": 2}),  # each within its own maximum
])
def test_the_target_not_covered_by_fixed_groups_fills_adaptive_groups_in_order(target: int,
                                                                               shares: dict[str, int]) -> None:
    assert share_target(three_groups(), target) == shares


def test_a_fixed_default_group_counts_as_fixed() -> None:
    request = parse_request("analysis", data(**{"adapt.gpu": adapt(0, 5)}))  # workers: 2, no adapt
    assert share_target(request, 4) == {"gpu": 2}


def test_the_plan_and_the_status_take_the_named_groups_adaptive_targets() -> None:
    request = three_groups()
    observed = Observed(scheduler=SCHEDULER, service=True, pdb=True)
    desired = Desired(2, {"gpu": 1})
    assert group_targets(request, observed, desired) == {"default": 2, "gpu": 1, "mem": 1}
    creates = [a for a in plan(request, observed, desired).actions if isinstance(a, CreateWorkers)]
    assert creates == [CreateWorkers(2, "default"), CreateWorkers(1, "gpu"), CreateWorkers(1, "mem")]
    shown = status.cluster_status(request, "ns", observed, desired)
    assert shown.worker_groups["gpu"].requested == 1 and shown.workers.requested == 4
    assert group_targets(request, observed, 2)["gpu"] == 0  # a plain int: the group's count (its minimum)


def test_an_adaptive_groups_interval_paces_the_passes() -> None:
    request = parse_request("analysis", data(**{"adapt.gpu": adapt(0, 2, interval=7)}))
    assert next_pass_delay(request, Plan((), 2), 0, resync=300, settle=1, idle_poll=30) == 7


# --- the polls -----------------------------------------------------------------------------------------


@pytest.mark.looptime
async def test_each_adaptive_group_follows_its_share_with_its_own_cooldown() -> None:
    request = parse_request("analysis", data(adapt=adapt(1, 3, interval=2, cooldown=0),
                                             **{"adapt.gpu": adapt(0, 2, interval=5, cooldown=60)}))
    polls = SchedulerPolls(LoopClock(), idle_poll_interval=30, adapt_max_step=100)
    scheduler = FakeScheduler(target=5)
    desired = await polls.desired_workers(request, Observed(), scheduler)
    assert isinstance(desired, Desired) and (int(desired), desired.groups) == (3, {"gpu": 2})
    answers = []
    for target in (1, 5, 1):  # down, up, down again
        scheduler.target = target
        await asyncio.sleep(2)  # the shortest interval of the groups
        desired = await polls.desired_workers(request, Observed(), scheduler)
        answers.append((int(desired), getattr(desired, "groups", None)))
    # The second shrink of gpu waits out gpu's own cooldown (60 s); the default group's is 0.
    assert answers == [(1, {"gpu": 0}), (3, {"gpu": 2}), (1, {"gpu": 2})]
    assert scheduler.asked == ["adaptive_target"] * 4
    await asyncio.sleep(60)
    desired = await polls.desired_workers(request, Observed(), scheduler)
    assert (int(desired), getattr(desired, "groups", None)) == (1, {"gpu": 0})


@pytest.mark.looptime
async def test_an_unreachable_scheduler_holds_every_groups_target() -> None:
    request = parse_request("analysis", data(**{"adapt.gpu": adapt(0, 4, interval=2)}))
    polls = SchedulerPolls(LoopClock(), idle_poll_interval=30, adapt_max_step=100)
    scheduler = FakeScheduler(target=5)
    first = await polls.desired_workers(request, Observed(), scheduler)
    assert (int(first), getattr(first, "groups", None)) == (2, {"gpu": 3})  # 5 less the fixed default's 2
    scheduler.down = "connection refused"
    await asyncio.sleep(2)
    held = await polls.desired_workers(request, Observed(), scheduler)
    assert (int(held), getattr(held, "groups", None)) == (2, {"gpu": 3})
    assert polls.condition is not None and polls.condition.status == "False"


async def test_without_any_adapt_the_count_is_a_plain_int() -> None:
    polls = SchedulerPolls(LoopClock(), idle_poll_interval=30, adapt_max_step=100)
    desired = await polls.desired_workers(parse_request("analysis", data()), Observed(), FakeScheduler(target=9))
    assert type(desired) is int and desired == 2


@pytest.mark.looptime
async def test_a_driver_scales_an_adaptive_group_with_the_scheduler(fake_kube: FakeKube) -> None:
    scheduler = FakeScheduler(target=4)
    driver = new_driver(fake_kube, configmap(data(**{"adapt.gpu": adapt(0, 3, interval=2, cooldown=0)})), scheduler)
    await driver.reconcile_once()
    fake_kube.run_all()
    await driver.reconcile_once()

    def gpu() -> list[str]:
        return [n for n in fake_kube.workers() if n.startswith("analysis-worker-gpu-")]

    assert len(gpu()) == 2 and len(fake_kube.workers()) == 4  # the fixed default's 2, and gpu the rest
    assert last_status(fake_kube).worker_groups["gpu"].requested == 2
    fake_kube.run_all()
    scheduler.connect(fake_kube)
    addresses = sorted(w.address for w in scheduler.known if w.name in gpu())
    scheduler.target = 2  # the default group covers it all: gpu goes back to its minimum
    for _ in range(3):
        await asyncio.sleep(2)
        await driver.reconcile_once()
        await driver.retirement.finished()
    assert gpu() == [] and len(fake_kube.workers()) == 2
    # The default group runs too: the gpu group's own workers were retired, by address.
    retired = [a.removeprefix("retire ").split() for a in scheduler.asked if a.startswith("retire ")]
    assert [sorted(r) for r in retired] == [addresses]
    assert last_status(fake_kube).worker_groups["gpu"].requested == 0

"""The rolling-update plan: a changed group template replaces that group's workers, new ones first, at most
``max-surge`` extra at a time, an old ready worker going only once a new one is ready, retired through the
scheduler (its data moves) when it runs, deleted when it never ran."""

from __future__ import annotations

import dataclasses

import pytest
from controller_fakes import request_data
from kubedask.spec import ClusterRequest, RequestError, parse_request
from kubedask_controller import builders, status
from kubedask_controller.reconcile import (
    CreateWorkers,
    DeleteCause,
    DeletePod,
    Observed,
    PodInfo,
    RetireWorkers,
    plan,
)

SCHEDULER = PodInfo("analysis-scheduler", phase="Running", ready=True, ip="10.0.0.1")
OLD = "0ld0ld0ld0ld0ld0"


def request(**data: str) -> ClusterRequest:
    return parse_request("analysis", {**request_data(workers=3), **data})


def worker(name: str, template: str | None, ready: bool = True) -> PodInfo:
    return PodInfo(name, phase="Running" if ready else "Pending", ready=ready, created=f"2026-01-01T00:00:0{name[-1]}Z",
                   template=template)


def simulate(req: ClusterRequest, workers: list[PodInfo], max_passes: int = 30) -> tuple[list[PodInfo], int]:
    """Passes of the plan where created pods become ready at once and deleted (or retired) ones vanish;
    returns the end state and the most workers that existed at any time."""
    current = builders.template_hash(req.worker_template)
    most, made = len(workers), 0
    for _ in range(max_passes):
        actions = plan(req, Observed(scheduler=SCHEDULER, service=True, pdb=True, workers=tuple(workers)), 3).actions
        if not actions:
            return workers, most
        for action in actions:
            if isinstance(action, CreateWorkers):
                for _ in range(action.count):
                    made += 1
                    workers.append(worker(f"new{made}", current, ready=False))
            elif isinstance(action, DeletePod):
                workers = [w for w in workers if w.name != action.name]
            elif isinstance(action, RetireWorkers):  # the scheduler retires them; the next pass deletes them
                assert not action.scheduler_chooses  # it must not pick among the new workers
                workers = [w for w in workers if w.name not in action.candidates[:action.count]]
        most = max(most, len(workers))
        workers = [dataclasses.replace(w, ready=True, phase="Running") for w in workers]
    raise AssertionError(f"no rest after {max_passes} passes: {workers}")


@pytest.mark.parametrize("surge", [1, 2])
def test_every_outdated_worker_is_replaced_with_at_most_max_surge_extra(surge: int) -> None:
    req = request(**{"max-surge": str(surge)})
    end, most = simulate(req, [worker(f"old{i}", OLD) for i in range(3)])
    assert len(end) == 3 and all(w.template == builders.template_hash(req.worker_template) for w in end)
    assert most <= 3 + surge


def test_new_workers_come_first_and_an_old_ready_one_waits_for_a_ready_new_one() -> None:
    req = request()
    old = [worker(f"old{i}", OLD) for i in range(3)]
    assert plan(req, Observed(scheduler=SCHEDULER, workers=tuple(old)), 3).actions[-1] == CreateWorkers(1)
    pending = worker("new1", builders.template_hash(req.worker_template), ready=False)
    actions = plan(req, Observed(scheduler=SCHEDULER, service=True, pdb=True, workers=(*old, pending)), 3).actions
    assert not actions  # the new one is not ready yet: every old one stays
    ready = dataclasses.replace(pending, ready=True)
    (action,) = plan(req, Observed(scheduler=SCHEDULER, service=True, pdb=True, workers=(*old, ready)), 3).actions
    # The oldest goes, retired through the scheduler by name: the scheduler would otherwise pick among all.
    assert action == RetireWorkers(1, ("old0",), "default", scheduler_chooses=False)


def test_an_old_worker_that_never_ran_is_deleted_and_one_that_runs_is_retired() -> None:
    req = request()
    current = builders.template_hash(req.worker_template)
    workers = (worker("old1", OLD, ready=False), worker("old2", OLD), worker("old3", OLD), worker("new1", current),
               worker("new2", current))
    actions = plan(req, Observed(scheduler=SCHEDULER, service=True, pdb=True, workers=workers), 3).actions
    assert actions == (DeletePod("old1", DeleteCause.OUTDATED, "rolling update: replaced by a worker made from the "
                                 "current template"), RetireWorkers(1, ("old2",), "default", scheduler_chooses=False))


def test_broken_old_workers_that_never_became_ready_are_replaced_too() -> None:
    req = request()
    end, most = simulate(req, [worker(f"old{i}", OLD, ready=False) for i in range(3)])
    assert len(end) == 3 and most <= 4 and not any(w.name.startswith("old") for w in end)


def test_new_workers_only_and_unstamped_workers_are_left_alone() -> None:
    old = tuple(worker(f"old{i}", OLD) for i in range(3))
    observed = Observed(scheduler=SCHEDULER, service=True, pdb=True, workers=old)
    assert not plan(request(**{"update-strategy": "new-workers-only"}), observed, 3).actions
    unstamped = Observed(scheduler=SCHEDULER, service=True, pdb=True, workers=tuple(worker(f"w{i}", None)
                                                                                     for i in range(3)))
    assert not plan(request(), unstamped, 3).actions


def test_status_counts_the_workers_on_the_current_template() -> None:
    req = request()
    workers = (worker("old1", OLD), worker("new2", builders.template_hash(req.worker_template)), worker("w3", None))
    counts = status.cluster_status(req, "ns", Observed(scheduler=SCHEDULER, workers=workers), 3).workers
    assert counts.updated == 2


def test_worker_pods_are_stamped_with_their_group_template() -> None:
    req = request()
    pod = builders.build_worker_pod(req, "ns", "analysis-worker-bcdfg", builders.owner_reference("analysis", "u"))
    assert PodInfo.from_manifest(pod).template == builders.template_hash(req.worker_template)


@pytest.mark.parametrize(("key", "value", "words"), [
    ("max-surge", "0", "at least one new worker"),
    ("update-strategy", "recreate", "update-strategy"),
])
def test_bad_update_keys_are_refused(key: str, value: str, words: str) -> None:
    with pytest.raises(RequestError, match=words):
        request(**{key: value})


def test_a_ready_worker_still_leaving_takes_up_the_surge_room() -> None:
    """max-surge bounds what holds resources: a retired or deleting worker whose container still runs
    counts until it has stopped, so the next new worker waits for it (as a quota would count it)."""
    req = request(**{"worker-template": "containers: [{name: w, image: changed}]"})
    current = builders.template_hash(req.worker_template)
    old = [worker(f"old{i}", OLD) for i in range(2)]
    fresh = worker("new1", current)
    for leaving in (dataclasses.replace(worker("old2", OLD), retired=True),
                    dataclasses.replace(worker("old2", OLD), deleting=True)):
        observed = Observed(scheduler=SCHEDULER, service=True, pdb=True, workers=(*old, fresh, leaving))
        actions = plan(req, observed, 3).actions
        assert not any(isinstance(a, CreateWorkers) for a in actions), actions
        stopped = dataclasses.replace(leaving, ready=False, phase="Succeeded")
        observed = Observed(scheduler=SCHEDULER, service=True, pdb=True, workers=(*old, fresh, stopped))
        assert CreateWorkers(1, "default") in plan(req, observed, 3).actions

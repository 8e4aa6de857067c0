"""Retiring workers the controller chooses: a named group scaled down while other groups run, and a rolling
update's old workers. The scheduler lists its workers (``/get_workers``), the group's candidates are matched
by name or pod IP, and exactly those are retired by address (``/retire_workers`` with ``workers``), so their
data moves and no other group's worker goes."""

from __future__ import annotations

import ast
import asyncio
import copy
import json
from typing import Any

import pytest
from controller_fakes import WORKER_TEMPLATE, FakeKube, FakeScheduler, configmap, request_data
from kubedask_controller.driver import RequestDriver
from kubedask_controller.scheduler import RetiredWorker, SchedulerClient, SchedulerWorker
from test_driver import new_driver
from test_scheduler import FakeScheduler as HttpScheduler
from test_scheduler import dask_identity, fake, raises  # noqa: F401  (fake is a fixture)

GPU = {"containers": [{"name": "dask-worker", "image": "ghcr.io/dask/dask:latest",
                       "args": ["dask", "worker", "--resources", "GPU=1"]}]}


# --- the scheduler client ------------------------------------------------------------------------------


async def test_workers_lists_names_and_addresses(fake: HttpScheduler) -> None:  # noqa: F811
    fake.answer_json("/get_workers", {"num_workers": 2, "workers": [
        {"name": "c-worker-bbbbb", "address": "tcp://10.0.0.5:40000"},
        {"name": 3, "address": "tls://[fd00::5]:40001"}]})
    listed = await fake.client().workers()
    assert listed == [SchedulerWorker("c-worker-bbbbb", "tcp://10.0.0.5:40000"),
                      SchedulerWorker("3", "tls://[fd00::5]:40001")]
    assert [w.host for w in listed] == ["10.0.0.5", "fd00::5"]
    assert fake.asked == [("GET", "/api/v1/get_workers", b"")]


@pytest.mark.parametrize("entry", [{"name": True, "address": "tcp://10.0.0.5:1"}, {"name": "w"},
                                   {"name": "w", "address": "tcp://10.0.0.5"}, {"name": "w", "address": 5}, "w"])
async def test_a_worker_list_with_a_bad_entry_is_refused(fake: HttpScheduler, entry: object) -> None:  # noqa: F811
    fake.answer_json("/get_workers", {"workers": [entry]})
    assert "answered /get_workers with the worker" in await raises(fake.client().workers())


async def test_a_worker_list_that_is_not_an_array_is_refused(fake: HttpScheduler) -> None:  # noqa: F811
    fake.answer_json("/get_workers", {"workers": {"a": 1}})
    assert "'workers' = a JSON object, expected an array" in await raises(fake.client().workers())


async def test_retire_addresses_asks_for_exactly_those(fake: HttpScheduler) -> None:  # noqa: F811
    fake.answer_json("/retire_workers", {"tcp://10.0.0.5:40000": dask_identity("c-worker-bbbbb", "10.0.0.5")})
    retired = await fake.client().retire_addresses(["tcp://10.0.0.5:40000", "tcp://10.0.0.5:40000"])
    assert retired == [RetiredWorker("c-worker-bbbbb", "10.0.0.5")]
    assert fake.asked == [("POST", "/api/v1/retire_workers", b'{"workers": ["tcp://10.0.0.5:40000"]}')]


async def test_a_retire_reply_naming_a_worker_not_asked_for_is_refused(fake: HttpScheduler) -> None:  # noqa: F811
    fake.answer_json("/retire_workers", {"tcp://10.0.0.9:40000": dask_identity("c-worker-ccccc", "10.0.0.9")})
    message = await raises(fake.client().retire_addresses(["tcp://10.0.0.5:40000"]))
    assert "which it was not asked to retire" in message


@pytest.mark.timeout(20)  # a real scheduler and three workers on real time
async def test_a_real_dask_scheduler_retires_exactly_the_workers_named() -> None:
    import dask
    from distributed import Scheduler, Worker
    from kubedask_controller.builders import SCHEDULER_HTTP_ROUTES

    with dask.config.set({"distributed.scheduler.http.routes": ast.literal_eval(SCHEDULER_HTTP_ROUTES)}):
        async with Scheduler(host="127.0.0.1", port=0, dashboard_address="127.0.0.1:0") as s, \
                Worker(s.address, name="c-worker-aaaaa", nthreads=1), \
                Worker(s.address, name="c-worker-gpu-bbbbb", nthreads=1) as gpu, \
                Worker(s.address, name="c-worker-ccccc", nthreads=1):
            client = SchedulerClient("127.0.0.1", http_port=s.http_server.port)
            listed = {w.name: w for w in await client.workers()}
            assert sorted(listed) == ["c-worker-aaaaa", "c-worker-ccccc", "c-worker-gpu-bbbbb"]
            assert listed["c-worker-gpu-bbbbb"].address == gpu.address
            assert listed["c-worker-gpu-bbbbb"].host == "127.0.0.1"
            retired = await client.retire_addresses([gpu.address])
            assert retired == [RetiredWorker("c-worker-gpu-bbbbb", "127.0.0.1")]
            assert sorted(ws.name for ws in s.workers.values()) == ["c-worker-aaaaa", "c-worker-ccccc"]


# --- the driver ----------------------------------------------------------------------------------------


def gpu_pods(kube: FakeKube) -> list[str]:
    return [n for n in kube.workers() if n.startswith("analysis-worker-gpu-")]


async def two_groups(kube: FakeKube, scheduler: FakeScheduler, gpu: int) -> tuple[RequestDriver, dict[str, Any]]:
    body = configmap(request_data(workers=2, worker_groups={"gpu": (gpu, GPU)}))
    driver = new_driver(kube, body, scheduler)
    await driver.reconcile_once()
    kube.run_all()
    await driver.reconcile_once()
    return driver, body


async def scale_gpu(kube: FakeKube, driver: RequestDriver, body: dict[str, Any], n: int) -> None:
    changed = copy.deepcopy(body)
    changed["data"]["workers.gpu"] = str(n)
    driver.update(changed)
    await driver.reconcile_once()  # starts the retirement, beside the loop
    await driver.retirement.finished()
    await driver.reconcile_once()  # deletes what it retired (or, after a failure, what is in excess)


def newest(kube: FakeKube, names: list[str]) -> str:
    return max(names, key=lambda n: kube.pods[n]["metadata"]["creationTimestamp"])


async def test_scaling_down_one_group_retires_that_groups_workers_by_address(fake_kube: FakeKube) -> None:
    scheduler = FakeScheduler()
    driver, body = await two_groups(fake_kube, scheduler, gpu=2)
    scheduler.connect(fake_kube)
    default, gpu = sorted(set(fake_kube.workers()) - set(gpu_pods(fake_kube))), gpu_pods(fake_kube)
    going = newest(fake_kube, gpu)
    address = f"tcp://{pod_ip(fake_kube, going)}:40000"
    await scale_gpu(fake_kube, driver, body, 1)
    assert scheduler.asked[-2:] == ["workers", f"retire {address}"]  # the group's newest, by address
    assert gpu_pods(fake_kube) == [n for n in gpu if n != going]
    assert sorted(set(fake_kube.workers()) - set(gpu_pods(fake_kube))) == default  # no other group's worker went
    assert "WorkersRetired" in fake_kube.reasons() and "RetireFailed" not in fake_kube.reasons()


async def test_a_worker_named_otherwise_is_matched_by_its_pod_ip(fake_kube: FakeKube) -> None:
    scheduler = FakeScheduler()
    driver, body = await two_groups(fake_kube, scheduler, gpu=1)
    scheduler.connect(fake_kube)
    scheduler.known = [SchedulerWorker(f"dask-{i}", w.address) for i, w in enumerate(scheduler.known)]
    (gpu,) = gpu_pods(fake_kube)
    address = f"tcp://{pod_ip(fake_kube, gpu)}:40000"
    await scale_gpu(fake_kube, driver, body, 0)
    assert scheduler.asked[-1] == f"retire {address}"
    assert gpu_pods(fake_kube) == [] and len(fake_kube.workers()) == 2
    assert "WorkersRetired" in fake_kube.reasons()


def pod_ip(kube: FakeKube, name: str) -> str:
    return str(kube.pods[name]["status"]["podIP"])


async def test_group_workers_the_scheduler_does_not_know_are_deleted_and_no_other_is_retired(
        fake_kube: FakeKube) -> None:
    scheduler = FakeScheduler()
    driver, body = await two_groups(fake_kube, scheduler, gpu=2)
    scheduler.connect(fake_kube)
    scheduler.known = [w for w in scheduler.known if not w.name.startswith("analysis-worker-gpu-")]
    default = sorted(set(fake_kube.workers()) - set(gpu_pods(fake_kube)))
    await scale_gpu(fake_kube, driver, body, 0)
    assert not any(a.startswith("retire ") for a in scheduler.asked)  # nothing it knows is a candidate
    assert gpu_pods(fake_kube) == [] and fake_kube.workers() == default


async def test_an_unanswered_worker_list_falls_back_to_deleting_the_groups_newest(fake_kube: FakeKube) -> None:
    scheduler = FakeScheduler()
    driver, body = await two_groups(fake_kube, scheduler, gpu=2)
    gpu = gpu_pods(fake_kube)
    going = newest(fake_kube, gpu)
    scheduler.down = "scheduler 10.0.0.1 answered /get_workers with HTTP 500"
    await scale_gpu(fake_kube, driver, body, 1)
    assert "RetireFailed" in fake_kube.reasons()
    assert gpu_pods(fake_kube) == [n for n in gpu if n != going] and len(fake_kube.workers()) == 3


@pytest.mark.looptime
@pytest.mark.parametrize("surge", [1, 2])
async def test_a_rolling_update_retires_each_old_worker_through_the_scheduler(fake_kube: FakeKube, surge: int) -> None:
    scheduler = FakeScheduler()
    body = configmap(request_data(workers=3))
    body["data"]["max-surge"] = str(surge)
    driver = new_driver(fake_kube, body, scheduler)
    await driver.reconcile_once()
    fake_kube.run_all()
    await driver.reconcile_once()
    old = set(fake_kube.workers())
    template = copy.deepcopy(WORKER_TEMPLATE)
    template["spec"]["containers"][0]["env"] = [{"name": "RELEASE", "value": "2"}]
    changed = copy.deepcopy(body)
    changed["data"]["worker-template"] = json.dumps(template)
    driver.update(changed)
    most = 0
    for _ in range(40):
        fake_kube.run_all()  # new pods become ready; the scheduler knows every running worker
        scheduler.connect(fake_kube)
        await driver.reconcile_once()
        await driver.retirement.finished()
        most = max(most, len(fake_kube.workers()))
        if not old & set(fake_kube.workers()) and len(fake_kube.workers()) == 3:
            break
        await asyncio.sleep(1)
    assert not old & set(fake_kube.workers()) and len(fake_kube.workers()) == 3
    retired = [a for a in scheduler.asked if a.startswith("retire ")]
    assert len(" ".join(retired).split()) - len(retired) == 3  # each old worker retired once, by its address
    assert most <= 3 + surge
    assert all(p["spec"]["containers"][0]["env"][0] == {"name": "RELEASE", "value": "2"}
               for n, p in fake_kube.pods.items() if n in fake_kube.workers())

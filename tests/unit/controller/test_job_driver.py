"""A request with a ``job-template`` through the driver, against the in-memory API: the job pod once the
scheduler is ready, the cluster as usual while it runs, and when it ends the cluster removed, the job pod
and the request kept with phase Succeeded or Failed, and ``job-ttl`` on the controller's clock."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from controller_fakes import FakeKube, LoopClock, configmap, request_data
from kubedask.spec import parse_status
from kubedask_controller.controller import Controller
from kubedask_controller.driver import RequestDriver
from kubedask_controller.policy import Policy
from kubedask_controller.settings import Settings
from kubernetes.client.exceptions import ApiException

JOB = {"containers": [{"name": "job", "image": "ghcr.io/dask/dask:latest", "args": ["python3", "job.py"]}]}


def driver_for(kube: FakeKube, **data: Any) -> RequestDriver:
    body = configmap(request_data(workers=2, job_template=JOB, **data))
    kube.configmap = copy.deepcopy(body)
    return RequestDriver(Controller(kube, Settings(policy=Policy()), clock=LoopClock()), body)


def status(kube: FakeKube) -> Any:
    return parse_status(kube.configmap_patches[-1]["metadata"]["annotations"])


def job_pod(kube: FakeKube) -> dict[str, Any]:
    return kube.pods["analysis-job"]


def end_job(kube: FakeKube, phase: str, code: int, reason: str) -> None:
    job_pod(kube)["status"] = {"phase": phase, "containerStatuses": [
        {"name": "job", "state": {"terminated": {"exitCode": code, "reason": reason}}}]}


async def running(kube: FakeKube, **data: Any) -> RequestDriver:
    driver = driver_for(kube, **data)
    await driver.reconcile_once()
    assert "analysis-job" not in kube.pods  # not before the scheduler is ready
    kube.run_all()
    await driver.reconcile_once()
    assert "analysis-job" in kube.pods
    kube.run_all()
    await driver.reconcile_once()
    return driver


async def test_the_job_pod_is_created_once_the_scheduler_is_ready(fake_kube: FakeKube) -> None:
    driver = driver_for(fake_kube)
    await driver.reconcile_once()
    assert "analysis-job" not in fake_kube.pods
    assert status(fake_kube).job.state == "Pending"
    fake_kube.run_all()
    await driver.reconcile_once()
    pod = job_pod(fake_kube)
    assert pod["metadata"]["labels"]["dask.org/component"] == "job"
    assert {"name": "DASK_SCHEDULER_ADDRESS", "value": "tcp://analysis-scheduler.ns.svc.cluster.local:8786"} in \
        pod["spec"]["containers"][0]["env"]
    assert "JobCreated" in fake_kube.reasons()
    assert status(fake_kube).job.state == "Pending"  # created after this pass's LIST: not seen yet, not gone
    await driver.reconcile_once()
    assert status(fake_kube).job.state == "Pending" and "analysis-job" in fake_kube.pods
    fake_kube.run_all()
    await driver.reconcile_once()
    assert status(fake_kube).phase == "Running" and status(fake_kube).job.state == "Running"


async def test_while_the_job_runs_the_cluster_scales_and_repairs_and_the_job_pod_is_left_alone(
        fake_kube: FakeKube) -> None:
    driver = await running(fake_kube)
    uid = job_pod(fake_kube)["metadata"]["uid"]
    exited = fake_kube.workers()[0]
    fake_kube.pods[exited]["status"] = {"phase": "Failed"}
    body = copy.deepcopy(driver.body)
    body["data"]["workers"] = "3"
    driver.update(body)
    await driver.reconcile_once()
    assert exited not in fake_kube.pods and len(fake_kube.workers()) == 3
    assert job_pod(fake_kube)["metadata"]["uid"] == uid  # never recreated


async def test_a_job_that_succeeds_removes_its_cluster_and_keeps_its_pod_and_request(fake_kube: FakeKube) -> None:
    driver = await running(fake_kube, job_ttl=None)
    end_job(fake_kube, "Succeeded", 0, "Completed")
    fake_kube.logs["analysis-job"] = "\n".join(f"step {i}" for i in range(50)) + "\n1.0\n"
    await driver.reconcile_once()
    assert list(fake_kube.pods) == ["analysis-job"]
    assert fake_kube.services == {} and fake_kube.pdbs == {}
    final = status(fake_kube)
    assert final.phase == "Succeeded" and final.job.exit_code == 0 and final.job.reason == "Completed"
    assert final.message.endswith("step 49\n1.0") and "step 30" not in final.message
    assert fake_kube.configmap_patches[-1]["metadata"]["labels"] == {"kubedask.io/phase": "Succeeded"}
    assert ("JobSucceeded", "Normal") in {(r, t) for r, _, t in fake_kube.events}
    writes = fake_kube.writes
    for _ in range(3):
        assert await driver.reconcile_once() is None  # kept until deleted: nothing more to do
    assert fake_kube.writes == writes and fake_kube.configmaps_deleted == []


async def test_a_job_that_exits_3_fails_naming_exit_code_3(fake_kube: FakeKube) -> None:
    driver = await running(fake_kube)
    end_job(fake_kube, "Failed", 3, "Error")
    fake_kube.logs["analysis-job"] = "Traceback\nSystemExit: 3\n"
    await driver.reconcile_once()
    final = status(fake_kube)
    assert final.phase == "Failed" and final.job.exit_code == 3
    assert "exit code 3" in final.message and "SystemExit: 3" in final.message
    assert any(r == "JobFailed" and "exit code 3" in m and t == "Warning" for r, m, t in fake_kube.events)
    assert fake_kube.workers() == [] and "analysis-scheduler" not in fake_kube.pods


async def test_a_job_pod_that_cannot_start_fails_the_job_with_the_kubelets_reason(fake_kube: FakeKube) -> None:
    driver = await running(fake_kube)
    job_pod(fake_kube)["status"] = {"phase": "Pending", "containerStatuses": [{"name": "job", "state": {"waiting": {
        "reason": "ErrImageNeverPull", "message": 'Container image "nope" is not present with pull policy of Never'}}}]}
    await driver.reconcile_once()
    final = status(fake_kube)
    assert final.phase == "Failed" and final.job.reason == "ErrImageNeverPull"
    assert 'image "nope" is not present' in final.message
    assert fake_kube.workers() == []


async def test_a_log_the_controller_may_not_read_is_named_and_the_job_still_finishes(fake_kube: FakeKube) -> None:
    driver = await running(fake_kube)
    end_job(fake_kube, "Succeeded", 0, "Completed")
    fake_kube.log_error = ApiException(status=403, reason="Forbidden")
    await driver.reconcile_once()
    final = status(fake_kube)
    assert final.phase == "Succeeded" and "needs get on pods/log" in final.message


async def test_a_job_pod_deleted_while_it_runs_fails_the_job_and_is_not_run_again(fake_kube: FakeKube) -> None:
    driver = await running(fake_kube)
    del fake_kube.pods["analysis-job"]
    await driver.reconcile_once()
    assert status(fake_kube).phase == "Failed" and "deleted before it ended" in status(fake_kube).message
    await driver.reconcile_once()
    assert fake_kube.pods == {}


async def test_a_new_controller_process_keeps_a_finished_job_finished(fake_kube: FakeKube) -> None:
    driver = await running(fake_kube)
    end_job(fake_kube, "Succeeded", 0, "Completed")
    await driver.reconcile_once()
    assert fake_kube.configmap is not None
    del fake_kube.pods["analysis-job"]  # someone cleaned up the job pod
    restarted = RequestDriver(Controller(fake_kube, Settings(), clock=LoopClock()), copy.deepcopy(fake_kube.configmap))
    writes = fake_kube.writes
    await restarted.reconcile_once()
    assert fake_kube.pods == {} and fake_kube.writes == writes  # no new cluster, no new job, nothing written
    recorded = parse_status(fake_kube.configmap["metadata"]["annotations"])
    assert recorded is not None and recorded.phase == "Succeeded"


@pytest.mark.looptime
async def test_job_ttl_deletes_the_finished_request_on_the_controllers_clock(fake_kube: FakeKube) -> None:
    kube = fake_kube
    body = configmap(request_data(workers=1, job_template=JOB, job_ttl=600))
    kube.configmap = copy.deepcopy(body)
    controller = Controller(kube, Settings(policy=Policy()), clock=LoopClock())
    controller.on_request_event("ADDED", body)
    await asyncio.sleep(5)
    kube.run_all()
    controller.on_pod_event("MODIFIED", kube.pods["analysis-scheduler"])
    await asyncio.sleep(5)
    end_job(kube, "Succeeded", 0, "Completed")
    controller.on_pod_event("MODIFIED", kube.pods["analysis-job"])
    await asyncio.sleep(5)
    ended = parse_status(kube.configmap["metadata"]["annotations"])
    assert ended is not None and ended.phase == "Succeeded"
    await asyncio.sleep(590)
    assert kube.configmaps_deleted == []
    await asyncio.sleep(10)
    assert kube.configmaps_deleted == ["analysis"]
    await controller.stop()


@pytest.mark.looptime
async def test_a_finished_job_frees_the_namespace_caps_for_the_next_request(fake_kube: FakeKube) -> None:
    controller = Controller(fake_kube, Settings(policy=Policy.model_validate({"maxClustersPerNamespace": 1})),
                            clock=LoopClock())
    nightly = configmap(request_data(workers=1, job_template=JOB), name="nightly", uid="u1",
                        created="2026-01-01T00:00:00Z")
    analysis = configmap(request_data(workers=1), name="analysis", uid="u2", created="2026-01-01T00:00:05Z")
    controller.on_request_event("ADDED", nightly)
    controller.on_request_event("ADDED", analysis)
    await asyncio.sleep(5)
    fake_kube.run_all()
    controller.on_pod_event("MODIFIED", fake_kube.pods["nightly-scheduler"])
    await asyncio.sleep(5)
    assert not any(n.startswith("analysis") for n in fake_kube.pods)  # the job's cluster holds the only slot
    fake_kube.pods["nightly-job"]["status"] = {"phase": "Succeeded", "containerStatuses": []}
    controller.on_pod_event("MODIFIED", fake_kube.pods["nightly-job"])
    await asyncio.sleep(2)
    assert "analysis-scheduler" in fake_kube.pods and "nightly-scheduler" not in fake_kube.pods
    await controller.stop()


async def test_the_outcome_is_written_even_when_removing_the_cluster_fails(fake_kube: FakeKube) -> None:
    driver = await running(fake_kube)
    end_job(fake_kube, "Failed", 3, "Error")
    fake_kube.failing_deletes = ApiException(status=403, reason="Forbidden")
    with pytest.raises(ApiException):
        await driver.reconcile_once()
    assert status(fake_kube).phase == "Failed" and status(fake_kube).job.exit_code == 3
    fake_kube.failing_deletes = None
    await driver.reconcile_once()  # the next pass removes it
    assert list(fake_kube.pods) == ["analysis-job"]

"""``kubedask.run_job``: the request it writes, and waiting for the job's end on looptime's fake clock."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import kubedask
import pytest
from fake_kube import MemoryApi
from kubedask import ControllerNotRespondingError, RequestRejectedError, spec
from kubedask import jobs as jobs_module
from kubedask.auth import ClusterAuth, KubeAuth, LoadedAuth
from kubedask.errors import KubeClusterError
from kubedask.jobs import JobTimeoutError, JobWait, job_manifest, result_of, run_job_async
from kubernetes.client import Configuration
from kubernetes.client.exceptions import ApiException

WORKER = {"spec": {"containers": [{"name": "dask-worker", "image": "img"}]}}
JOB = {"spec": {"containers": [{"name": "job", "image": "img", "args": ["python", "job.py"]}]}}
RUNNING = {"phase": "Running", "message": "1 workers running", "job": {"pod": "j1-job", "state": "Running"}}
SUCCEEDED = {"phase": "Succeeded", "message": "the job j1-job succeeded (exit code 0)\nlast lines",
             "job": {"pod": "j1-job", "state": "Succeeded", "exitCode": 0, "reason": "Completed"}}
FAILED = {"phase": "Failed", "message": "the job j1-job failed with exit code 3",
          "job": {"pod": "j1-job", "state": "Failed", "exitCode": 3, "reason": "Error"}}


@pytest.fixture
def api() -> MemoryApi:
    fake = MemoryApi("team-a")
    fake.configmaps["j1"] = job_manifest("j1", "team-a", JOB, WORKER, n_workers=1)
    return fake


def later(delay: float, action: Any) -> None:
    asyncio.get_running_loop().call_later(delay, action)


def waiter(api: MemoryApi, lines: list[str] | None = None, timeout: float | None = None) -> JobWait:
    return JobWait(api, "j1", controller_timeout=30, timeout=timeout, log=(lines if lines is not None else []).append)


def test_the_job_request_carries_the_job_and_no_client_heartbeat() -> None:
    manifest = job_manifest("nightly", "team-a", JOB, WORKER, n_workers=2, job_ttl=600)
    data = manifest["data"]
    request = spec.parse_request("nightly", data)
    assert request.job_template is not None and request.job_ttl == 600 and request.workers == 2
    assert spec.KEY_HEARTBEAT_TIMEOUT not in data  # a batch job outlives the process that submitted it
    assert spec.HEARTBEAT_ANNOTATION not in (manifest["metadata"].get("annotations") or {})
    assert manifest["metadata"]["labels"] == {spec.REQUEST_LABEL: spec.REQUEST_LABEL_VALUE}


@pytest.mark.looptime
async def test_waiting_logs_progress_and_returns_the_final_status(api: MemoryApi) -> None:
    lines: list[str] = []
    later(5, lambda: api.set_status("j1", phase="Pending", message="waiting for the scheduler pod to become ready",
                                    job={"pod": "j1-job"}))
    later(40, lambda: api.set_status("j1", **RUNNING))
    later(300, lambda: api.set_status("j1", **SUCCEEDED))
    status = await waiter(api, lines).until_done()
    assert status.phase == "Succeeded" and status.job is not None and status.job.exit_code == 0
    assert lines[0] == "Job j1: Pending (job Pending): waiting for the scheduler pod to become ready"
    assert "Job j1: Running (job Running): 1 workers running" in lines
    assert lines[-1] == "Job j1: Succeeded (job Succeeded): the job j1-job succeeded (exit code 0)"


@pytest.mark.looptime
async def test_a_failed_job_is_a_result_not_an_error(api: MemoryApi) -> None:
    api.set_status("j1", **FAILED)
    api.logs["j1-job"] = "Traceback ...\nSystemExit: 3\n"
    result = await result_of(api, "j1", await waiter(api).until_done())
    assert (result.phase, result.exit_code, result.reason, result.succeeded) == ("Failed", 3, "Error", False)
    assert result.log == "Traceback ...\nSystemExit: 3\n" and result.namespace == "team-a"


@pytest.mark.looptime
async def test_no_controller_ends_the_wait_after_the_controller_timeout(api: MemoryApi) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ControllerNotRespondingError, match="within 30s"):
        await waiter(api).until_done()
    assert 30 <= loop.time() - started <= 33


@pytest.mark.looptime
async def test_a_refused_request_quotes_the_controller(api: MemoryApi) -> None:
    api.set_status("j1", phase="Failed", message="policy violation in job-template: privileged",
                   conditions=[{"type": "RequestValid", "status": "False", "message": "privileged"}])
    with pytest.raises(RequestRejectedError, match="policy violation in job-template"):
        await waiter(api).until_done()


@pytest.mark.looptime
async def test_a_job_that_does_not_end_in_time_keeps_running_and_says_how_to_stop_it(api: MemoryApi) -> None:
    api.set_status("j1", **RUNNING)
    with pytest.raises(JobTimeoutError) as err:
        await waiter(api, timeout=600).until_done()
    assert "kubectl delete configmap j1 -n team-a" in str(err.value) and "--job" in str(err.value)
    assert "j1" in api.configmaps  # not deleted


@pytest.mark.looptime
async def test_a_request_deleted_while_waiting_is_reported(api: MemoryApi) -> None:
    later(10, lambda: api.configmaps.pop("j1"))
    with pytest.raises(KubeClusterError, match="deleted before its job ended"):
        await waiter(api).until_done()


async def test_a_log_that_cannot_be_read_leaves_the_result_without_it(api: MemoryApi) -> None:
    async def forbidden(name: str, container: str | None = None, tail_lines: int | None = None) -> str:
        raise ApiException(status=403, reason="Forbidden")

    api.pod_log = forbidden  # type: ignore[method-assign]
    result = await result_of(api, "j1", spec.ClusterStatus.model_validate(SUCCEEDED))
    assert result.succeeded and result.log is None


@pytest.mark.looptime
async def test_run_job_writes_the_request_then_returns_the_outcome_and_log(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = MemoryApi("team-a")
    monkeypatch.setattr(jobs_module, "KubeApi", lambda configuration, namespace: fake)
    monkeypatch.setattr(ClusterAuth, "load_first",
                        staticmethod(lambda auth: LoadedAuth(Configuration(), "team-a", KubeAuth("https://x"))))

    def controller() -> None:  # what the controller writes once the job has ended
        fake.set_status("nightly", **{**SUCCEEDED, "job": {**SUCCEEDED["job"], "pod": "nightly-job"}})  # type: ignore[dict-item]
        fake.logs["nightly-job"] = "1.0\n"

    later(20, controller)
    lines: list[str] = []
    result = await run_job_async(JOB, WORKER, n_workers=2, name="nightly", job_ttl=60, log=lines.append)
    assert (result.name, result.phase, result.exit_code, result.log) == ("nightly", "Succeeded", 0, "1.0\n")
    written = fake.configmaps["nightly"]["data"]
    assert written["workers"] == "2" and written["job-ttl"] == "60" and "python" in written["job-template"]
    assert lines[0] == "Submitted job team-a/nightly (2 workers)"
    assert fake.closed


async def test_run_job_refuses_a_missing_job_template_before_anything_is_written() -> None:
    with pytest.raises(ValueError, match="needs a job template"):
        await run_job_async({}, WORKER)


def test_run_job_is_public() -> None:
    assert kubedask.run_job is jobs_module.run_job and kubedask.JobResult is jobs_module.JobResult
    assert json.loads(spec.ClusterStatus.model_validate(FAILED).to_json())["job"]["exitCode"] == 3


@pytest.mark.looptime
async def test_only_a_final_phase_ends_the_wait(api: MemoryApi) -> None:
    api.set_status("j1", phase="Running", message="1 workers running",
                   job={"pod": "j1-job", "state": "Failed", "exitCode": 1, "reason": "Error"})
    later(30, lambda: api.set_status("j1", **FAILED))
    loop = asyncio.get_running_loop()
    started = loop.time()
    status = await waiter(api).until_done()
    assert status.phase == "Failed" and loop.time() - started >= 30

"""A batch job's pod and outcome (kubedask_controller.job): built from the request, read from the pod."""

from __future__ import annotations

from typing import Any

import pytest
from controller_fakes import WORKER_TEMPLATE
from kubedask.spec import build_request_data, parse_request
from kubedask_controller import job, labelling
from kubedask_controller.policy import Policy, PolicyViolation, admit

JOB = {"kind": "Pod", "metadata": {"labels": {"team": "a"}, "annotations": {"note": "x"}},
       "spec": {"initContainers": [{"name": "fetch", "image": "busybox"}],
                "containers": [{"name": "job", "image": "ghcr.io/dask/dask:latest",
                                "args": ["python", "-c", "print(1)"],
                                "env": [{"name": "DASK_SCHEDULER_ADDRESS", "value": "tcp://elsewhere:1"}]},
                               {"name": "side", "image": "busybox", "imagePullPolicy": "Never"}]}}
OWNER = labelling.owner_reference("nightly", "uid-1")


def request(job_template: Any = JOB, **kwargs: Any) -> Any:
    return parse_request("nightly", build_request_data(worker_template=WORKER_TEMPLATE, workers=1,
                                                       job_template=job_template, **kwargs))


def pod(phase: str, containers: list[dict[str, Any]] | None = None, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "nightly-job"}, "status": {"phase": phase, "containerStatuses": containers or [],
                                                           **status}}


def terminated(code: int, reason: str, name: str = "job", message: str = "") -> dict[str, Any]:
    return {"name": name, "state": {"terminated": {"exitCode": code, "reason": reason, "message": message}}}


def test_job_pod_is_named_labelled_and_owned_like_the_clusters_other_pods() -> None:
    manifest = job.build_job_pod(request(), "team-a", OWNER)
    metadata = manifest["metadata"]
    assert metadata["name"] == "nightly-job" and metadata["namespace"] == "team-a"
    assert metadata["labels"] == {"team": "a", **labelling.labels("nightly", "job")}
    assert metadata["labels"]["dask.org/component"] == "job"
    assert metadata["annotations"] == {"note": "x"}
    assert metadata["ownerReferences"] == [OWNER]


def test_every_container_of_the_job_gets_the_schedulers_address_once() -> None:
    spec = job.build_job_pod(request(), "team-a", OWNER)["spec"]
    address = "tcp://nightly-scheduler.team-a.svc.cluster.local:8786"
    for container in spec["initContainers"] + spec["containers"]:
        values = [e["value"] for e in container["env"] if e["name"] == "DASK_SCHEDULER_ADDRESS"]
        assert values == [address], container["name"]
    assert [c["imagePullPolicy"] for c in spec["containers"]] == ["IfNotPresent", "Never"]  # the template wins


def test_a_job_runs_once_unless_its_template_says_otherwise() -> None:
    assert job.build_job_pod(request(), "ns", OWNER)["spec"]["restartPolicy"] == "Never"
    again = {**JOB, "spec": {**JOB["spec"], "restartPolicy": "OnFailure"}}  # type: ignore[dict-item]
    assert job.build_job_pod(request(again), "ns", OWNER)["spec"]["restartPolicy"] == "OnFailure"
    assert "tolerations" not in job.build_job_pod(request(), "ns", OWNER)["spec"]  # not a Dask pod


def test_a_job_pod_gets_no_service_account_token_unless_its_template_asks() -> None:
    assert job.build_job_pod(request(), "ns", OWNER)["spec"]["automountServiceAccountToken"] is False
    asks = {**JOB, "spec": {**JOB["spec"], "automountServiceAccountToken": True}}  # type: ignore[dict-item]
    assert job.build_job_pod(request(asks), "ns", OWNER)["spec"]["automountServiceAccountToken"] is True


def test_building_does_not_change_the_request() -> None:
    req = request()
    job.build_job_pod(req, "ns", OWNER)
    assert req.job_template is not None and "restartPolicy" not in req.job_template.spec


def test_the_policy_checks_the_job_template_like_the_others() -> None:
    privileged = {"containers": [{"name": "job", "image": "i", "securityContext": {"privileged": True}}]}
    with pytest.raises(PolicyViolation) as err:
        admit(request(privileged), Policy(), "team-a")
    assert err.value.key == "job-template" and "privileged" in str(err.value)
    # The job template's label and annotation are ones the defaults leave out: the admin allows them.
    policy = Policy(profile="restricted", allowedPodLabels=("user.kubedask.io/*", "team"),
                    allowedPodAnnotations=("note",))
    admitted = admit(request(), policy, "team-a")
    assert admitted.job_template is not None
    assert admitted.job_template.spec["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize(("manifest", "state"), [
    (pod("Pending"), "Pending"),
    (pod("Pending", [{"name": "job", "state": {"waiting": {"reason": "ContainerCreating"}}}]), "Pending"),
    (pod("Running", [{"name": "job", "state": {"running": {}}}]), "Running"),
    # restartPolicy OnFailure: restarting is what the template asked for, not a failure
    (pod("Running", [{"name": "job", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]), "Running"),
])
def test_a_job_that_may_still_end_by_itself_is_not_finished(manifest: dict[str, Any], state: str) -> None:
    result = job.outcome(manifest)
    assert result.state == state and not result.finished


def test_a_succeeded_pod_is_a_succeeded_job() -> None:
    result = job.outcome(pod("Succeeded", [terminated(0, "Completed")]))
    assert (result.state, result.exit_code, result.reason, result.finished) == ("Succeeded", 0, "Completed", True)


def test_a_failed_pod_names_the_container_that_failed_its_exit_code_and_reason() -> None:
    result = job.outcome(pod("Failed", [terminated(0, "Completed", "side"), terminated(3, "Error")]))
    assert (result.state, result.exit_code, result.reason, result.container) == ("Failed", 3, "Error", "job")
    oom = job.outcome(pod("Failed", [terminated(137, "OOMKilled")]))
    assert (oom.exit_code, oom.reason) == (137, "OOMKilled")


def test_a_pod_the_kubelet_failed_itself_gives_its_reason() -> None:
    result = job.outcome(pod("Failed", reason="Evicted", message="The node was low on resource: memory."))
    assert (result.state, result.exit_code, result.reason) == ("Failed", None, "Evicted")
    assert "low on resource" in job.message(result)


@pytest.mark.parametrize("reason", ["ErrImageNeverPull", "ImagePullBackOff", "ErrImagePull",
                                    "CreateContainerConfigError", "InvalidImageName"])
def test_a_pod_that_cannot_start_is_a_failed_job_with_the_kubelets_reason(reason: str) -> None:
    waiting = {"name": "job", "state": {"waiting": {"reason": reason, "message": "image \"nope\" is absent"}}}
    result = job.outcome(pod("Pending", [waiting]))
    assert result.state == "Failed" and result.reason == reason and result.never_started
    text = job.message(result)
    assert reason in text and 'image "nope" is absent' in text and "job-template" in text


def test_an_init_container_that_cannot_start_fails_the_job_too() -> None:
    manifest = pod("Pending", initContainerStatuses=[
        {"name": "fetch", "state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}}}])
    result = job.outcome(manifest)
    assert result.state == "Failed" and result.container == "fetch"


def test_the_message_names_the_exit_code_reason_and_quotes_the_last_log_lines() -> None:
    result = job.outcome(pod("Failed", [terminated(3, "Error")]))
    log = "\n".join(f"line {i}" for i in range(100)) + "\n" + "x" * 1000
    text = job.message(result, job.log_tail(log))
    assert "failed with exit code 3" in text and "reason Error" in text
    quoted = text.split("Last lines of its log:\n", 1)[1].splitlines()
    assert len(quoted) == job.LOG_LINES and quoted[0] == "line 81" and quoted[-1].endswith("...")
    assert len(quoted[-1]) < 400


def test_an_unreadable_log_is_said_and_the_job_still_finishes() -> None:
    result = job.outcome(pod("Succeeded", [terminated(0, "Completed")]))
    text = job.message(result, "", "Forbidden: pods/log")
    assert "succeeded (exit code 0)" in text and "could not be read: Forbidden: pods/log" in text
    assert job.final_status(request(), result, text).phase == "Succeeded"


def test_the_final_status_is_the_record_of_the_job() -> None:
    req = request()
    result = job.outcome(pod("Failed", [terminated(3, "Error")]))
    status = job.final_status(req, result, job.message(result, "boom"))
    assert status.phase == "Failed" and status.observed_spec == req.fingerprint
    assert status.job is not None and (status.job.state, status.job.exit_code, status.job.reason) == ("Failed", 3,
                                                                                                      "Error")
    condition = status.condition("JobSucceeded")
    assert condition is not None and condition.status == "False" and condition.reason == "Error"
    assert "\n" not in condition.message
    assert job.recorded(status) == status
    assert job.started(status)


def test_a_running_cluster_is_not_a_record() -> None:
    req = request()
    running = job.with_job(job.final_status(req, job.outcome(pod("Succeeded")), "x").model_copy(
        update={"phase": "Running"}), job.outcome(pod("Running")), req)
    assert job.recorded(running) is None
    assert job.started(running)
    pending = job.with_job(running, None, req)
    assert pending.job is not None and pending.job.state == "Pending" and not job.started(pending)
    assert job.recorded(None) is None


def test_a_job_pod_deleted_before_it_ended_is_a_failed_job() -> None:
    result = job.gone("nightly-job")
    assert result.finished and result.state == "Failed" and result.reason == "Deleted"
    assert "deleted before it ended" in job.message(result)

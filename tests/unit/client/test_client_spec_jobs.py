"""Batch jobs in the shared schema: ``job-template`` and ``job-ttl``, and a job's outcome in the status."""

from __future__ import annotations

import json

import pytest
from kubedask import spec
from kubedask.spec import RequestError, build_request_data, parse_request

WORKER = "containers: [{name: dask-worker, image: ghcr.io/dask/dask:latest}]"
JOB_MANIFEST = """
kind: Pod
metadata:
  labels: {team: a}
spec:
  restartPolicy: OnFailure
  containers:
  - name: job
    image: ghcr.io/dask/dask:latest
    args: [python, -c, "print(1)"]
"""


def test_job_template_is_parsed_like_the_other_templates() -> None:
    request = parse_request("nightly", {"worker-template": WORKER, "job-template": JOB_MANIFEST, "job-ttl": "1h"})
    assert request.job_template is not None
    assert request.job_template.labels == {"team": "a"}
    assert request.job_template.spec["restartPolicy"] == "OnFailure"
    assert request.job_template.spec["containers"][0]["args"] == ["python", "-c", "print(1)"]
    assert request.job_ttl == 3600


def test_a_bare_spec_is_a_job_template_too_and_no_job_means_none() -> None:
    bare = parse_request("nightly", {"worker-template": WORKER, "job-template": "containers: [{name: j, image: i}]"})
    assert bare.job_template is not None and bare.job_template.spec["containers"][0]["image"] == "i"
    assert bare.job_ttl is None
    plain = parse_request("analysis", {"worker-template": WORKER})
    assert plain.job_template is None and plain.job_ttl is None


def test_a_broken_job_template_is_refused_naming_its_key() -> None:
    with pytest.raises(RequestError) as err:
        parse_request("nightly", {"worker-template": WORKER, "job-template": "containers: []"})
    assert err.value.key == "job-template"
    assert "'job-template'" in str(err.value) and "no containers" in str(err.value)


def test_a_job_that_could_never_end_is_refused() -> None:
    with pytest.raises(RequestError) as err:
        parse_request("nightly", {"worker-template": WORKER,
                                  "job-template": "restartPolicy: Always\ncontainers: [{name: j, image: i}]"})
    assert err.value.key == "job-template" and "'OnFailure'" in str(err.value)


def test_job_ttl_without_a_job_is_refused_with_the_fix() -> None:
    with pytest.raises(RequestError) as err:
        parse_request("analysis", {"worker-template": WORKER, "job-ttl": "600"})
    assert err.value.key == "job-ttl"
    assert "there is no 'job-template'" in str(err.value)


@pytest.mark.parametrize("ttl", ["soon", "0", "-5"])
def test_job_ttl_must_be_a_positive_duration(ttl: str) -> None:
    with pytest.raises(RequestError) as err:
        parse_request("nightly", {"worker-template": WORKER, "job-template": JOB_MANIFEST, "job-ttl": ttl})
    assert err.value.key == "job-ttl"


def test_a_job_needs_a_scheduler_in_the_cluster() -> None:
    with pytest.raises(RequestError) as err:
        parse_request("nightly", {"worker-template": WORKER, "job-template": JOB_MANIFEST, "deploy-mode": "local",
                                  "scheduler-address": "tcp://10.0.0.5:8786"})
    assert err.value.key == "job-template" and "'local'" in str(err.value)


def test_build_request_data_writes_the_job_keys_and_validates_them() -> None:
    data = build_request_data(worker_template={"containers": [{"name": "w", "image": "i"}]},
                              job_template={"containers": [{"name": "j", "image": "i", "args": ["python", "x.py"]}]},
                              job_ttl=300)
    assert data["job-ttl"] == "300"
    assert parse_request("nightly", data).job_template is not None
    with pytest.raises(RequestError):
        build_request_data(worker_template={"containers": [{"name": "w", "image": "i"}]}, job_ttl=300)


def test_job_names_come_from_the_one_place() -> None:
    assert spec.job_name("nightly") == "nightly-job"
    assert spec.JOB_COMPONENT == "job"
    assert {spec.KEY_JOB_TEMPLATE, spec.KEY_JOB_TTL} <= set(spec.ALL_KEYS)


def test_a_jobs_outcome_travels_in_the_status_with_kubernetes_style_keys() -> None:
    status = spec.ClusterStatus(phase="Failed", message="the job failed: exit code 3",
                                job=spec.JobStatus(pod="nightly-job", state="Failed", exit_code=3, reason="Error"))
    raw = status.to_json()
    assert json.loads(raw)["job"] == {"pod": "nightly-job", "state": "Failed", "exitCode": 3, "reason": "Error"}
    back = spec.parse_status({spec.STATUS_ANNOTATION: raw})
    assert back == status and back is not None and back.job is not None and back.job.finished
    succeeded = spec.parse_status({spec.STATUS_ANNOTATION: '{"phase": "Succeeded", "job": {"pod": "p"}}'})
    assert succeeded is not None and succeeded.phase == "Succeeded"
    assert succeeded.job is not None and not succeeded.job.finished  # Pending until it ends


def test_a_cluster_without_a_job_writes_the_status_it_always_wrote() -> None:
    raw = spec.ClusterStatus(phase="Running").to_json()
    assert "job" not in json.loads(raw)

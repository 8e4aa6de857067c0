"""A batch job (``job-template``): its pod, what the pod says about how it went, and the final status. Pure.

The controller creates the job pod ``NAME-job`` once the scheduler is ready (:func:`build_job_pod`) and
reads it on every pass (:func:`outcome`). When the job has ended (its pod Succeeded or Failed, or it can
never start: an image that cannot be pulled, a missing ConfigMap key...) the cluster is removed and the
request keeps :func:`final_status`, whose ``job`` field is the record: a finished job is never run again,
whatever happens to its pod later.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

from kubedask.spec import (
    JOB_COMPONENT,
    KEY_JOB_TEMPLATE,
    ClusterRequest,
    ClusterStatus,
    Condition,
    JobState,
    JobStatus,
    job_name,
)

from . import reconcile
from .builders import scheduler_address
from .labelling import labels, request_labels
from .observe import Observation

Manifest = dict[str, Any]
Body = Mapping[str, Any]

#: Container waiting reasons after which a job's pod will not start by itself: the job has failed.
#: (CrashLoopBackOff is absent: with ``restartPolicy: OnFailure`` restarting is what the template asked for.)
CANNOT_START = frozenset({
    "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable",
    "CreateContainerConfigError", "CreateContainerError", "RunContainerError", "PreCreateHookError",
    "PostStartHookError",
})
#: How many log lines the status message quotes, and how long each may be.
LOG_LINES = 20
_LINE_CHARS = 300


@dataclasses.dataclass(frozen=True)
class JobOutcome:
    """How a job's pod is doing. ``reason`` is Kubernetes' word (``Completed``, ``Error``, ``OOMKilled``,
    ``ErrImageNeverPull``, ``Deleted``), ``detail`` its message."""

    state: JobState
    pod: str
    exit_code: int | None = None
    reason: str = ""
    detail: str = ""
    container: str | None = None
    #: Failed before any container ran: there is no log to quote.
    never_started: bool = False

    @property
    def finished(self) -> bool:
        return self.state in ("Succeeded", "Failed")


def build_job_pod(request: ClusterRequest, namespace: str, owner: Mapping[str, Any]) -> Manifest:
    """The job pod ``NAME-job``: the template with ``DASK_SCHEDULER_ADDRESS`` in every container, the
    labels of the cluster's other pods (component ``job``), owned by the request, ``restartPolicy`` as the
    template says (else Never: a job runs once)."""
    template = request.job_template
    if template is None:
        raise ValueError(f"the request {request.name} has no {KEY_JOB_TEMPLATE}")
    spec = copy.deepcopy(template.spec)
    spec.setdefault("restartPolicy", "Never")
    # As for the scheduler and workers: no API token unless the template asks (and the policy allows it).
    spec.setdefault("automountServiceAccountToken", False)
    address = scheduler_address(request, namespace)
    for group in ("initContainers", "containers"):
        for container in spec.get(group) or []:
            env = [e for e in container.get("env") or []
                   if not (isinstance(e, dict) and e.get("name") == "DASK_SCHEDULER_ADDRESS")]
            container["env"] = [*env, {"name": "DASK_SCHEDULER_ADDRESS", "value": address}]
            # As for the scheduler and workers: a ':latest' image would otherwise be pulled Always, which
            # fails where images are pre-loaded. A template that says otherwise wins.
            container.setdefault("imagePullPolicy", "IfNotPresent")
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": job_name(request.name),
            "namespace": namespace,
            "labels": {**template.labels, **request_labels(request), **labels(request.name, JOB_COMPONENT)},
            "annotations": dict(template.annotations),
            "ownerReferences": [dict(owner)],
        },
        "spec": spec,
    }


def outcome(pod: Body) -> JobOutcome:
    """How the job is doing, by its pod."""
    name = str((pod.get("metadata") or {}).get("name") or "")
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    containers = list(status.get("containerStatuses") or [])
    every = list(status.get("initContainerStatuses") or []) + containers
    if phase == "Succeeded":
        ended = _terminated(containers)
        return JobOutcome("Succeeded", name, 0, str((ended[0][1] if ended else {}).get("reason") or "Completed"))
    if phase == "Failed":
        ended = _terminated(every)
        failed = next(((c, t) for c, t in ended if t.get("exitCode") != 0), ended[0] if ended else None)
        if failed is None:  # the kubelet failed the pod itself: evicted, deadline exceeded, node lost
            return JobOutcome("Failed", name, None, str(status.get("reason") or "Failed"),
                              str(status.get("message") or ""), never_started=not ended)
        container, terminated = failed
        return JobOutcome("Failed", name, terminated.get("exitCode"), str(terminated.get("reason") or "Error"),
                          str(terminated.get("message") or "").strip(), str(container.get("name") or ""))
    for container in every:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in CANNOT_START:
            return JobOutcome("Failed", name, None, str(waiting["reason"]), str(waiting.get("message") or ""),
                              str(container.get("name") or ""), never_started=True)
    return JobOutcome("Running" if phase == "Running" else "Pending", name)


def _terminated(statuses: list[Any]) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    found = []
    for container in statuses:
        state = container.get("state") or {}
        terminated = state.get("terminated") or (container.get("lastState") or {}).get("terminated")
        if terminated:
            found.append((container, terminated))
    return found


def gone(pod: str) -> JobOutcome:
    """The job's pod went away before it ended (deleted by someone, or evicted and removed)."""
    return JobOutcome("Failed", pod, None, "Deleted", f"the job pod {pod} was deleted before it ended",
                      never_started=True)


def job_status(result: JobOutcome) -> JobStatus:
    return JobStatus(pod=result.pod, state=result.state, exit_code=result.exit_code, reason=result.reason)


def log_tail(text: str | None, lines: int = LOG_LINES) -> str:
    """The last ``lines`` lines of a log, each cut to a readable length (a status is not a log store)."""
    if not text:
        return ""
    kept = text.rstrip().splitlines()[-lines:]
    return "\n".join(line if len(line) <= _LINE_CHARS else line[:_LINE_CHARS] + "..." for line in kept)


def message(result: JobOutcome, tail: str = "", log_problem: str | None = None) -> str:
    """The status message of a finished job: what happened, in words, then the last lines of its log."""
    where = f" (container {result.container})" if result.container else ""
    if result.state == "Succeeded":
        text = f"the job {result.pod} succeeded (exit code 0); its Dask cluster was removed"
    elif result.reason == "Deleted":
        text = f"the job failed: {result.detail}; its Dask cluster was removed"
    elif result.never_started:
        detail = f": {result.detail}" if result.detail else ""
        text = (f"the job failed: its pod {result.pod} cannot start{where}: {result.reason}{detail}. Fix "
                f"{KEY_JOB_TEMPLATE} and create the request again; its Dask cluster was removed")
    else:
        code = f"exit code {result.exit_code}" if result.exit_code is not None else "no exit code"
        detail = f": {result.detail}" if result.detail else ""
        text = f"the job {result.pod} failed with {code}{where}, reason {result.reason}{detail}; " \
               "its Dask cluster was removed"
    if log_problem:
        text += f". Its log could not be read: {log_problem}"
    elif tail:
        text += f". Last lines of its log:\n{tail}"
    return text


def final_status(request: ClusterRequest, result: JobOutcome, text: str) -> ClusterStatus:
    """Phase Succeeded or Failed, kept on the request once its cluster is gone."""
    succeeded = result.state == "Succeeded"
    return ClusterStatus(
        phase="Succeeded" if succeeded else "Failed", message=text, observed_spec=request.fingerprint,
        conditions=[Condition(type="RequestValid", status="True", reason="Valid"),
                    Condition(type="JobSucceeded", status="True" if succeeded else "False",
                              reason=result.reason or result.state, message=text.split("\n", 1)[0])],
        job=job_status(result),
    )


def with_job(status: ClusterStatus, result: JobOutcome | None, request: ClusterRequest) -> ClusterStatus:
    """A running cluster's status with its job's state (Pending until the job pod exists)."""
    if request.job_template is None:
        return status
    shown = result or JobOutcome("Pending", job_name(request.name))
    return status.model_copy(update={"job": job_status(shown)})


def recorded(status: ClusterStatus | None) -> ClusterStatus | None:
    """The final status a request already carries (a job that ended under an earlier controller process),
    or None: a finished job is never run again."""
    if status is None or status.job is None or not status.job.finished or status.phase not in ("Succeeded", "Failed"):
        return None
    return status


def started(status: ClusterStatus | None) -> bool:
    """Whether the status on the request says the job pod was created (so a missing pod went away)."""
    return status is not None and status.job is not None and status.job.state != "Pending"


def teardown(seen: Observation) -> reconcile.Plan:
    """The job ended: delete the scheduler pod, its Service and PDB and the workers (each only the object
    observed, by uid); the job pod stays, so its log stays readable."""
    observed = seen.observed
    actions: list[reconcile.Action] = []
    pods = [observed.scheduler] if observed.scheduler is not None else []
    for pod in [*pods, *observed.workers]:
        if not pod.deleting:
            actions.append(reconcile.DeletePod(pod.name, reconcile.DeleteCause.JOB_ENDED, "the job ended", pod.uid))
    if seen.service is not None:
        actions.append(reconcile.DeleteService((seen.service.get("metadata") or {}).get("uid")))
    if seen.pdb is not None:
        actions.append(reconcile.DeletePdb((seen.pdb.get("metadata") or {}).get("uid")))
    return reconcile.Plan(tuple(actions), desired_workers=0)

# mypy: disallow-untyped-calls=False
# (the kubernetes config loaders have no type hints; calling them is the point here.)
"""Batch jobs: a pod that runs against a Dask cluster made for it; the cluster goes when the job ends.

:func:`run_job` writes a request with a ``job-template`` and waits for the job's end, so a script, a CI
step or a CronJob needs no Python process beside the cluster. The controller starts the job pod once the
scheduler is ready (``DASK_SCHEDULER_ADDRESS`` is set in it, so ``distributed.Client()`` connects), removes
the scheduler and workers when the job ends, and keeps the request with phase ``Succeeded`` or ``Failed``
(and the job pod, so its log stays readable) until ``job_ttl`` seconds later or until it is deleted.

Example:
    >>> from kubedask import run_job, make_pod_spec
    >>> job = {"containers": [{"name": "job", "image": "ghcr.io/dask/dask:latest",
    ...                        "args": ["python", "-c", "from distributed import Client; print(Client())"]}]}
    >>> result = run_job(job, make_pod_spec(image="ghcr.io/dask/dask:latest"), n_workers=2)  # doctest: +SKIP
    >>> result.phase, result.exit_code  # doctest: +SKIP
    ('Succeeded', 0)
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from . import config as kconfig
from . import spec
from .auth import ClusterAuth
from .errors import ControllerNotRespondingError, KubeClusterError, RequestRejectedError
from .kube import Api, KubeApi, Manifest
from .naming import render_name
from .request_io import POLL_MAX, POLL_START, RequestIO
from .templates import PodTemplate, load_pod_template, template_from_config

logger = logging.getLogger(__name__)


class JobTimeoutError(KubeClusterError, TimeoutError):
    """The job did not end within ``timeout`` seconds; it keeps running (delete its request to stop it)."""


@dataclass(frozen=True)
class JobResult:
    """How a job ended: ``phase`` ``Succeeded`` or ``Failed``, the exit code and Kubernetes' reason
    (``Completed``, ``Error``, ``OOMKilled``, ``ErrImagePull``...), the controller's message, and the job's
    log (None if it could not be read)."""

    name: str
    namespace: str
    phase: str
    exit_code: int | None
    reason: str
    message: str
    log: str | None

    @property
    def succeeded(self) -> bool:
        return self.phase == "Succeeded"


@dataclass
class JobWait:
    """Polls a job request's status until the job has ended; raises instead of waiting forever."""

    api: Api
    name: str
    controller_timeout: float
    timeout: float | None  # None: as long as the job runs
    log: Callable[[str], Any]

    @property
    def where(self) -> str:
        return f"{self.api.namespace}/{self.name}"

    async def until_done(self) -> spec.ClusterStatus:
        # The event loop's clock: the one asyncio.sleep follows, and the one a test can make fake.
        loop = asyncio.get_running_loop()
        started = loop.time()
        interval, last = POLL_START, ""
        while True:
            request = await self.api.read_configmap(self.name)
            if request is None:
                raise KubeClusterError(f"the request {self.where} was deleted before its job ended")
            status = spec.parse_status((request.get("metadata") or {}).get("annotations"))
            waited = loop.time() - started
            if status is None:
                if waited > self.controller_timeout:
                    raise ControllerNotRespondingError(
                        f"No kubedask controller acted on job {self.where} within {self.controller_timeout:g}s "
                        f"(kubernetes.controller-timeout). Is the controller installed and watching namespace "
                        f"{self.api.namespace!r}? See: kubectl -n {self.api.namespace} describe configmap {self.name}")
            else:
                report = _report(status)
                if report != last:
                    self.log(f"Job {self.name}: {report}")
                    last = report
                if status.job is not None and status.job.finished and status.phase in ("Succeeded", "Failed"):
                    return status
                if status.phase == "Failed":
                    valid = status.condition("RequestValid")
                    if valid is not None and valid.status == "False":
                        raise RequestRejectedError(f"The controller rejected job {self.where}: {status.message}")
                    raise KubeClusterError(f"Job {self.where} cannot run: {status.message}")
            if self.timeout is not None and waited > self.timeout:
                raise JobTimeoutError(
                    f"the job {self.where} did not end within {self.timeout:g}s; it keeps running. Follow it with "
                    f"`kubectl dask logs {self.name} --job -n {self.api.namespace}`, stop it with "
                    f"`kubectl delete configmap {self.name} -n {self.api.namespace}`")
            await asyncio.sleep(interval)
            interval = min(interval * 2, POLL_MAX)


def _report(status: spec.ClusterStatus) -> str:
    job = f"job {status.job.state}" if status.job is not None else "job not started"
    first_line = status.message.split("\n", 1)[0]
    return f"{status.phase} ({job}): {first_line}"


def job_manifest(name: str, namespace: str, job: dict[str, Any], worker: dict[str, Any], *, n_workers: int,
                 scheduler: dict[str, Any] | None = None, job_ttl: float | None = None,
                 idle_timeout: float | None = None) -> Manifest:
    """The request ConfigMap of a job (a dict), validated by the shared schema. No client heartbeat: a batch
    job outlives the process that submitted it."""
    data = spec.build_request_data(worker_template=worker, workers=n_workers, scheduler_template=scheduler,
                                   job_template=job, job_ttl=job_ttl, idle_timeout=idle_timeout)
    return spec.build_request_configmap(name, namespace, data)


async def run_job_async(
    job_template: PodTemplate, worker_template: PodTemplate | None = None, *, n_workers: int = 1,
    name: str | None = None, namespace: str | None = None, auth: ClusterAuth | list[ClusterAuth] | None = None,
    timeout: float | None = None, job_ttl: float | None = None, scheduler_pod_template: PodTemplate | None = None,
    controller_timeout: float | None = None, log: Callable[[str], Any] | None = None, quiet: bool = False,
) -> JobResult:
    """:func:`run_job` for code already in an event loop (``await run_job_async(...)``)."""
    job = load_pod_template(job_template)
    if job is None:
        raise ValueError("run_job needs a job template: a pod spec, a dict or a YAML path whose container runs "
                         "the job (it finds its scheduler in $DASK_SCHEDULER_ADDRESS)")
    worker = template_from_config(worker_template, "worker")
    if worker is None:
        raise ValueError("run_job needs a worker template (make_pod_spec(...), a dict or a YAML path) or "
                         "kubernetes.worker-template / kubernetes.worker-template-path")
    scheduler = template_from_config(scheduler_pod_template, "scheduler")
    name = render_name(name if name is not None else (kconfig.get("worker-name") or kconfig.get("name")))
    say = log or (logger.info if quiet else _stderr)
    loaded = await asyncio.to_thread(ClusterAuth.load_first, auth)
    namespace = kconfig.get("namespace", namespace) or loaded.namespace or "default"
    api: Api = KubeApi(loaded.configuration, namespace)
    try:
        manifest = job_manifest(name, namespace, job, worker, n_workers=n_workers, scheduler=scheduler,
                                job_ttl=job_ttl)
        await RequestIO(api, name).create(manifest)
        say(f"Submitted job {namespace}/{name} ({n_workers} workers)")
        status = await JobWait(api, name, float(kconfig.get("controller-timeout", controller_timeout)), timeout,
                               say).until_done()
        return await result_of(api, name, status)
    finally:
        api.close()


async def result_of(api: Api, name: str, status: spec.ClusterStatus) -> JobResult:
    """The result of a finished job, with its pod's log."""
    assert status.job is not None
    text: str | None
    try:
        text = await api.pod_log(status.job.pod)
    except ApiException as e:
        logger.warning("Cannot read the log of job pod %s: %s", status.job.pod, e.reason)
        text = None
    return JobResult(name=name, namespace=api.namespace, phase=status.phase, exit_code=status.job.exit_code,
                     reason=status.job.reason, message=status.message, log=text)


def run_job(
    job_template: PodTemplate, worker_template: PodTemplate | None = None, *, n_workers: int = 1,
    name: str | None = None, namespace: str | None = None, auth: ClusterAuth | list[ClusterAuth] | None = None,
    timeout: float | None = None, job_ttl: float | None = None, scheduler_pod_template: PodTemplate | None = None,
    controller_timeout: float | None = None, log: Callable[[str], Any] | None = None, quiet: bool = False,
) -> JobResult:
    """Run a batch job on a Dask cluster made for it, wait for its end, and return how it went.

    Parameters:
        job_template: the job's pod (a ``V1Pod``, a dict, a YAML path; a Pod manifest or a bare spec). Its
            containers get ``DASK_SCHEDULER_ADDRESS``, so ``distributed.Client()`` connects to the cluster.
            ``restartPolicy`` defaults to ``Never`` (run once); ``OnFailure`` retries it.
        worker_template: the worker pod, as for :class:`~kubedask.KubeCluster` (default from the
            ``kubernetes.worker-template`` config).
        n_workers: workers of the job's cluster.
        name, namespace, auth: as for KubeCluster (default name ``kubernetes.name``).
        timeout: seconds to wait for the job's end (None: as long as it runs); then
            :class:`JobTimeoutError`, and the job keeps running.
        job_ttl: seconds after the end at which the controller deletes the request (and the job pod);
            default: kept until deleted (``kubectl delete configmap NAME``).
        scheduler_pod_template: the scheduler pod (default: derived from the worker template).
        controller_timeout: seconds for a controller to act on the request (``kubernetes.controller-timeout``).
        log, quiet: where progress lines go (default: stderr; with ``quiet``, the ``kubedask.jobs`` logger).

    Returns:
        :class:`JobResult`: ``phase`` (``Succeeded`` / ``Failed``), ``exit_code``, ``reason``, ``message``
        and the job's ``log``. A job that fails is a result, not an exception; a request the controller
        refuses raises :class:`~kubedask.RequestRejectedError`.

    Example:
        >>> result = run_job("job.yml", "worker-spec.yml", n_workers=2, job_ttl=3600)  # doctest: +SKIP
        >>> print(result.log)  # doctest: +SKIP
    """
    return asyncio.run(run_job_async(
        job_template, worker_template, n_workers=n_workers, name=name, namespace=namespace, auth=auth,
        timeout=timeout, job_ttl=job_ttl, scheduler_pod_template=scheduler_pod_template,
        controller_timeout=controller_timeout, log=log, quiet=quiet))


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)

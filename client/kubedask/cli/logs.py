"""``kubectl dask logs NAME [--scheduler | --worker POD | --job] [--tail N]``: one pod's log.

The scheduler's log is the default. ``--worker`` takes a worker pod's full name or its suffix (the part
after ``NAME-worker-``). ``--job`` is a batch job's log (a request with ``job-template``, see docs/jobs.md):
:func:`job_pod` finds the job's pod, which the controller keeps after the job ended.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import spec
from ..kube import Manifest
from ..logs import selector
from .context import CliError, Context

#: The request key of a batch job and the component label of its pod (from the shared schema).
KEY_JOB_TEMPLATE = spec.KEY_JOB_TEMPLATE
JOB_COMPONENT = spec.JOB_COMPONENT


@dataclass(frozen=True)
class Target:
    """Which log: ``scheduler`` (default), ``worker`` (with ``pod``) or ``job``."""

    kind: str = "scheduler"
    pod: str | None = None


async def job_pod(ctx: Context, name: str, request: Manifest) -> str:
    """The name of the pod that runs the cluster's batch job.

    Raises:
        CliError: the request has no job, or its job has no pod (yet).
    """
    if KEY_JOB_TEMPLATE not in (request.get("data") or {}):
        raise CliError(f"the cluster {ctx.namespace}/{name} has no job: its request has no {KEY_JOB_TEMPLATE} key; "
                       f"use --scheduler or --worker POD")
    async with ctx.calling(f"list pods in namespace {ctx.namespace!r}"):
        pods = await ctx.api().list_pods(selector(name, JOB_COMPONENT))
    if not pods:
        raise CliError(f"the job of {ctx.namespace}/{name} has no pod (yet); "
                       f"`kubectl dask describe {name}` shows its state")
    return str(pods[-1]["metadata"]["name"])


async def worker_pod(ctx: Context, name: str, wanted: str) -> str:
    async with ctx.calling(f"list pods in namespace {ctx.namespace!r}"):
        pods = await ctx.api().list_pods(selector(name, "worker"))
    names = sorted(str(p["metadata"]["name"]) for p in pods)
    for candidate in (wanted, spec.worker_name(name, wanted)):
        if candidate in names:
            return candidate
    listed = ", ".join(names) if names else "none"
    raise CliError(f"the cluster {ctx.namespace}/{name} has no worker pod {wanted!r}; its workers: {listed}")


async def pod_of(ctx: Context, name: str, target: Target, request: Manifest) -> str:
    if target.kind == "job":
        return await job_pod(ctx, name, request)
    if target.kind == "worker":
        assert target.pod is not None
        return await worker_pod(ctx, name, target.pod)
    if ((request.get("data") or {}).get(spec.KEY_DEPLOY_MODE) or "remote") == "local":
        raise CliError(f"the scheduler of {ctx.namespace}/{name} runs in its client's process (deploy-mode local), "
                       f"not in a pod; its log is in that process (cluster.get_logs())")
    return spec.scheduler_name(name)


async def run(ctx: Context, name: str, target: Target, tail: int | None = None) -> None:
    request = await ctx.request(name)
    pod = await pod_of(ctx, name, target, request)
    api = ctx.api()
    async with ctx.calling(f"read the log of pod {pod!r} in namespace {ctx.namespace!r}"):
        if await api.read_pod(pod) is None and target.kind == "scheduler":
            raise CliError(f"the scheduler pod {ctx.namespace}/{pod} does not exist (yet); "
                           f"`kubectl dask describe {name}` shows why")
        text = await api.pod_log(pod, tail_lines=tail)
    if not text:
        print(f"(the log of pod {pod} is empty: its container may not have started yet)", file=ctx.err)
        return
    ctx.out.write(text if text.endswith("\n") else text + "\n")

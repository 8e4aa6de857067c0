"""``kubectl dask describe NAME``: everything ``get`` shows, plus the conditions, the pods and the request's
recent Events, laid out like ``kubectl describe``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from .. import spec
from ..kube import Manifest
from ..logs import selector
from .context import Context
from .output import paint, table
from .view import NONE, ClusterView, age_of

RECENT_EVENTS = 10


def pod_state(pod: Manifest) -> str:
    """What kubectl's STATUS column says: a waiting or terminated reason beats the bare phase."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        for key in ("waiting", "terminated"):
            reason = (state.get(key) or {}).get("reason")
            if reason:
                return str(reason)
    return str(status.get("phase") or "Unknown")


def pod_row(pod: Manifest, now: dt.datetime | None = None) -> list[str]:
    metadata, status = pod.get("metadata") or {}, pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    total = len(containers) or len((pod.get("spec") or {}).get("containers") or [])
    ready = sum(1 for c in containers if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in containers)
    return [
        str(metadata.get("name", "")),
        str((metadata.get("labels") or {}).get(spec.COMPONENT_LABEL, NONE)),
        pod_state(pod),
        f"{ready}/{total}",
        str(restarts),
        str((pod.get("spec") or {}).get("nodeName") or NONE),
        age_of(metadata.get("creationTimestamp"), now),
    ]


def event_time(event: Manifest) -> str:
    return str(event.get("lastTimestamp") or event.get("eventTime")
               or (event.get("metadata") or {}).get("creationTimestamp") or "")


def event_row(event: Manifest, now: dt.datetime | None = None) -> list[str]:
    source = event.get("source") or {}
    count = int(event.get("count") or 1)
    age = age_of(event_time(event), now)
    return [
        str(event.get("type") or "Normal"),
        str(event.get("reason") or ""),
        f"{age} (x{count})" if count > 1 else age,
        str(source.get("component") or event.get("reportingComponent") or ""),
        " ".join(str(event.get("message") or "").split()),
    ]


def render(view: ClusterView, pods: list[Manifest], events: list[Manifest], colour: bool = False,
           now: dt.datetime | None = None) -> str:
    status = view.status
    counts = status.workers if status else None
    workers = (f"{counts.ready} ready / {counts.requested} requested ({counts.created} created, "
               f"{counts.running} running)") if counts else f"{view.data.get(spec.KEY_WORKERS, '0')} requested"
    fields: list[tuple[str, Any]] = [
        ("Name", view.name), ("Namespace", view.namespace),
        ("Created", f"{view.created or NONE} ({age_of(view.created, now)} ago)" if view.created else NONE),
        ("Phase", paint(view.phase, view.phase, colour)), ("Message", view.message), ("Workers", workers),
        ("Adapt", view.adapt), ("Deploy mode", view.deploy_mode),
        ("Idle timeout", view.data.get(spec.KEY_IDLE_TIMEOUT) or NONE),
        ("Scheduler", view.address("scheduler")), ("Dashboard", view.address("dashboard")),
        ("External", view.address("external")), ("Updated", (status.updated_at if status else None) or NONE),
    ]
    width = max(len(label) for label, _ in fields) + 2
    lines = [f"{label + ':':<{width}}{value}" for label, value in fields]
    conditions = status.conditions if status else []
    lines.append("Conditions:")
    if conditions:
        rows = [[c.type, c.status, c.reason or NONE, age_of(c.last_transition_time, now), " ".join(c.message.split())]
                for c in conditions]
        lines.append(table(["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"], rows, indent="  "))
    else:
        lines.append(f"  {NONE}")
    lines.append("Pods:")
    if pods:
        rows = [pod_row(p, now) for p in sorted(pods, key=lambda p: (p.get("metadata") or {}).get("name", ""))]
        lines.append(table(["NAME", "COMPONENT", "STATUS", "READY", "RESTARTS", "NODE", "AGE"], rows, indent="  "))
    else:
        lines.append(f"  {NONE}")
    lines.append("Events:")
    recent = sorted(events, key=event_time)[-RECENT_EVENTS:]
    if recent:
        lines.append(table(["TYPE", "REASON", "AGE", "FROM", "MESSAGE"], [event_row(e, now) for e in recent],
                           indent="  "))
    else:
        lines.append(f"  {NONE}")
    return "\n".join(lines)


async def run(ctx: Context, name: str) -> None:
    view = ClusterView.of(await ctx.request(name))
    api = ctx.api()
    async with ctx.calling(f"list pods in namespace {ctx.namespace!r}"):
        pods = await api.list_pods(selector(name, None))
    async with ctx.calling(f"list events in namespace {ctx.namespace!r}"):
        events = await api.events_for("ConfigMap", name)
    ctx.print(render(view, pods, events, colour=ctx.colour))

"""Thin Kopf wiring: settings, startup/cleanup, and watch events forwarded to the request loops.

Every kind the controller owns (pods, Services, PodDisruptionBudgets) is watched, label-selected on the
server like the requests, so one deleted by hand is recreated within seconds rather than at the resync.
Pods, thousands of events where the other kinds have a few, by a watch of the controller's own
(:mod:`pod_watch`); the rest by Kopf.

Only ``on.event`` handlers are used: they store nothing in the watched objects (no diff base, no
progress annotations), so the controller's writes are exactly the ones its request drivers make
(``driver.py``, through ``executor.py`` and ``reporter.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import kopf
from kubedask.spec import MANAGED_BY_LABEL, MANAGED_BY_VALUE, REQUEST_LABEL, REQUEST_SELECTOR

from . import metrics
from .controller import Controller
from .fence import send_guard
from .kube import Kube
from .leader import LeaderElector
from .options import Options
from .pod_watch import PodWatch
from .policy import load_policy
from .settings import Settings

logger = logging.getLogger(__name__)

OWNED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"
#: (apiVersion, plural) of what the controller creates for a request and Kopf watches (pods: pod_watch.py).
OWNED_KINDS = (("v1", "services"), ("policy/v1", "poddisruptionbudgets"))


class NoDiffBase(kopf.DiffBaseStorage):
    """Kopf builds every event's "essence" (a deep copy of the body, and one more when it strips its own
    progress from it) to diff it with the last handled one, for create/update handlers. The controller has
    on.event handlers only and never asks for a diff, so nothing is built or stored: at 1,000 pods
    starting that was a third of the controller's CPU."""

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass


def configure(settings: kopf.OperatorSettings) -> None:
    # Server-side filtering: unrelated ConfigMaps and pods are never listed or watched.
    settings.watching.label_selectors["v1", "configmaps"] = REQUEST_SELECTOR
    # Every kind the controller owns is watched (a deleted Service or PDB is repaired within seconds).
    for group_version, plural in OWNED_KINDS:
        settings.watching.label_selectors[group_version, plural] = OWNED_SELECTOR
    # Long server-side watches with a client-side guard, so a silently dead connection is noticed.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    # Kopf runs a task per object that holds the object's last event body until none came for this long
    # (5 s by default): while 10,000 pods start, nearly every one of them has its body held at once. The
    # handlers only forward events, so a worker has nothing to wait for: 20 clusters x 100 workers peaked
    # at 150-162 MiB RSS with 5 s and 132-136 MiB with 0.5 s, same CPU.
    settings.queueing.idle_timeout = 0.5
    # Kopf would turn per-object log lines into Events (writes); the controller posts its own Events.
    settings.posting.enabled = False
    settings.persistence.diffbase_storage = NoDiffBase()
    # Several replicas are coordinated by a Lease (leader.py), not by Kopf's peering CRDs.
    settings.peering.standalone = True
    settings.networking.request_timeout = 60
    # Only built-in resources in namespaces named exactly (or all): Kopf needs no cluster-wide namespace
    # and CRD listing for dynamic discovery, which the namespaced RBAC forbids (it would retry for a
    # minute before serving).
    settings.scanning.disabled = True


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure(settings)
    options: Options = memo.get("options") or Options.from_env()
    started: list[LeaderElector] = []  # the elector, once everything is constructed

    def is_ready() -> bool:
        # Ready once this replica knows whether it leads: a standby is ready too (it takes over at once).
        return bool(started) and started[0].settled

    try:
        policy = load_policy(options.policy_file)
        # Bound first: a taken port must stop the controller, not leave it half-started.
        memo["runners"] = await metrics.serve(options.bind_host, options.metrics_port, options.health_port,
                                              is_ready=is_ready)
    except (OSError, ValueError) as exc:
        raise kopf.PermanentError(f"cannot start: {exc}") from exc
    kube = Kube()
    controller_ref: list[Controller] = []
    elector = LeaderElector(
        kube, options.lease_namespace, options.lease_name, enabled=options.leader_election, **options.lease_timing,
        on_started_leading=lambda: controller_ref[0].wake_all() if controller_ref else None)
    controller = Controller(kube, Settings(policy=policy, resync_interval=options.resync_interval, watched_views=True),
                            is_leader=lambda: elector.is_leader, own_namespace=options.own_namespace)
    controller_ref.append(controller)
    # Checked again in the sending thread, just before a write's bytes go out (fence.send_guard).
    kube.write_guard = send_guard(elector.leads_at, asyncio.get_running_loop().time)
    started.append(elector)
    memo["controller"] = controller
    memo["elector"] = elector
    memo["kube"] = kube
    pods = PodWatch(kube.reads, memo.get("namespaces"), OWNED_SELECTOR, controller.on_pod_event,
                    controller.pods_relisted)
    controller.pod_version = pods.seen_version
    memo["tasks"] = [asyncio.create_task(elector.run(), name="kubedask:leader"),
                     asyncio.create_task(pods.run(), name="kubedask:pod-watch")]
    logger.info("kubedask controller started (leader election %s; own namespace %s, never served)",
                "on" if options.leader_election else "off", options.own_namespace or "unknown")


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    for task in memo.get("tasks", []):
        task.cancel()
    controller: Controller | None = memo.get("controller")
    if controller:
        await controller.stop()
    elector: LeaderElector | None = memo.get("elector")
    if elector:
        await elector.release()
    for runner in memo.get("runners", []):
        await runner.cleanup()
    kube: Kube | None = memo.get("kube")
    if kube:
        await kube.aclose()


@kopf.on.event("v1", "configmaps", labels={REQUEST_LABEL: kopf.PRESENT})
async def request_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    controller: Controller | None = memo.get("controller")
    if controller is not None:
        controller.on_request_event(event.get("type"), dict(event["object"]))


@kopf.on.event("v1", "services", labels={MANAGED_BY_LABEL: MANAGED_BY_VALUE})
@kopf.on.event("policy/v1", "poddisruptionbudgets", labels={MANAGED_BY_LABEL: MANAGED_BY_VALUE})
async def owned_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    controller: Controller | None = memo.get("controller")
    if controller is not None:
        controller.on_owned_event(event.get("type"), dict(event["object"]))

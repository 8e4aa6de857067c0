"""Prometheus metrics and the health/readiness endpoints.

Metrics live in their own registry so tests (and several controllers in one test process) don't clash
with prometheus_client's global default registry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REGISTRY = CollectorRegistry()

RECONCILES = Counter("kubedask_reconciles_total", "Reconcile passes, by result", ["result"],
                     registry=REGISTRY)
ERRORS = Counter("kubedask_reconcile_errors_total", "Reconcile passes that raised", registry=REGISTRY)
PODS_CREATED = Counter("kubedask_pods_created_total", "Pods created by the controller", registry=REGISTRY)
PODS_DELETED = Counter("kubedask_pods_deleted_total", "Pods deleted by the controller", registry=REGISTRY)
INVALID_REQUESTS = Counter("kubedask_invalid_requests_total", "Reconciles of invalid requests",
                           registry=REGISTRY)
LATENCY = Histogram("kubedask_reconcile_duration_seconds", "Duration of one reconcile pass",
                    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120), registry=REGISTRY)
CLUSTERS = Gauge("kubedask_clusters", "Requests known to this controller", registry=REGISTRY)
LEADER = Gauge("kubedask_leader", "1 while this replica holds the leader lease", registry=REGISTRY)
EVENTS_DROPPED = Counter("kubedask_events_dropped_total", "Events never posted: the oldest of a request's "
                         "backlog while the Event API was slow, or left when its driver closed", registry=REGISTRY)


async def serve(host: str, metrics_port: int | None, health_port: int | None,
                is_ready: Callable[[], bool]) -> list[web.AppRunner]:
    """Start the HTTP endpoints: ``/metrics`` on the metrics port, ``/healthz`` and ``/readyz`` on the
    health port (they may be the same port). Returns the runners so the caller can clean them up."""

    async def metrics_view(_: web.Request) -> web.Response:
        body = await asyncio.to_thread(generate_latest, REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        # Alive as long as the event loop answers; a wedged loop fails the probe.
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        return web.Response(text="ready") if is_ready() else web.Response(status=503, text="not ready")

    apps: dict[int, web.Application] = {}
    if metrics_port is not None:
        apps.setdefault(metrics_port, web.Application()).router.add_get("/metrics", metrics_view)
    if health_port is not None:
        app = apps.setdefault(health_port, web.Application())
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz)
    runners = []
    for port, app in apps.items():
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        runners.append(runner)
    return runners

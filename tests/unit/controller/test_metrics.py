"""Health, readiness and Prometheus endpoints."""

from __future__ import annotations

import socket

import aiohttp
from kubedask_controller import metrics


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_endpoints_answer() -> None:
    health, prom = free_port(), free_port()
    ready = {"value": False}
    runners = await metrics.serve("127.0.0.1", prom, health, is_ready=lambda: ready["value"])
    try:
        metrics.RECONCILES.labels(result="ok").inc()
        metrics.LATENCY.observe(0.02)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{health}/healthz") as r:
                assert r.status == 200
            async with session.get(f"http://127.0.0.1:{health}/readyz") as r:
                assert r.status == 503
            ready["value"] = True
            async with session.get(f"http://127.0.0.1:{health}/readyz") as r:
                assert r.status == 200
            async with session.get(f"http://127.0.0.1:{prom}/metrics") as r:
                text = await r.text()
        for name in ("kubedask_reconciles_total", "kubedask_reconcile_errors_total",
                     "kubedask_pods_created_total", "kubedask_pods_deleted_total",
                     "kubedask_reconcile_duration_seconds_bucket"):
            assert name in text
    finally:
        for runner in runners:
            await runner.cleanup()

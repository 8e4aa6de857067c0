"""Talking to a real in-process Dask scheduler (distributed as pinned), over HTTP and RPC."""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator

import dask
import pytest
from distributed import Scheduler, Worker
from kubedask_controller.builders import SCHEDULER_HTTP_ROUTES
from kubedask_controller.scheduler import SchedulerClient, SchedulerUnavailable


@pytest.fixture
async def scheduler(request: pytest.FixtureRequest) -> AsyncIterator[Scheduler]:
    # Without the API routes the client must fall back to Dask's RPC.
    api = request.param == "api"
    routes = ast.literal_eval(SCHEDULER_HTTP_ROUTES) if api else ["distributed.http.health"]
    with dask.config.set({"distributed.scheduler.http.routes": routes}):
        async with Scheduler(host="127.0.0.1", port=0, dashboard_address="127.0.0.1:0") as s, \
                Worker(s.address, name="c-worker-aaaaa", nthreads=1), \
                Worker(s.address, name="c-worker-bbbbb", nthreads=1):
            yield s


def client_for(s: Scheduler) -> SchedulerClient:
    return SchedulerClient("127.0.0.1", http_port=s.http_server.port, comm_port=s.port)


@pytest.mark.parametrize("scheduler", ["api", "no-api"], indirect=True)
async def test_retire_returns_the_workers_the_scheduler_chose(scheduler: Scheduler) -> None:
    retired = await client_for(scheduler).retire_workers(1)
    assert len(retired) == 1 and retired[0].name in ("c-worker-aaaaa", "c-worker-bbbbb")
    assert len(scheduler.workers) == 1


@pytest.mark.parametrize("scheduler", ["api", "no-api"], indirect=True)
async def test_adaptive_target_and_idle_state(scheduler: Scheduler) -> None:
    client = client_for(scheduler)
    assert isinstance(await client.adaptive_target(), int)
    answered, _ = await client.idle_since()
    assert answered


async def test_unreachable_scheduler_fails_fast_and_clearly() -> None:
    client = SchedulerClient("127.0.0.1", http_port=1, comm_port=1)
    with pytest.raises(SchedulerUnavailable):
        await client.retire_workers(1)
    assert await client.adaptive_target() is None
    assert await client.idle_since() == (False, None)

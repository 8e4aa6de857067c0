"""Talking to a cluster's Dask scheduler: retire workers, adaptive target, idle time.

First the scheduler's HTTP API (enabled on scheduler pods by the builders), then Dask's RPC on the comm
port, then a logged "don't know" so the caller can fall back (e.g. delete pods without retiring). The
scheduler pod's IP is used rather than the Service DNS name, so this also works from a controller running
outside the cluster network's DNS (development), as long as pod IPs are routable.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubedask.spec import DASHBOARD_PORT, SCHEDULER_PORT

logger = logging.getLogger(__name__)

HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10, sock_connect=3)
#: Retiring moves data off the workers; give it time, but never wait forever.
RETIRE_TIMEOUT = 300.0


@dataclass(frozen=True)
class RetiredWorker:
    name: str
    host: str | None


class SchedulerUnavailable(Exception):
    """Neither the HTTP API nor the RPC answered."""


class SchedulerClient:
    def __init__(self, host: str, session: aiohttp.ClientSession | None = None,
                 http_port: int = DASHBOARD_PORT, comm_port: int = SCHEDULER_PORT) -> None:
        self.host = host
        self.http_base = f"http://{host}:{http_port}/api/v1"
        self.comm_address = f"tcp://{host}:{comm_port}"
        self._session = session

    async def _http(self, method: str, path: str, json_body: Any = None, timeout: float | None = None
                    ) -> Any:
        own = self._session is None
        session = self._session or aiohttp.ClientSession(timeout=HTTP_TIMEOUT)
        try:
            kwargs: dict[str, Any] = {}
            if timeout is not None:
                kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout, sock_connect=3)
            async with session.request(method, self.http_base + path, json=json_body, **kwargs) as resp:
                resp.raise_for_status()
                return await resp.json(content_type=None)
        finally:
            if own:
                await session.close()

    async def _rpc(self, method: str, timeout: float = 10, **kwargs: Any) -> Any:
        from distributed.core import rpc  # heavy import, only needed on the fallback path

        async with rpc(self.comm_address, timeout=5) as scheduler:  # type: ignore[no-untyped-call]
            return await asyncio.wait_for(getattr(scheduler, method)(**kwargs), timeout)

    async def retire_workers(self, n: int) -> list[RetiredWorker]:
        """Retire ``n`` workers chosen by the scheduler (``workers_to_close``); their data moves to the
        remaining workers. Returns the retired workers' names (= pod names) and hosts."""
        try:
            info = await self._http("POST", "/retire_workers", {"n": n}, timeout=RETIRE_TIMEOUT)
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            # Nothing listens there: the RPC port on the same host would not answer either.
            raise SchedulerUnavailable(f"scheduler {self.host} unreachable: {exc!r}") from exc
        except (aiohttp.ClientError, ValueError) as exc:
            logger.info("scheduler %s: HTTP retire_workers failed (%s); trying RPC", self.host, exc)
            try:
                info = await self._rpc("retire_workers", timeout=RETIRE_TIMEOUT, n=n)
            except (TimeoutError, OSError, Exception) as exc2:
                raise SchedulerUnavailable(f"retire_workers failed: {exc2}") from exc2
        return [RetiredWorker(name=str(w.get("name")), host=w.get("host"))
                for w in (info or {}).values() if isinstance(w, dict)]

    async def _ask(self, path: str, field: str, rpc_method: str) -> tuple[bool, Any]:
        """``(answered, value)`` from the HTTP API, else the RPC (unless the host is unreachable)."""
        try:
            return True, (await self._http("GET", path))[field]
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            logger.info("scheduler %s unreachable for %s: %r", self.host, path, exc)
            return False, None
        except (aiohttp.ClientError, ValueError, KeyError, TypeError):
            pass  # e.g. 404: the HTTP API is not enabled on this scheduler
        try:
            return True, await self._rpc(rpc_method)
        except Exception as exc:
            logger.info("scheduler %s: %s unavailable (%r)", self.host, rpc_method, exc)
            return False, None

    async def adaptive_target(self) -> int | None:
        """How many workers the scheduler would like, or None if it cannot be asked."""
        answered, value = await self._ask("/adaptive_target", "workers", "adaptive_target")
        return int(value) if answered and value is not None else None

    async def idle_since(self) -> tuple[bool, float | None]:
        """``(answered, idle_since)``: the scheduler's idle-since time (epoch seconds), None if busy."""
        answered, value = await self._ask("/check_idle", "idle_since", "check_idle")
        return answered, float(value) if answered and value is not None else None

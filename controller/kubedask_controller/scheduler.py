"""Talking to a cluster's Dask scheduler over its HTTP API, trusting nothing it sends back.

The scheduler pod runs whatever the user's ``scheduler-template`` says, so every reply is hostile input.
Hence: the HTTP API only (Dask's RPC deserialises replies, pickle among its serialisers), no redirects
(a reply must not point the controller's requests elsewhere), no compression (a small reply must not
inflate), each body read in chunks up to a per-endpoint limit, one deadline per request that a slow drip
cannot extend, and the JSON checked field by field. Every failure is a ``SchedulerUnavailable`` whose
message says what went wrong; the caller falls back (adapt keeps its target, idle time unknown, pods
deleted without retiring).

The scheduler pod's IP is used rather than the Service DNS name, so this also works from a controller
running outside the cluster network's DNS (development), as long as pod IPs are routable.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
from kubedask.spec import DASHBOARD_PORT

API_PREFIX = "/api/v1"
KIB = 1024


@dataclass(frozen=True)
class Limits:
    """How long and how much the controller is willing to wait for and read from one scheduler."""

    connect: float = 3.0
    #: Total for one question (connect, headers and body): a slow drip cannot stretch it.
    answer: float = 10.0
    #: Retiring moves data off the workers; give it time, but never wait forever.
    retire: float = 300.0
    #: ``{"workers": 3}`` and ``{"idle_since": 1700000000.0}`` are a few dozen bytes.
    small_body: int = 4 * KIB
    #: A retired worker's entry (Dask's WorkerState.identity) is about 0.9 KiB; allow several times that.
    retire_body_base: int = 64 * KIB
    retire_body_per_worker: int = 8 * KIB
    #: ``/get_workers`` lists every worker's name and address (about 100 bytes each): room for thousands.
    workers_body: int = 1024 * KIB
    #: Header limits (aiohttp's defaults allow 128 headers of 8 KiB each).
    max_headers: int = 32
    max_header_size: int = 8 * KIB

    def retire_body(self, n: int) -> int:
        return self.retire_body_base + max(n, 0) * self.retire_body_per_worker


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class RetiredWorker:
    name: str
    host: str | None


@dataclass(frozen=True)
class SchedulerWorker:
    """A worker connected to the scheduler: its name (the pod name, for workers the controller made) and
    its address (``tcp://POD-IP:PORT``), which is what retiring chosen workers takes."""

    name: str
    address: str

    @property
    def host(self) -> str | None:
        """The address's host (the pod IP), without brackets; None when the address has no host:port form."""
        match = _ADDRESS_RE.match(self.address)
        return match.group("host").strip("[]") if match else None


#: A Dask comm address as the scheduler lists workers: ``tcp://10.1.2.3:40123``, ``tls://[fd00::5]:40123``.
_ADDRESS_RE = re.compile(r"^[a-z][a-z0-9+.-]*://(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s/:\[\]]+):\d{1,5}$")


class SchedulerUnavailable(Exception):
    """The scheduler could not be asked, or its answer was unusable; str() says why, for users."""


def new_session(limits: Limits = DEFAULT_LIMITS, max_connections: int = 100) -> aiohttp.ClientSession:
    """A session to share between ``SchedulerClient``s (must be created inside the running loop).

    Each cluster's loop asks its scheduler one question at a time, so memory is bounded by the number
    of clusters times the largest body limit; ``max_connections`` also caps open sockets. The per-request
    settings in ``SchedulerClient`` hold for any session, this one only supplies sane defaults.
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max_connections, limit_per_host=2),
        timeout=aiohttp.ClientTimeout(total=limits.retire, sock_connect=limits.connect),
        auto_decompress=False, trust_env=False, raise_for_status=False)


class SchedulerClient:
    """Ask one scheduler (``host`` is its pod IP) over the HTTP API on ``http_port``.

    >>> target = await SchedulerClient("10.1.2.3", session).adaptive_target()
    """

    def __init__(self, host: str, session: aiohttp.ClientSession | None = None, *,
                 http_port: int = DASHBOARD_PORT, limits: Limits = DEFAULT_LIMITS) -> None:
        self.host = host
        netloc = f"[{host}]:{http_port}" if ":" in host else f"{host}:{http_port}"  # IPv6 pod IPs
        self.base_url = f"http://{netloc}{API_PREFIX}"
        self.limits = limits
        self._session = session
        self._who = f"the scheduler at {netloc}"

    async def adaptive_target(self) -> int:
        """How many workers the scheduler would like (Dask's ``Scheduler.adaptive_target``)."""
        reply = await self._ask("GET", "/adaptive_target", None, self.limits.small_body, self.limits.answer)
        value = _field(reply, "workers", "/adaptive_target", self._who)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SchedulerUnavailable(f"{self._who} answered /adaptive_target with 'workers' = "
                                       f"{_show(value)}, expected a whole number of workers (0 or more)")
        return value

    async def idle_since(self) -> float | None:
        """Since when the scheduler has been idle (epoch seconds), or None if it is busy."""
        reply = await self._ask("GET", "/check_idle", None, self.limits.small_body, self.limits.answer)
        value = _field(reply, "idle_since", "/check_idle", self._who)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                or value < 0:
            raise SchedulerUnavailable(f"{self._who} answered /check_idle with 'idle_since' = {_show(value)}, "
                                       "expected seconds since the epoch or null")
        return float(value)

    async def workers(self) -> list[SchedulerWorker]:
        """The workers connected to the scheduler (``/get_workers``): names and addresses."""
        reply = await self._ask("GET", "/get_workers", None, self.limits.workers_body, self.limits.answer)
        listed = _field(reply, "workers", "/get_workers", self._who)
        where = f"{self._who} answered /get_workers"
        if not isinstance(listed, list):
            raise SchedulerUnavailable(f"{where} with 'workers' = a JSON {_kind(listed)}, expected an array")
        found = []
        for entry in listed:
            name, address = (entry.get("name"), entry.get("address")) if isinstance(entry, dict) else (None, None)
            if isinstance(name, bool) or not isinstance(name, str | int) or not isinstance(address, str) \
                    or not _ADDRESS_RE.match(address):
                raise SchedulerUnavailable(f"{where} with the worker {_show(entry)}, expected an object with a "
                                           "'name' and an 'address' such as 'tcp://10.1.2.3:40123'")
            found.append(SchedulerWorker(name=str(name), address=address))
        return found

    async def retire_workers(self, n: int) -> list[RetiredWorker]:
        """Retire ``n`` workers chosen by the scheduler (``workers_to_close``); their data moves to the
        remaining workers. Returns the retired workers' names (= pod names) and hosts."""
        reply = await self._ask("POST", "/retire_workers", {"n": n}, self.limits.retire_body(n),
                                self.limits.retire)
        return self._retired(reply, n, None)

    async def retire_addresses(self, addresses: Sequence[str]) -> list[RetiredWorker]:
        """Retire exactly the workers at ``addresses`` (from :meth:`workers`); their data moves to the other
        workers. Returns those it retired (it keeps a worker whose data could not move anywhere)."""
        asked = list(dict.fromkeys(addresses))
        reply = await self._ask("POST", "/retire_workers", {"workers": asked}, self.limits.retire_body(len(asked)),
                                self.limits.retire)
        return self._retired(reply, len(asked), set(asked))

    def _retired(self, reply: object, n: int, asked: set[str] | None) -> list[RetiredWorker]:
        """The retired workers in a ``/retire_workers`` reply (``asked``: the only addresses it may name)."""
        where = f"{self._who} answered /retire_workers"
        if not isinstance(reply, dict):
            raise SchedulerUnavailable(f"{where} with a JSON {_kind(reply)}, expected an object of workers")
        if len(reply) > n:
            raise SchedulerUnavailable(f"{where} with {len(reply)} workers although asked to retire {n}")
        retired = []
        for address, info in reply.items():
            if asked is not None and address not in asked:
                raise SchedulerUnavailable(f"{where} with worker {_show(address)}, which it was not asked to retire")
            if not isinstance(info, dict):
                raise SchedulerUnavailable(f"{where} with a JSON {_kind(info)} for worker {_show(address)}, "
                                           "expected an object")
            name, host = info.get("name"), info.get("host")
            if isinstance(name, bool) or not isinstance(name, str | int):
                raise SchedulerUnavailable(f"{where} with 'name' = {_show(name)} for worker {_show(address)}, "
                                           "expected a string")
            if host is not None and not isinstance(host, str):
                raise SchedulerUnavailable(f"{where} with 'host' = {_show(host)} for worker {_show(address)}, "
                                           "expected a string")
            retired.append(RetiredWorker(name=str(name), host=host))
        return retired

    async def _ask(self, method: str, path: str, payload: object, limit: int, deadline: float) -> object:
        """One request: the parsed JSON of a 200 reply, else ``SchedulerUnavailable``."""
        try:
            async with asyncio.timeout(deadline):
                if self._session is not None:
                    body = await self._fetch(self._session, method, path, payload, limit)
                else:
                    async with new_session(self.limits, max_connections=1) as session:
                        body = await self._fetch(session, method, path, payload, limit)
        except aiohttp.ConnectionTimeoutError as exc:
            raise SchedulerUnavailable(f"{self._who} did not accept a connection within "
                                       f"{self.limits.connect:g} s") from exc
        except TimeoutError as exc:  # the deadline, or aiohttp's own read timeout
            raise SchedulerUnavailable(f"{self._who} did not answer {path} within {deadline:g} s") from exc
        except aiohttp.ClientConnectorError as exc:
            error = exc.os_error
            reason = os.strerror(error.errno).lower() if error.errno else _clip(str(error) or type(error).__name__)
            raise SchedulerUnavailable(f"{self._who} cannot be reached ({reason})") from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise SchedulerUnavailable(f"{self._who} closed the connection without answering {path}") from exc
        except aiohttp.ClientResponseError as exc:  # unparsable status line or headers
            raise SchedulerUnavailable(f"{self._who} sent a malformed HTTP reply to {path} "
                                       f"({_clip(exc.message)})") from exc
        except aiohttp.ClientPayloadError as exc:
            raise SchedulerUnavailable(f"{self._who} sent a broken body for {path} ({_clip(str(exc))})") from exc
        except aiohttp.ClientError as exc:  # the rest of aiohttp's failures, e.g. a reset connection
            raise SchedulerUnavailable(f"{self._who} failed while answering {path} "
                                       f"({type(exc).__name__}: {_clip(str(exc))})") from exc
        try:
            return json.loads(body)
        except RecursionError as exc:
            raise SchedulerUnavailable(f"{self._who} answered {path} with JSON nested too deeply") from exc
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, over-long integers
            raise SchedulerUnavailable(f"{self._who} answered {path} with something that is not JSON "
                                       f"({_clip(str(exc))}; it starts {_show(body[:40])})") from exc

    async def _fetch(self, session: aiohttp.ClientSession, method: str, path: str, payload: object,
                     limit: int) -> bytes:
        headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
        async with session.request(
                method, self.base_url + path, json=payload, headers=headers, allow_redirects=False,
                auto_decompress=False, max_headers=self.limits.max_headers,
                max_line_size=self.limits.max_header_size, max_field_size=self.limits.max_header_size,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.limits.connect)) as resp:
            problem = _reply_problem(resp, path, limit)
            if problem:
                resp.close()  # don't read the rest, and never reuse this connection
                raise SchedulerUnavailable(f"{self._who} {problem}")
            body = bytearray()
            async for chunk in resp.content.iter_chunked(16 * KIB):
                body += chunk
                if len(body) > limit:
                    resp.close()
                    raise SchedulerUnavailable(f"{self._who} answered {path} with a body over {limit} bytes")
            return bytes(body)


def _reply_problem(resp: aiohttp.ClientResponse, path: str, limit: int) -> str | None:
    """What makes a reply unusable before its body is read, in words for the user."""
    if resp.status != 200:
        problem = f"answered {path} with HTTP {resp.status} {_clip(resp.reason or '')}".rstrip()
        if resp.status == 404:
            problem += ("; is Dask's HTTP API enabled on the scheduler? (route 'distributed.http.scheduler.api' "
                        "in DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES)")
        return problem
    encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return f"answered {path} with a {_clip(encoding)}-compressed body although asked for none"
    if resp.content_length is not None and resp.content_length > limit:
        return f"answered {path} with a body over {limit} bytes ({resp.content_length} announced)"
    return None


def _field(reply: object, name: str, path: str, who: str) -> object:
    if not isinstance(reply, dict):
        raise SchedulerUnavailable(f"{who} answered {path} with a JSON {_kind(reply)}, expected an object "
                                   f"with the field '{name}'")
    if name not in reply:
        raise SchedulerUnavailable(f"{who} answered {path} without the field '{name}'")
    return reply[name]


def _kind(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _show(value: object) -> str:
    """A short, printable rendering of something the scheduler sent."""
    return _clip(repr(value), 60)


def _clip(text: str, width: int = 200) -> str:
    text = "".join(c if c.isprintable() else "?" for c in text[:width + 1])
    return text if len(text) <= width else text[:width - 3] + "..."

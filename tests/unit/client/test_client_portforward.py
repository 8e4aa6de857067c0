"""The in-process port-forward against a fake API server speaking the pods/portforward websocket protocol."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from kubedask.connect import choose_route, with_forward_error
from kubedask.portforward import HEARTBEAT, PORTFORWARD_PROTOCOL, PortForward, PortForwardError, transient
from kubedask.reconnect import GaveUp, Reconnect, with_retries
from kubernetes.client import Configuration
from local_http import serving

DEADLINE = 10


@dataclass
class FakeApiServer:
    """Forwards each websocket to a local echo server, like the kubelet forwards to the pod's port."""

    echo_port: int
    seen_headers: list[str] = field(default_factory=list)
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    refuse: bool = False
    #: Answer this many handshakes with ``status`` (an API server starting up says 503) ...
    unavailable: int = 0
    status: int = 503
    #: ... or every handshake (``-1``: forever).
    attempts: int = 0
    #: Accept the stream, then never answer anything, not even a ping (a peer that silently went away).
    silent: bool = False
    #: Answer this many ``/readyz`` with 500 (a restarted API server that serves before it is ready).
    unready: int = 0
    readyz_calls: int = 0

    async def readyz(self, request: web.Request) -> web.Response:
        self.readyz_calls += 1
        if self.unready:
            self.unready -= 1
            return web.Response(status=500, text="[-]poststarthook/rbac/bootstrap-roles failed: not finished")
        return web.Response(text="ok")

    async def portforward(self, request: web.Request) -> web.StreamResponse:
        self.attempts += 1
        self.seen_headers.append(request.headers.get("Authorization", ""))
        if self.unavailable:
            self.unavailable -= 1
            return web.Response(status=self.status, text="apiserver is shutting down")
        port = int(request.query["ports"])
        ws = web.WebSocketResponse(protocols=(PORTFORWARD_PROTOCOL,), autoping=not self.silent)
        await ws.prepare(request)
        self.sockets.append(ws)
        if self.silent:
            async for _ in ws:  # pings arrive as messages and go unanswered
                pass
            return ws
        header = port.to_bytes(2, "little")
        await ws.send_bytes(b"\x00" + header)
        await ws.send_bytes(b"\x01" + header)
        if self.refuse:
            await ws.send_bytes(b"\x01" + b"connection refused")
            await ws.close()
            return ws
        reader, writer = await asyncio.open_connection("127.0.0.1", self.echo_port)

        async def pod_to_ws() -> None:
            while data := await reader.read(65536):
                await ws.send_bytes(b"\x00" + data)

        pump = asyncio.ensure_future(pod_to_ws())
        async for message in ws:
            if message.type == aiohttp.WSMsgType.BINARY and message.data[0] == 0:
                writer.write(message.data[1:])
                await writer.drain()
        pump.cancel()
        writer.close()
        return ws


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


@pytest.fixture
async def fake(echo_port: int) -> AsyncIterator[tuple[FakeApiServer, Configuration]]:
    api = FakeApiServer(echo_port)
    async with serving({"/api/v1/namespaces/ns/pods/c-scheduler/portforward": api.portforward,
                        "/readyz": api.readyz}) as url:
        configuration = Configuration(host=url)
        configuration.api_key["BearerToken"] = "Bearer tok"
        yield api, configuration


#: Retries on a scale that keeps the tests fast: the policy's arithmetic is tested on fake time below.
QUICK = Reconnect(first_delay=0.01, max_delay=0.05, budget=2.0)


@contextlib.asynccontextmanager
async def forwarding(configuration: Configuration, reconnect: Reconnect = QUICK,
                     heartbeat: float | None = HEARTBEAT) -> AsyncIterator[PortForward]:
    forward = PortForward(configuration, "ns", "c-scheduler", [8786, 8787], reconnect=reconnect, heartbeat=heartbeat)
    await forward.start()
    try:
        yield forward
    finally:
        await forward.close()


async def roundtrip(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    data = await asyncio.wait_for(reader.readexactly(len(payload)), DEADLINE)
    writer.close()
    return data


async def test_bytes_round_trip_through_the_forward(fake: tuple[FakeApiServer, Configuration]) -> None:
    api, configuration = fake
    async with forwarding(configuration) as forward:
        assert set(forward.local_ports) == {8786, 8787}
        assert await roundtrip(forward.local_ports[8786], b"hello" * 50_000) == b"hello" * 50_000
    assert api.seen_headers == ["Bearer tok"]


async def test_a_dropped_connection_does_not_kill_others(fake: tuple[FakeApiServer, Configuration]) -> None:
    api, configuration = fake
    async with forwarding(configuration) as forward:
        port = forward.local_ports[8786]
        r1, w1 = await asyncio.open_connection("127.0.0.1", port)
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        for w in (w1, w2):
            w.write(b"ping")
        assert await asyncio.wait_for(r1.readexactly(4), DEADLINE) == b"ping"
        assert await asyncio.wait_for(r2.readexactly(4), DEADLINE) == b"ping"

        await api.sockets[0].close()  # the API server drops the first stream
        assert await asyncio.wait_for(r1.read(), DEADLINE) == b""  # that connection sees EOF...
        assert forward.last_error is None  # a clean close (the pod's side ended it) is no fault

        w2.write(b"still")  # ...the other keeps working
        assert await asyncio.wait_for(r2.readexactly(5), DEADLINE) == b"still"
        assert await roundtrip(port, b"new") == b"new"  # and new connections are accepted
        w2.close()


async def test_pod_side_errors_close_only_that_connection(fake: tuple[FakeApiServer, Configuration]) -> None:
    api, configuration = fake
    async with forwarding(configuration) as forward:
        api.refuse = True
        reader, _ = await asyncio.open_connection("127.0.0.1", forward.local_ports[8787])
        assert await asyncio.wait_for(reader.read(), DEADLINE) == b""
        api.refuse = False
        assert await roundtrip(forward.local_ports[8787], b"after") == b"after"


async def test_route_prefers_external_address_outside_the_cluster() -> None:
    route = await choose_route(
        "tcp://c.ns.svc.cluster.local:8786", "tcp://10.0.0.2:31000", in_cluster=False, dns_retries=1
    )
    assert (route.kind, route.address) == ("external", "tcp://10.0.0.2:31000")
    route = await choose_route("tcp://c.ns.svc.cluster.local:8786", None, in_cluster=False, dns_retries=1)
    assert route.kind == "forward"
    route = await choose_route("tcp://localhost:8786", None, in_cluster=True, dns_retries=1)
    assert (route.kind, route.address) == ("dns", "tcp://localhost:8786")


async def test_refused_forward_is_reported_clearly(
    fake: tuple[FakeApiServer, Configuration],
) -> None:
    _, configuration = fake
    forward = PortForward(configuration, "ns", "other-pod", [8786])
    await forward.start()
    try:
        with pytest.raises(
            PortForwardError, match=r"refused a port-forward to pod ns/other-pod port 8786: HTTP 404"
        ):
            await forward.check(8786)
    finally:
        await forward.close()


async def test_check_passes_when_the_stream_opens(fake: tuple[FakeApiServer, Configuration]) -> None:
    _, configuration = fake
    async with forwarding(configuration) as forward:
        await forward.check(8786)


# --- surviving an API server restart -----------------------------------------------------------------


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_backoff_doubles_up_to_its_cap_within_the_budget() -> None:
    delays = list(Reconnect(first_delay=0.25, max_delay=2.0, budget=10.0).delays())
    assert delays == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0]
    assert sum(delays) <= 10.0


async def test_transient_failures_are_retried_with_backoff_until_one_succeeds() -> None:
    time_ = FakeTime()
    outcomes: list[Exception | str] = [ConnectionRefusedError("refused"), ConnectionRefusedError("refused"), "open"]

    async def attempt() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    result = await with_retries(attempt, Reconnect(first_delay=0.25, max_delay=2.0, budget=20.0), transient,
                                sleep=time_.sleep, clock=time_.clock)
    assert result == "open"
    assert time_.sleeps == [0.25, 0.5]


async def test_retries_stop_at_the_budget_and_name_the_last_cause() -> None:
    time_ = FakeTime()

    async def attempt() -> str:
        time_.now += 1.0  # each refused attempt itself takes a second
        raise ConnectionRefusedError("connection refused")

    with pytest.raises(GaveUp, match=r"unreachable: connection refused \(gave up after \d+ attempts in [\d.]+ s\)"):
        await with_retries(attempt, Reconnect(first_delay=0.25, max_delay=2.0, budget=10.0), transient,
                           lambda e: f"the API server is unreachable: {e}", sleep=time_.sleep, clock=time_.clock)
    assert time_.now <= 10.0 + 1.0  # no attempt starts after the budget (the last one may take its second)
    assert time_.sleeps and max(time_.sleeps) <= 2.0


async def test_a_refusal_that_will_not_change_is_not_retried() -> None:
    time_ = FakeTime()

    async def attempt() -> str:
        raise PermissionError("forbidden")

    with pytest.raises(PermissionError):
        await with_retries(attempt, Reconnect(), lambda e: False, sleep=time_.sleep, clock=time_.clock)
    assert time_.sleeps == []


def test_which_stream_failures_are_worth_a_retry() -> None:
    def handshake(status: int) -> aiohttp.WSServerHandshakeError:
        return aiohttp.WSServerHandshakeError(request_info=None, history=(), status=status)  # type: ignore[arg-type]

    assert transient(handshake(503)) and transient(handshake(429)) and transient(handshake(502))
    assert not transient(handshake(403)) and not transient(handshake(404)) and not transient(handshake(401))
    assert transient(aiohttp.ServerDisconnectedError())
    assert transient(ConnectionRefusedError())
    assert transient(TimeoutError())
    assert not transient(ValueError("a bug"))


async def test_a_connection_made_while_the_api_server_is_unready_gets_through_once_it_is_back(
        fake: tuple[FakeApiServer, Configuration]) -> None:
    api, configuration = fake
    api.unavailable = 3  # the first three handshakes meet an API server that says 503
    async with forwarding(configuration) as forward:
        assert await roundtrip(forward.local_ports[8786], b"patient") == b"patient"
        assert forward.last_error is None
    assert api.attempts == 4


async def test_an_api_server_that_stays_away_closes_the_connection_and_says_why(
        fake: tuple[FakeApiServer, Configuration], caplog: pytest.LogCaptureFixture) -> None:
    api, configuration = fake
    api.unavailable = 10_000
    caplog.set_level(logging.WARNING, logger="kubedask.portforward")
    async with forwarding(configuration, reconnect=Reconnect(first_delay=0.01, max_delay=0.02, budget=0.1)) as forward:
        reader, writer = await asyncio.open_connection("127.0.0.1", forward.local_ports[8786])
        assert await asyncio.wait_for(reader.read(), DEADLINE) == b""  # closed: Dask's comm sees it at once
        writer.close()
        assert forward.last_error is not None
        assert "pod ns/c-scheduler port 8786" in forward.last_error
        assert "answered HTTP 503" in forward.last_error and "gave up after" in forward.last_error
    assert api.attempts > 1
    assert any("answered HTTP 503" in r.getMessage() for r in caplog.records)


async def test_a_failed_connection_through_a_forward_says_what_the_forward_saw(
        fake: tuple[FakeApiServer, Configuration]) -> None:
    api, configuration = fake
    api.unavailable, api.status = 10_000, 403
    timeout = OSError("Timed out trying to connect to tcp://127.0.0.1:40000 after 30 s")
    async with forwarding(configuration) as forward:
        assert with_forward_error(timeout, forward) is timeout  # nothing went wrong yet: nothing to add
        reader, writer = await asyncio.open_connection("127.0.0.1", forward.local_ports[8786])
        assert await asyncio.wait_for(reader.read(), DEADLINE) == b""
        writer.close()
        explained = with_forward_error(timeout, forward)
    assert isinstance(explained, OSError) and explained is not timeout
    assert str(explained).startswith("Timed out trying to connect")
    assert "port-forward to the scheduler reported" in str(explained) and "HTTP 403" in str(explained)
    cancelled = asyncio.CancelledError()
    assert with_forward_error(cancelled, forward) is cancelled  # only connection errors are explained
    assert with_forward_error(timeout, None) is timeout


async def test_a_forbidden_stream_is_not_retried(fake: tuple[FakeApiServer, Configuration]) -> None:
    api, configuration = fake
    api.unavailable, api.status = 10_000, 403
    async with forwarding(configuration) as forward:
        reader, writer = await asyncio.open_connection("127.0.0.1", forward.local_ports[8786])
        assert await asyncio.wait_for(reader.read(), DEADLINE) == b""
        writer.close()
        assert forward.last_error is not None and "HTTP 403" in forward.last_error
    assert api.attempts == 1


async def test_a_stream_whose_peer_went_silent_is_closed_by_the_heartbeat(
        fake: tuple[FakeApiServer, Configuration]) -> None:
    api, configuration = fake
    api.silent = True
    async with forwarding(configuration, heartbeat=0.2) as forward:
        reader, writer = await asyncio.open_connection("127.0.0.1", forward.local_ports[8786])
        writer.write(b"anyone?")
        # No pong within half a heartbeat: the stream is dead, and the local connection ends with it
        # (instead of Dask waiting forever on a socket nothing will ever answer).
        assert await asyncio.wait_for(reader.read(), DEADLINE) == b""
        writer.close()
        assert forward.last_error is not None and "broke" in forward.last_error, forward.last_error


async def test_after_a_stream_broke_new_streams_wait_until_the_api_server_is_ready(
        fake: tuple[FakeApiServer, Configuration]) -> None:
    """A restarted API server accepts streams before it is ready; one opened then can end again, and the Dask
    client that reconnected through it would have to reconnect once more. So after a break the forward asks
    ``/readyz`` first, and opens the stream once it says ok."""
    api, configuration = fake
    async with forwarding(configuration, heartbeat=0.2) as forward:
        assert await roundtrip(forward.local_ports[8786], b"steady") == b"steady"
        assert api.readyz_calls == 0  # nothing broke: a stream opens without asking
        api.silent = True  # the next stream's peer goes away: the heartbeat finds it broken
        reader, writer = await asyncio.open_connection("127.0.0.1", forward.local_ports[8786])
        writer.write(b"anyone?")
        assert await asyncio.wait_for(reader.read(), DEADLINE) == b""
        writer.close()
        assert forward.last_error is not None and "broke" in forward.last_error
        api.silent, api.unready = False, 2
        streams = api.attempts
        assert await roundtrip(forward.local_ports[8786], b"back") == b"back"
        assert api.readyz_calls == 3  # twice not ready, then ok
        assert api.attempts == streams + 1  # the stream itself was opened once, when the API server was ready
        assert await roundtrip(forward.local_ports[8786], b"again") == b"again"
        assert api.readyz_calls == 3  # ready again: no more asking

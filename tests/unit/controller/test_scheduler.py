"""The scheduler client against in-process HTTP servers on 127.0.0.1 that answer well, oddly or hostilely.

Waits (drips, silence) run on looptime's fake clock, so a 10 s deadline costs no real time.
"""

from __future__ import annotations

import ast
import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from kubedask_controller import scheduler as scheduler_module
from kubedask_controller.scheduler import Limits, RetiredWorker, SchedulerClient, SchedulerUnavailable, new_session

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SMALL = Limits(small_body=256, retire_body_base=512, retire_body_per_worker=1024, answer=10, retire=30)


class FakeScheduler:
    """An aiohttp server whose /api/v1/* answers are set per test; remembers what it was asked."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.answers: dict[str, Handler] = {}
        self.asked: list[tuple[str, str, bytes]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/v1/{path:.*}", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.asked.append((request.method, request.path, await request.read()))
        return await self.answers[request.path](request)

    def answer(self, path: str, handler: Handler) -> None:
        self.answers[API + path] = handler

    def answer_json(self, path: str, body: object, status: int = 200) -> None:
        async def handler(_: web.Request) -> web.StreamResponse:
            return web.Response(text=json.dumps(body), status=status, content_type="application/json")
        self.answer(path, handler)

    def answer_text(self, path: str, text: str | bytes, status: int = 200, reason: str | None = None) -> None:
        body = text.encode() if isinstance(text, str) else text

        async def handler(_: web.Request) -> web.StreamResponse:
            return web.Response(body=body, status=status, reason=reason)
        self.answer(path, handler)

    def client(self, limits: Limits = SMALL, session: aiohttp.ClientSession | None = None) -> SchedulerClient:
        return SchedulerClient(self.host, session, http_port=self.port, limits=limits)


API = scheduler_module.API_PREFIX


@pytest.fixture
async def fake() -> AsyncIterator[FakeScheduler]:
    server = FakeScheduler()
    await server.start()
    yield server
    assert server.runner is not None
    await server.runner.cleanup()


async def raises(call: Awaitable[object]) -> str:
    with pytest.raises(SchedulerUnavailable) as info:
        await call
    return str(info.value)


# --- good answers, in Dask's formats ---

async def test_adaptive_target_is_the_workers_field(fake: FakeScheduler) -> None:
    fake.answer_json("/adaptive_target", {"workers": 7})
    assert await fake.client().adaptive_target() == 7
    assert fake.asked == [("GET", "/api/v1/adaptive_target", b"")]


@pytest.mark.parametrize(("sent", "expected"), [(None, None), (1700000000.5, 1700000000.5), (1700000000, 1.7e9)])
async def test_idle_since_is_a_time_or_none_when_busy(fake: FakeScheduler, sent: float | None,
                                                      expected: float | None) -> None:
    fake.answer_json("/check_idle", {"idle_since": sent})
    assert await fake.client().idle_since() == expected


def dask_identity(name: str, host: str) -> dict[str, object]:
    """A retired worker's entry as Dask's WorkerState.identity() renders it (about 0.9 KiB)."""
    return {"type": "Worker", "id": name, "host": host, "resources": {}, "local_directory": "/tmp/dask-scratch",
            "name": name, "nthreads": 1, "memory_limit": 12637986816, "last_seen": 1796222213.64,
            "services": {"dashboard": 8788}, "status": "closing_gracefully", "nanny": None,
            "metrics": {"task_counts": {}, "bandwidth": {"total": 100000000, "workers": {}, "types": {}},
                        "managed_bytes": 0, "spilled_bytes": {"memory": 0, "disk": 0},
                        "transfer": {"incoming_bytes": 0, "incoming_count": 0, "incoming_count_total": 0,
                                     "outgoing_bytes": 0, "outgoing_count": 0, "outgoing_count_total": 0},
                        "event_loop_interval": 0.02, "cpu": 0.0, "memory": 80863232, "time": 1796222213.63,
                        "host_net_io": {"read_bps": 0.0, "write_bps": 0.0},
                        "host_disk_io": {"read_bps": 0.0, "write_bps": 0.0}, "num_fds": 13}}


async def test_retire_returns_the_workers_the_scheduler_chose(fake: FakeScheduler) -> None:
    fake.answer_json("/retire_workers", {"tcp://10.0.0.5:40000": dask_identity("c-worker-bbbbb", "10.0.0.5"),
                                         "tcp://10.0.0.6:40000": {"name": 3, "host": None}})
    retired = await fake.client().retire_workers(2)
    assert retired == [RetiredWorker("c-worker-bbbbb", "10.0.0.5"), RetiredWorker("3", None)]
    assert fake.asked == [("POST", "/api/v1/retire_workers", b'{"n": 2}')]


async def test_a_retire_reply_for_a_thousand_workers_fits_the_default_limit(fake: FakeScheduler) -> None:
    reply = {f"tcp://10.0.{i // 250}.{i % 250}:40000": dask_identity(f"c-worker-{i:05d}", f"10.0.{i // 250}.{i % 250}")
             for i in range(1000)}
    fake.answer_json("/retire_workers", reply)
    retired = await fake.client(Limits()).retire_workers(1000)
    assert len(retired) == 1000
    assert len(json.dumps(reply)) < Limits().retire_body(1000)


async def test_one_shared_session_serves_many_clients(fake: FakeScheduler) -> None:
    fake.answer_json("/adaptive_target", {"workers": 2})
    async with new_session(SMALL, max_connections=4) as session:
        targets = await asyncio.gather(*(fake.client(session=session).adaptive_target() for _ in range(20)))
    assert targets == [2] * 20


# --- bodies that are too big, not JSON, or the wrong shape ---

async def test_an_endless_body_is_cut_off_at_the_limit(fake: FakeScheduler) -> None:
    cut_off = asyncio.Event()
    written = 0

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal written
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            while True:
                await response.write(b"[" * 4096)
                written += 4096
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            cut_off.set()
        return response

    fake.answer("/adaptive_target", endless)
    message = await raises(fake.client().adaptive_target())
    assert message == f"the scheduler at 127.0.0.1:{fake.port} answered /adaptive_target with a body over 256 bytes"
    await asyncio.wait_for(cut_off.wait(), 10)  # the client hung up instead of reading on
    assert written < 64 * 1024 * 1024


async def test_an_announced_huge_body_is_refused_unread(fake: FakeScheduler) -> None:
    fake.answer_text("/check_idle", " " * 100_000)
    message = await raises(fake.client().idle_since())
    assert message.endswith("answered /check_idle with a body over 256 bytes (100000 announced)")


async def test_a_retire_reply_may_grow_with_the_number_of_workers_asked_for(fake: FakeScheduler) -> None:
    fake.answer_json("/retire_workers", {"tcp://a:1": {"name": "w" * 1600, "host": "a"}})
    assert "body over 1536 bytes" in await raises(fake.client().retire_workers(1))
    assert len(await fake.client().retire_workers(2)) == 1


@pytest.mark.parametrize(("body", "words"), [
    ("<html>Dask dashboard</html>", "something that is not JSON (Expecting value: line 1 column 1 (char 0); "
                                    "it starts b'<html>Dask dashboard</html>')"),
    ('{"workers": 3', "something that is not JSON (Expecting ',' delimiter"),
    (b'{"workers": "\xff"}', "something that is not JSON ('utf-8' codec can't decode byte 0xff"),
    ("[" * 100_000, "JSON nested too deeply"),
])
async def test_garbage_is_reported_as_not_json(fake: FakeScheduler, body: str | bytes, words: str) -> None:
    fake.answer_text("/adaptive_target", body)
    assert words in await raises(fake.client(Limits(small_body=200_000)).adaptive_target())


@pytest.mark.parametrize(("path", "reply", "words"), [
    ("/adaptive_target", {"workers": "3"}, "'workers' = '3', expected a whole number of workers (0 or more)"),
    ("/adaptive_target", {"workers": True}, "'workers' = True, expected a whole number"),
    ("/adaptive_target", {"workers": -1}, "'workers' = -1, expected a whole number"),
    ("/adaptive_target", {"workers": 2.5}, "'workers' = 2.5, expected a whole number"),
    ("/adaptive_target", {"wanted": 3}, "answered /adaptive_target without the field 'workers'"),
    ("/adaptive_target", [3], "with a JSON array, expected an object with the field 'workers'"),
    ("/check_idle", {"idle_since": "yesterday"}, "'idle_since' = 'yesterday', expected seconds since the epoch"),
    ("/check_idle", {"idle_since": float("nan")}, "'idle_since' = nan, expected seconds"),
    ("/check_idle", {}, "answered /check_idle without the field 'idle_since'"),
    ("/check_idle", None, "with a JSON null, expected an object with the field 'idle_since'"),
])
async def test_wrong_json_types_are_named(fake: FakeScheduler, path: str, reply: object, words: str) -> None:
    fake.answer_json(path, reply)
    ask = fake.client().adaptive_target if path == "/adaptive_target" else fake.client().idle_since
    message = await raises(ask())
    assert message.startswith(f"the scheduler at 127.0.0.1:{fake.port} answered {path} ")
    assert words in message


@pytest.mark.parametrize(("reply", "words"), [
    (["w1"], "with a JSON array, expected an object of workers"),
    ({"tcp://a:1": "w1"}, "with a JSON string for worker 'tcp://a:1', expected an object"),
    ({"tcp://a:1": {"host": "a"}}, "with 'name' = None for worker 'tcp://a:1', expected a string"),
    ({"tcp://a:1": {"name": "w", "host": 5}}, "with 'host' = 5 for worker 'tcp://a:1', expected a string"),
    ({"tcp://a:1": {"name": "a"}, "tcp://b:1": {"name": "b"}}, "with 2 workers although asked to retire 1"),
])
async def test_a_retire_reply_of_the_wrong_shape_is_named(fake: FakeScheduler, reply: object, words: str) -> None:
    fake.answer_json("/retire_workers", reply)
    assert words in await raises(fake.client().retire_workers(1))


# --- HTTP-level refusals ---

async def test_404_says_the_http_api_may_be_off(fake: FakeScheduler) -> None:
    fake.answer_text("/check_idle", "404: Not Found", status=404)
    message = await raises(fake.client().idle_since())
    assert message == (f"the scheduler at 127.0.0.1:{fake.port} answered /check_idle with HTTP 404 Not Found; "
                       "is Dask's HTTP API enabled on the scheduler? (route 'distributed.http.scheduler.api' in "
                       "DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES)")


async def test_500_carries_the_schedulers_reason_clipped(fake: FakeScheduler) -> None:
    fake.answer_text("/retire_workers", '{"Error": "Internal Server Error"}', status=500,
                     reason="no workers to close " + "x" * 500)
    message = await raises(fake.client().retire_workers(1))
    assert "answered /retire_workers with HTTP 500 no workers to close xxx" in message
    assert message.endswith("...") and len(message) < 300


async def test_redirects_are_not_followed(fake: FakeScheduler) -> None:
    async def elsewhere(_: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"http://127.0.0.1:{fake.port}/api/v1/check_idle")

    fake.answer("/adaptive_target", elsewhere)
    fake.answer_json("/check_idle", {"idle_since": None})
    assert "answered /adaptive_target with HTTP 302 Found" in await raises(fake.client().adaptive_target())
    assert [path for _, path, _ in fake.asked] == ["/api/v1/adaptive_target"]


async def test_a_compressed_body_is_refused(fake: FakeScheduler) -> None:
    bomb = gzip.compress(b" " * 10_000_000)

    async def compressed(_: web.Request) -> web.StreamResponse:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})

    fake.answer("/adaptive_target", compressed)
    assert "with a gzip-compressed body although asked for none" in await raises(fake.client().adaptive_target())


# --- wire-level hostility: raw sockets ---

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def raw() -> AsyncIterator[Callable[[Behaviour], Awaitable[int]]]:
    servers: list[asyncio.Server] = []

    async def serve(behaviour: Behaviour) -> int:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            try:
                await behaviour(reader, writer)
            except ConnectionError:
                pass  # the client hung up, as it should
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    yield serve
    for server in servers:
        server.close()
        await server.wait_closed()


def raw_client(port: int, limits: Limits = SMALL) -> SchedulerClient:
    return SchedulerClient("127.0.0.1", http_port=port, limits=limits)


# id -> (what the scheduler sends back, the call, what the error says)
BAD_REPLIES: dict[str, tuple[bytes, str, str]] = {
    "not-http": (b"\x00\x01garbage\xff\r\n\r\n", "adaptive_target",
                 "sent a malformed HTTP reply to /adaptive_target"),
    "too-many-headers": (b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(1000)) + b"\r\n",
                         "idle_since", "sent a malformed HTTP reply to /check_idle"),
    "body-shorter-than-announced": (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"workers\"",
                                    "adaptive_target", "sent a broken body for /adaptive_target"),
}


@pytest.mark.parametrize(("reply", "call", "message"), BAD_REPLIES.values(), ids=BAD_REPLIES.keys())
async def test_a_bad_reply_is_named_as_such(raw: Callable[[Behaviour], Awaitable[int]],
                                            reply: bytes, call: str, message: str) -> None:
    async def answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(reply)
        await writer.drain()

    port = await raw(answer)
    assert message in await raises(getattr(raw_client(port), call)())


async def test_hanging_up_without_an_answer(raw: Callable[[Behaviour], Awaitable[int]]) -> None:
    async def hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pass

    port = await raw(hang_up)
    assert await raises(raw_client(port).adaptive_target()) == (
        f"the scheduler at 127.0.0.1:{port} closed the connection without answering /adaptive_target")


@pytest.mark.looptime
@pytest.mark.parametrize("where", ["headers", "body"])
async def test_a_slow_drip_cannot_stretch_the_deadline(raw: Callable[[Behaviour], Awaitable[int]],
                                                       where: str) -> None:
    async def drip(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\n" + (b"Transfer-Encoding: chunked\r\n\r\n" if where == "body"
                                                 else b"X-Drip: "))
        while True:  # a byte a second, so no read ever waits long; 10 s of it fit under the size limits
            writer.write(b"1\r\n \r\n" if where == "body" else b"x")
            await writer.drain()
            await asyncio.sleep(1)

    port = await raw(drip)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await raises(raw_client(port).adaptive_target()) == (
        f"the scheduler at 127.0.0.1:{port} did not answer /adaptive_target within 10 s")
    assert loop.time() - started == pytest.approx(10, abs=0.5)


@pytest.mark.looptime
async def test_no_answer_times_out_and_retire_waits_longer(raw: Callable[[Behaviour], Awaitable[int]]) -> None:
    async def silent(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up

    port = await raw(silent)
    assert "did not answer /check_idle within 10 s" in await raises(raw_client(port).idle_since())
    assert "did not answer /retire_workers within 30 s" in await raises(raw_client(port).retire_workers(3))


async def test_ipv6_pod_ips_work_and_are_named_in_brackets() -> None:
    server = FakeScheduler("::1")
    await server.start()
    try:
        server.answer_json("/adaptive_target", {"workers": 4})
        assert await server.client().adaptive_target() == 4
        server.answer_json("/check_idle", {})
        assert (await raises(server.client().idle_since())).startswith(f"the scheduler at [::1]:{server.port} ")
    finally:
        assert server.runner is not None
        await server.runner.cleanup()


async def test_an_unreachable_scheduler_fails_fast_and_clearly() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert await raises(raw_client(port).retire_workers(1)) == (
        f"the scheduler at 127.0.0.1:{port} cannot be reached (connection refused)")


@pytest.mark.timeout(20)  # a real scheduler and two workers on real time: about 1 s, more on a busy machine
async def test_a_real_dask_scheduler_with_the_builders_routes_answers_all_three() -> None:
    """The formats above are Dask's: the pinned distributed, configured as the builders configure it."""
    import dask
    from distributed import Scheduler, Worker
    from kubedask_controller.builders import SCHEDULER_HTTP_ROUTES

    with dask.config.set({"distributed.scheduler.http.routes": ast.literal_eval(SCHEDULER_HTTP_ROUTES)}):
        async with Scheduler(host="127.0.0.1", port=0, dashboard_address="127.0.0.1:0") as s, \
                Worker(s.address, name="c-worker-aaaaa", nthreads=1), \
                Worker(s.address, name="c-worker-bbbbb", nthreads=1):
            client = SchedulerClient("127.0.0.1", http_port=s.http_server.port)
            assert isinstance(await client.adaptive_target(), int)
            idle = await client.idle_since()
            assert idle is None or idle > 1e9
            retired = await client.retire_workers(1)
            assert [w.name for w in retired] in (["c-worker-aaaaa"], ["c-worker-bbbbb"])
            assert retired[0].host == "127.0.0.1" and len(s.workers) == 1


def test_no_controller_module_speaks_dask_rpc_or_unpickles() -> None:
    """Dask's RPC deserialises replies (pickle among its serialisers): a scheduler pod runs the user's
    template, so nothing in the controller may import it or any unpickler."""
    package = Path(scheduler_module.__file__).parent
    forbidden = {"distributed", "dask", "pickle", "cloudpickle", "dill", "msgpack", "marshal", "shelve"}
    found = {}
    for module in sorted(package.rglob("*.py")):
        tree = ast.parse(module.read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and not node.level}
        if imported & forbidden:
            found[module.name] = sorted(imported & forbidden)
    assert len(list(package.rglob("*.py"))) > 10 and found == {}

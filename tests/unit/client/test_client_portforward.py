"""The in-process port-forward against a fake API server speaking the pods/portforward websocket protocol."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from kubedask.connect import choose_route
from kubedask.portforward import PORTFORWARD_PROTOCOL, PortForward, PortForwardError
from kubernetes.client import Configuration

DEADLINE = 10


@dataclass
class FakeApiServer:
    """Forwards each websocket to a local echo server, like the kubelet forwards to the pod's port."""

    echo_port: int
    seen_headers: list[str] = field(default_factory=list)
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    refuse: bool = False

    async def portforward(self, request: web.Request) -> web.WebSocketResponse:
        self.seen_headers.append(request.headers.get("Authorization", ""))
        port = int(request.query["ports"])
        ws = web.WebSocketResponse(protocols=(PORTFORWARD_PROTOCOL,))
        await ws.prepare(request)
        self.sockets.append(ws)
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
    app = web.Application()
    app.router.add_get("/api/v1/namespaces/ns/pods/c-scheduler/portforward", api.portforward)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    configuration = Configuration(host=f"http://127.0.0.1:{port}")
    configuration.api_key["BearerToken"] = "Bearer tok"
    yield api, configuration
    await runner.cleanup()


@contextlib.asynccontextmanager
async def forwarding(configuration: Configuration) -> AsyncIterator[PortForward]:
    forward = PortForward(configuration, "ns", "c-scheduler", [8786, 8787])
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

"""The controller's own pod watch (kubedask_controller.pod_watch) against a scripted HTTP API server:
LIST pages, then a WATCH from the LIST's resourceVersion; bookmarks move it on; 410 Gone lists again (and
says so); a failing server is retried; one pod the controller cannot handle stops nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import kubernetes
import pytest
from aiohttp import web
from kubedask_controller import pod_watch
from kubedask_controller.kube_http import Reads
from kubedask_controller.pod_watch import PodWatch
from local_http import serving

SELECTOR = "app.kubernetes.io/managed-by=kubedask"


def pod(name: str, rv: int, size: int = 0) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(rv),
                         "annotations": {"padding": "x" * size}}}


class Server:
    """Answers each LIST and WATCH with the next scripted response (then with an empty, held stream)."""

    def __init__(self) -> None:
        self.lists: list[Callable[[web.Request], web.StreamResponse | dict[str, Any]]] = []
        self.watches: list[list[bytes] | int] = []
        self.requests: list[dict[str, str]] = []
        self.closing = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.query))
        if request.query.get("watch") != "true":
            answer = self.lists.pop(0)(request) if self.lists else {"items": [], "metadata": {"resourceVersion": "1"}}
            return answer if isinstance(answer, web.StreamResponse) else web.json_response(answer)
        script = self.watches.pop(0) if self.watches else []
        if isinstance(script, int):
            return web.Response(status=script, text="scripted failure")
        response = web.StreamResponse()
        await response.prepare(request)
        for chunk in script:
            await response.write(chunk)
        if not self.watches:
            await self.closing.wait()  # held open, as a server does until its timeoutSeconds
        return response


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, Reads]]:
    scripted = Server()
    async with serving({"/api/v1/namespaces/ns/pods": scripted.handle}) as url:
        reads = Reads(kubernetes.client.Configuration(host=url), "test", 0)
        yield scripted, reads
        await reads.close()
        scripted.closing.set()


def line(event_type: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": event_type, "object": obj}).encode() + b"\n"


async def follow(reads: Reads, until: Callable[[], bool],
                 on_event: Callable[[str | None, dict[str, Any]], None]) -> list[str]:
    """Run a watch of namespace ns until ``until()``; the relisted() calls, as "relisted" entries."""
    relisted: list[str] = []
    watch = PodWatch(reads, ["ns"], SELECTOR, on_event, lambda: relisted.append("relisted"))
    task = asyncio.create_task(watch.run())
    try:
        for _ in range(500):
            if until():
                break
            await asyncio.sleep(0.01)
        assert until(), "the watch did not get there"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    return relisted


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pod_watch, "MIN_BACKOFF", 0.01)


async def test_list_pages_then_watch_from_the_lists_version_and_bookmarks_move_it_on(
        server: tuple[Server, Reads]) -> None:
    scripted, reads = server
    scripted.lists = [lambda r: {"items": [pod("a", 3)], "metadata": {"continue": "page2", "resourceVersion": "5"}},
                      lambda r: {"items": [pod("b", 4)], "metadata": {"resourceVersion": "5"}}]
    big = pod("c", 6, size=200_000)  # larger than aiohttp's line buffer
    first = line("ADDED", big)
    scripted.watches = [[first[:1000], first[1000:] + line("MODIFIED", pod("a", 7))[:10],
                         line("MODIFIED", pod("a", 7))[10:] + line("BOOKMARK", {"metadata": {"resourceVersion": "9"}})
                         + line("DELETED", pod("b", 8))[:0]],
                        [line("DELETED", pod("b", 10))]]
    seen: list[tuple[str | None, str]] = []
    relisted = await follow(reads, lambda: len(seen) == 5,
                            lambda kind, p: seen.append((kind, p["metadata"]["name"])))
    assert seen == [(None, "a"), (None, "b"), ("ADDED", "c"), ("MODIFIED", "a"), ("DELETED", "b")]
    assert relisted == ["relisted"]  # once, after the last page
    lists = [q for q in scripted.requests if "watch" not in q]
    assert [q.get("continue") for q in lists] == [None, "page2"] and all(q["labelSelector"] == SELECTOR
                                                                         for q in scripted.requests)
    watches = [q for q in scripted.requests if q.get("watch") == "true"]
    assert [q["resourceVersion"] for q in watches] == ["5", "9"]  # the bookmark's version, not the last pod's
    assert all(q["allowWatchBookmarks"] == "true" for q in watches)


async def test_a_gone_version_lists_again_and_says_so(server: tuple[Server, Reads]) -> None:
    scripted, reads = server
    scripted.lists = [lambda r: {"items": [pod("a", 3)], "metadata": {"resourceVersion": "5"}},
                      lambda r: {"items": [pod("b", 20)], "metadata": {"resourceVersion": "21"}}]
    scripted.watches = [[line("ERROR", {"kind": "Status", "code": 410, "reason": "Expired"})],
                        [line("ADDED", pod("c", 22))]]
    seen: list[tuple[str | None, str]] = []
    relisted = await follow(reads, lambda: len(seen) == 3,
                            lambda kind, p: seen.append((kind, p["metadata"]["name"])))
    assert seen == [(None, "a"), (None, "b"), ("ADDED", "c")]
    assert relisted == ["relisted", "relisted"]
    assert [q["resourceVersion"] for q in scripted.requests if q.get("watch")] == ["5", "21"]


async def test_a_failing_server_is_retried_and_one_bad_pod_stops_nothing(
        server: tuple[Server, Reads], caplog: pytest.LogCaptureFixture) -> None:
    scripted, reads = server
    scripted.lists = [lambda r: web.Response(status=500, text="etcd is down"),
                      lambda r: web.Response(status=500, text="etcd is down"),
                      lambda r: {"items": [pod("a", 3)], "metadata": {"resourceVersion": "5"}}]
    scripted.watches = [503, [b"not json\n"], [line("ADDED", pod("bad", 6)) + line("ADDED", pod("good", 7))]]
    seen: list[str] = []

    def on_event(kind: str | None, p: dict[str, Any]) -> None:
        if p["metadata"]["name"] == "bad":
            raise KeyError("spec")
        seen.append(p["metadata"]["name"])

    await follow(reads, lambda: "good" in seen, on_event)
    assert seen == ["a", "good"]
    warnings = [r.getMessage() for r in caplog.records if r.name == pod_watch.__name__ and r.levelname == "WARNING"]
    # once per outage (two failed LISTs, then a 503 and a garbled line from the WATCH), not once per attempt
    assert len(warnings) == 2 and "500" in warnings[0] and "503" in warnings[1], warnings
    assert any("pod event ADDED not handled: bad" in r.getMessage() for r in caplog.records)
    # after the 503 and the garbage line the watch resumed from where it was, without listing again
    assert [q["resourceVersion"] for q in scripted.requests if q.get("watch")] == ["5", "5", "5"]


async def test_the_version_seen_is_known_only_while_the_namespace_is_followed(
        server: tuple[Server, Reads], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pod_watch, "MIN_BACKOFF", 0.3)
    scripted, reads = server
    scripted.lists = [lambda r: {"items": [pod("a", 3)], "metadata": {"resourceVersion": "5"}},
                      lambda r: {"items": [], "metadata": {"resourceVersion": "30"}}]
    scripted.watches = [[line("ADDED", pod("b", 6)) + line("BOOKMARK", {"metadata": {"resourceVersion": "9"}})
                         + line("ERROR", {"kind": "Status", "code": 410, "reason": "Expired"})], 503, []]
    versions: list[str | None] = []
    watch = PodWatch(reads, ["ns"], SELECTOR, lambda kind, p: versions.append(watch.seen_version("ns")),
                     lambda: versions.append(watch.seen_version("ns")))
    assert watch.seen_version("ns") is None  # not listed yet
    task = asyncio.create_task(watch.run())
    try:
        for _ in range(500):
            if len(scripted.requests) == 4:  # list, watch (410), list, watch (503)
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert watch.seen_version("ns") is None  # retrying: not followed
        for _ in range(500):
            if len(scripted.requests) == 5:  # the watch again, from 30: held open
                break
            await asyncio.sleep(0.01)
        # while listing: none yet (the pod a, then relisted()); each event: its own version
        assert versions[:3] == [None, None, "6"], versions
        assert watch.seen_version("ns") == "30"
        assert watch.seen_version("other") is None  # a namespace it does not serve
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

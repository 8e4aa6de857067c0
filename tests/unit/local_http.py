"""A real aiohttp server on 127.0.0.1 for tests that script an API server's answers (shared by the
client's port-forward tests and the controller's pod watch tests)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def serving(gets: dict[str, Handler]) -> AsyncIterator[str]:
    """Answers GETs of each path with its handler on a free port; yields the base URL."""
    app = web.Application()
    for path, handler in gets.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()

"""The bot's HTTP client: many requests at once, few connections being opened at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientSession, web

from bot.matrix.client import PacedConnector


@pytest.fixture
async def slow_server() -> AsyncIterator[str]:
    """A real local HTTP server whose answers take 50 ms, so no connection is free for reuse
    while a burst is in flight: every request of the burst needs a connection of its own."""

    async def answer(_request: web.Request) -> web.Response:
        await asyncio.sleep(0.05)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


async def test_a_burst_opens_its_connections_a_few_at_a_time(
    slow_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """200 requests at once (a page to 200 people): all answered, each on its own connection,
    never more than 8 of them being opened at the same moment — as a homeserver's listen backlog
    needs (PacedConnector's docstring). Counted at the event loop's real socket connects."""
    loop = asyncio.get_running_loop()
    real_connect = loop.create_connection
    opening = most = 0

    async def counted_connect(*args: Any, **kwargs: Any) -> Any:
        nonlocal opening, most
        opening += 1
        most = max(most, opening)
        try:
            await asyncio.sleep(0.005)  # a handshake that takes a moment, as under load
            return await real_connect(*args, **kwargs)
        finally:
            opening -= 1

    monkeypatch.setattr(loop, "create_connection", counted_connect)
    async with ClientSession(connector=PacedConnector(limit=0, connecting=8)) as session:

        async def get() -> str:
            async with session.get(slow_server) as response:
                return await response.text()

        answers = await asyncio.gather(*(get() for _ in range(200)))
        idle = session.connector._conns.values()  # type: ignore[union-attr]
        opened = sum(len(connections) for connections in idle)
    assert answers == ["ok"] * 200
    assert 1 < most <= 8
    assert opened > 8  # the connections themselves are not limited: they stay open for reuse

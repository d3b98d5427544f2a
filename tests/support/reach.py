"""Helpers for reaching people outside Matrix on the desk: a page to partners in a new
activation (and its fallback step run), and the bot's web endpoint served on a loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bot.storage.models import TimerKind
from bot.web.server import WebServer
from tests.support.desk import Desk


async def paged(desk: Desk, targets: str, text: str, *, tlp: str = "") -> str:
    """`targets` paged in a new activation; the activation room."""
    control = desk.room("lead", "member", "partner", "dg", "deputy")
    _ref, room, _ = await desk.open_activation(
        "lead", control, f'!icc activate "Meuse flooding" {tlp}'.strip()
    )
    await desk.say("member", room, f"!icc page {targets} {text} --ack 30m")
    return room


async def fallen_back(desk: Desk, targets: str, text: str, *, tlp: str = "") -> str:
    """`targets` paged in a new activation, and the page's fallback step run at once (e-mail,
    SMS: whatever their directory entries say after Matrix); the activation room."""
    room = await paged(desk, targets, text, tlp=tlp)
    await desk.fire(TimerKind.PAGE_FALLBACK)
    return room


@asynccontextmanager
async def web_endpoint(desk: Desk, **options: Any) -> AsyncIterator[str]:
    """The bot's web endpoint on a loopback port (`options` as WebServer takes them; the
    situation boards unless `boards=None`); its base URL."""
    services = desk.services
    options.setdefault("boards", services.boards)
    server = WebServer("127.0.0.1", 0, services.links, services.renderer, **options)
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.stop()

"""The situation board over HTTP: `GET /board/<token>` (the page) and `GET /board/<token>/events`
(server-sent events: the board's live part, whole, at each change).

A token the bot did not make is 404, one revoked or for a closed activation 403; neither shows
anything of the activation. The page loads nothing from anywhere: its style and its one script
are inline, allowed by a nonce of that response alone; the script may connect only back to the
bot (`connect-src 'self'`) and nothing sets or needs a cookie.

An open board's stream sends the board as it stands as soon as it connects (so one that dropped
catches up when EventSource reconnects), then again after each change of its activation: it
wakes on the change, lets what else changes in that moment land (`SETTLE`), and sends the board
as rendered then — a storm of three hundred acks is a few updates a second, not three hundred;
at most two a second, and fewer while the bot is busy (`bot.situation_board.boards.PACE`).
Between changes a comment line every `HEARTBEAT` seconds keeps proxies from closing it, and the
board is renewed each minute (ages, overdue marks). A revocation or the activation's closing
sends `gone`, and the stream ends.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.timeutil import load_zone

if TYPE_CHECKING:
    from bot.render import Renderer
    from bot.situation_board.boards import Boards, Shown
    from bot.situation_board.links import BoardLink

log = logging.getLogger(__name__)

SETTLE = 0.25  # seconds a stream waits after a change for the changes that come with it
HEARTBEAT = 20.0  # seconds between comment lines on a quiet stream
RETRY_MS = 2000  # how soon EventSource reconnects a dropped stream


def board_headers(nonce: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        ),
        "Referrer-Policy": "no-referrer",  # the token must not leak to another site
        "X-Content-Type-Options": "nosniff",
        "X-Robots-Tag": "noindex, nofollow",
        "Cache-Control": "no-store",
    }


def sse_event(name: str, data: str, event_id: int | None = None) -> bytes:
    """One server-sent event; each line of `data` a `data:` line of its own."""
    lines = [f"event: {name}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines += [f"data: {line}" for line in data.replace("\r", "").split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


@lru_cache(maxsize=8)
def _board_event(shown: Shown) -> bytes:
    """A rendering as its server-sent event, encoded once for every board following it (fifty
    on a wall and on phones: fifty times a board of three hundred people split and encoded)."""
    return sse_event("board", shown.html, shown.version)


class BoardPages:
    def __init__(self, boards: Boards, renderer: Renderer) -> None:
        self._boards, self._renderer = boards, renderer
        self._streams: set[asyncio.Task[object]] = set()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/board/{token}", self._page)
        app.router.add_get("/board/{token}/events", self._events)
        app.on_shutdown.append(self._end_streams)

    @property
    def streams(self) -> int:
        """Boards following their activation now."""
        return len(self._streams)

    async def _page(self, request: web.Request) -> web.Response:
        link, shown, zone = await self._open(request)
        nonce = secrets.token_urlsafe(18)
        if link is None or shown is None or not shown.opens(link):
            return self._refused(link, shown, nonce)
        log.info("situation board of activation %d opened", link.activation_id)
        html = self._renderer.page(
            "web_board",
            title=f"{shown.title} — situation board",
            main=shown.html,
            nonce=nonce,
            zone=zone.key,
            zones=self._boards.zones(zone),
        )
        return web.Response(text=html, content_type="text/html", headers=board_headers(nonce))

    async def _events(self, request: web.Request) -> web.StreamResponse:
        link, shown, zone = await self._open(request)
        if link is None or shown is None or not shown.opens(link):
            return self._refused(link, shown, secrets.token_urlsafe(18))
        response = web.StreamResponse(
            headers={
                **board_headers(secrets.token_urlsafe(18)),
                "Content-Type": "text/event-stream; charset=utf-8",
                "X-Accel-Buffering": "no",  # nginx: pass each event on at once
            }
        )
        await response.prepare(request)
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        try:
            await response.write(f"retry: {RETRY_MS}\n\n".encode())
            await self._follow(response, link, shown, zone)
        except ConnectionResetError:
            pass  # the viewer went away
        finally:
            self._streams.discard(task)
        return response

    async def _follow(
        self, response: web.StreamResponse, link: BoardLink, shown: Shown, zone: ZoneInfo
    ) -> None:
        changes = self._boards.changes
        sent: Shown | None = None
        while True:
            if shown is not sent:
                if not shown.opens(link):
                    ended = self._renderer.page("web_board_ended", prefix=self._prefix)
                    await response.write(sse_event("gone", ended))
                    return
                await response.write(_board_event(shown))
                sent = shown
            version = await changes.wait(link.activation_id, shown.version, at_most=HEARTBEAT)
            if version != shown.version:  # changed (or a rendering not caught up yet)
                await asyncio.sleep(SETTLE)
            fresh = await self._boards.shown(link.activation_id, zone, following=True)
            if fresh is None:
                return
            if fresh is sent and version == shown.version:
                await response.write(b": still here\n\n")  # quiet: the stream stays open
            shown = fresh

    async def _open(self, request: web.Request) -> tuple[BoardLink | None, Shown | None, ZoneInfo]:
        """The link a request's token names (None if the bot did not make it), the board it
        would open, and the zone the viewer reads times in."""
        zone = self._zone(request.query.get("tz", ""))
        link = self._boards.link(request.match_info["token"])
        if link is None:
            return None, None, zone
        return link, await self._boards.shown(link.activation_id, zone), zone

    def _zone(self, name: str) -> ZoneInfo:
        default = self._boards.settings.timezone
        if not name or len(name) > 64:
            return default
        try:
            return load_zone(name)
        except ValueError:
            return default

    def _refused(self, link: BoardLink | None, shown: Shown | None, nonce: str) -> web.Response:
        """404 for a token the bot did not make (or an activation that does not exist), 403 for
        a link revoked or whose activation closed: either way, nothing of the activation."""
        status = 404 if link is None or shown is None else 403
        if link is not None:
            log.info("board link of activation %d refused (%d)", link.activation_id, status)
        html = self._renderer.page("web_board_gone", prefix=self._prefix, nonce=nonce)
        return web.Response(
            text=html, status=status, content_type="text/html", headers=board_headers(nonce)
        )

    @property
    def _prefix(self) -> str:
        return self._boards.settings.command_prefix

    async def _end_streams(self, _app: web.Application) -> None:
        """The bot is stopping: the open streams end now (EventSource will try again)."""
        for task in list(self._streams):
            task.cancel()

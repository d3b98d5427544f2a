"""The bot's web endpoint on `ICC_WEB_ADDR`, reached by people as `ICC_PUBLIC_URL`.

`GET /ack/<token>` shows whom and what a link acknowledges, with a button; only the button's
`POST` acknowledges — mail scanners and link previews open links, and must not acknowledge for
the person. Its pages are rendered from templates, carry no script, and forbid everything a strict
Content-Security-Policy can forbid; nothing needs a cookie.

`GET /board/<token>` and its `/events` are the live situation board (`bot.web.board`).

`POST /sms/inbound` takes the SMS gateway's deliveries when inbound SMS are read
(`ICC_SMS_SECRET`; `bot.reach.sms` says what they carry and how they are signed): 401 for a
delivery not signed with the secret, 400 for one that is not the expected JSON, else 200, also
when it changed nothing (the gateway has delivered it; only the bot's log says more).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web

from bot.timeutil import format_local_utc, load_zone
from bot.web.board import BoardPages
from bot.web.endpoint import Endpoint

if TYPE_CHECKING:
    from bot.reach.links import AckLinks, LinkView
    from bot.reach.sms import SmsReplies
    from bot.render import Renderer
    from bot.situation_board.boards import Boards

log = logging.getLogger(__name__)

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",  # the token must not leak to another site
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class WebServer(Endpoint):
    def __init__(
        self,
        host: str,
        port: int,
        links: AckLinks,
        renderer: Renderer,
        *,
        sms: SmsReplies | None = None,
        boards: Boards | None = None,
    ) -> None:
        """`sms`: where inbound SMS go, or None when they are not read (no route for them);
        `boards`: the situation boards, or None for none."""
        super().__init__(host, port)
        self._links, self._renderer, self._sms = links, renderer, sms
        self.boards = BoardPages(boards, renderer) if boards is not None else None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ack/{token}", self._show)
        app.router.add_post("/ack/{token}", self._acknowledge)
        if self._sms is not None:
            app.router.add_post("/sms/inbound", self._inbound_sms)
        if self.boards is not None:
            self.boards.add_routes(app)
        return app

    async def _show(self, request: web.Request) -> web.Response:
        return self._answer(await self._links.view(request.match_info["token"]), posted=False)

    async def _acknowledge(self, request: web.Request) -> web.Response:
        seen = await self._links.acknowledge(request.match_info["token"])
        if seen is not None:
            log.info("%s acknowledged by link for %s", seen.page.ref, seen.row.handle)
        return self._answer(seen, posted=True)

    async def _inbound_sms(self, request: web.Request) -> web.Response:
        sms = self._sms
        assert sms is not None  # the route exists only with it
        if (request.content_length or 0) > sms.max_body:
            return web.Response(text="too large", status=413, headers=HEADERS)
        body = await request.read()  # bounded by the app's client_max_size (1 MiB) as well
        if len(body) > sms.max_body:
            return web.Response(text="too large", status=413, headers=HEADERS)
        outcome = await sms.receive(body, request.headers.get(sms.signature_header))
        return web.Response(text=outcome.value, status=outcome.status, headers=HEADERS)

    def _answer(self, seen: LinkView | None, *, posted: bool) -> web.Response:
        if seen is None:
            html = self._renderer.page("web_ack_unknown")
            return web.Response(text=html, status=404, content_type="text/html", headers=HEADERS)
        row, zone = seen.row, load_zone(seen.row.timezone)
        when = row.acked_at or row.declined_at
        html = self._renderer.page(
            "web_ack",
            lang=row.language,
            state=seen.state,
            posted=posted,
            ref=seen.page.ref,
            activation=seen.activation,
            name=row.name,
            acked=row.acked_at is not None,
            at=format_local_utc(when, zone, with_date=True, lang=row.language) if when else None,
        )
        return web.Response(text=html, content_type="text/html", headers=HEADERS)

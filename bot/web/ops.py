"""The operators' endpoint on `ICC_HEALTH_ADDR`: `/livez`, `/readyz` (and `/healthz`, its old
name) and `/metrics`.

Started with the process, before the leader lock, so that a standby answers too: `/livez` 200
while the process runs, `/readyz` 200 only on the active instance that syncs and reaches its
database, else 503 with the reason (`bot.runtime.health`). `/metrics` is Prometheus text (or
OpenMetrics, when asked) from the bot's own registry (`bot.runtime.metrics`).

Kept apart from the people's endpoint (`bot.web.server`, on `ICC_WEB_ADDR` behind
`ICC_PUBLIC_URL`): what it tells is for the monitoring network, not for the internet.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from bot.runtime.health import Readiness
from bot.runtime.metrics import Metrics
from bot.web.endpoint import Endpoint

log = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "no-store"}


class OpsServer(Endpoint):
    announce = "operations endpoint on http://%s:%d (/livez /readyz /metrics)"

    def __init__(
        self, host: str, port: int, *, ready: Callable[[], Awaitable[Readiness]], metrics: Metrics
    ) -> None:
        super().__init__(host, port)
        self._ready, self._metrics = ready, metrics

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/livez", self._live)
        app.router.add_get("/readyz", self._readiness)
        app.router.add_get("/healthz", self._readiness)  # the name deployments used before
        app.router.add_get("/metrics", make_aiohttp_handler(self._metrics.registry))
        return app

    async def _live(self, _request: web.Request) -> web.Response:
        return web.json_response({"live": True}, headers=NO_STORE)

    async def _readiness(self, _request: web.Request) -> web.Response:
        report = await self._ready()
        status = 200 if report.ready else 503
        return web.json_response(report.as_json(), status=status, headers=NO_STORE)

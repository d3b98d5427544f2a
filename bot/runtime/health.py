"""`GET /healthz` on ICC_HEALTH_ADDR: is the bot really able to do its job right now?

Healthy means: the sync loop has completed a sync recently, the database answers, and the
scheduler runs. A container orchestrator restarts the bot when this says 503.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthReport:
    checks: dict[str, bool]

    @property
    def healthy(self) -> bool:
        return all(self.checks.values())


HealthProbe = Callable[[], Awaitable[HealthReport]]


class HealthServer:
    """A deliberately tiny HTTP/1.0 responder: one route, no dependencies, local port only."""

    def __init__(
        self, host: str, port: int, probe: HealthProbe, metrics: Callable[[], bytes] | None = None
    ) -> None:
        self._host, self._port, self._probe, self._metrics = host, port, probe, metrics
        self._server: asyncio.Server | None = None
        self.port = port  # the bound port once started (port 0 picks a free one)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("health endpoint on http://%s:%d/healthz", self._host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            parts = request.decode("latin-1").split()
            path = parts[1] if len(parts) >= 2 and parts[0] == "GET" else ""
            content_type = "application/json"
            if path == "/healthz":
                report = await self._probe()
                status = "200 OK" if report.healthy else "503 Service Unavailable"
                payload = json.dumps({"healthy": report.healthy, "checks": report.checks}).encode()
            elif path == "/metrics" and self._metrics is not None:
                status, payload = "200 OK", self._metrics()
                content_type = "text/plain; version=0.0.4; charset=utf-8"
            else:
                status, payload = "404 Not Found", b'{"error": "try /healthz or /metrics"}'
            writer.write(
                f"HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

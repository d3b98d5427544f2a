"""An SMS gateway in the test process: an aiohttp server on a loopback port that keeps every send
request it is given (headers and body) and answers as a gateway does — or fails, on demand:
`failing = 503` answers that status, `stop()` and `start()` again on the same port play a gateway
that is down for a while. And the other direction: an inbound SMS signed as the gateway signs it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.support.mail import free_port


@dataclass(frozen=True)
class SmsRequest:
    """One send request the gateway was given."""

    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def to(self) -> str:
        return str(self.json["to"])

    @property
    def text(self) -> str:
        return str(self.json["text"])


class SmsGateway:
    """`url` takes send requests; `requests` keeps those answered 2xx, `refused` the others."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[SmsRequest] = []
        self.refused: list[SmsRequest] = []
        self.failing: int | None = None  # a status to answer with instead of accepting
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/messages"

    async def _send(self, request: web.Request) -> web.Response:
        seen = SmsRequest(dict(request.headers), await request.read())
        if self.failing is not None:
            self.refused.append(seen)
            return web.json_response({"error": "gateway overloaded"}, status=self.failing)
        self.requests.append(seen)
        return web.json_response({"id": f"gw-{len(self.requests)}", "status": "queued"})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/messages", self._send)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def to(self, number: str) -> list[SmsRequest]:
        return [r for r in self.requests if r.to == number]


def signed(secret: str, data: Any) -> tuple[bytes, dict[str, str]]:
    """`data` as the gateway delivers it: the JSON body, and the headers that sign it."""
    body = json.dumps(data).encode()
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-ICC-Signature": mac, "Content-Type": "application/json"}


def inbound(secret: str, sender: str, text: str, **more: Any) -> tuple[bytes, dict[str, str]]:
    """An inbound SMS as the gateway delivers it: the body, and the headers that sign it."""
    return signed(secret, {"from": sender, "text": text, **more})

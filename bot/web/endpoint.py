"""One aiohttp application served on a host and port, from `start` to `stop`: what the people's
endpoint (`bot.web.server`) and the operators' (`bot.web.ops`) share."""

from __future__ import annotations

import logging
from typing import ClassVar

from aiohttp import web


class Endpoint:
    """Serves `app()` on `host:port`. `port` is the bound port once started (port 0 picks a free
    one); a port that cannot be bound leaves nothing running."""

    announce: ClassVar[str] = "web endpoint on http://%s:%d"  # logged with the host and the port

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self.port = port

    def app(self) -> web.Application:
        raise NotImplementedError

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self._host, self._port).start()
        except BaseException:
            await self._runner.cleanup()
            self._runner = None
            raise
        addresses = self._runner.addresses
        self.port = addresses[0][1] if addresses else self._port
        logging.getLogger(type(self).__module__).info(self.announce, self._host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

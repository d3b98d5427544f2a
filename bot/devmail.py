"""The demo's mailbox: an SMTP server on loopback (aiosmtpd) that keeps what the bot mails, so
the e-mail fallback can be seen without any configuration: each message is logged in a line and
written to `data/demo/mail/<n>.eml`, and the demo's acknowledgement links point at the bot's
own web endpoint on loopback."""

from __future__ import annotations

import logging
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from bot.devserver import free_port

log = logging.getLogger(__name__)


class DemoMailbox:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.web_port = free_port()
        self._controller: Any = None

    def settings(self) -> dict[str, str]:
        """The variables that point the bot at this mailbox and its own web endpoint."""
        return {
            "ICC_SMTP_URL": f"smtp://127.0.0.1:{self.port}",
            "ICC_MAIL_FROM": "icc-bot@demo.localhost",
            "ICC_PUBLIC_URL": f"http://127.0.0.1:{self.web_port}",
            "ICC_WEB_ADDR": f"127.0.0.1:{self.web_port}",
            "ICC_FALLBACK_AFTER": "1m",
        }

    def start(self) -> None:
        from aiosmtpd.controller import Controller  # a demo dependency, not the bot's

        self.folder.mkdir(parents=True, exist_ok=True)
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = message_from_bytes(envelope.content, policy=policy.default)
        path = self.folder / f"{len(list(self.folder.glob('*.eml'))) + 1}.eml"
        path.write_bytes(envelope.content)
        log.info("demo mailbox: e-mail to %s — %s (%s)", mail["To"], mail["Subject"], path)
        return "250 Message accepted"

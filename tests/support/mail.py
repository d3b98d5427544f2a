"""A real SMTP server in the test process (aiosmtpd), keeping every message it is given.

It runs on its own thread, on a loopback port of its own; `stop` and `start` again on the same
port play an SMTP server that is down for a while. It counts its clients' connections (those
that greeted it: `connections` so far, `open` now), and `hang_up` plays a server dropping a
connection at a given moment of a message's transaction.
"""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from bot.devserver import free_port

HangUp = Literal["MAIL", "DATA"]
MAIL_FROM = "icc@crisis.example"


class SmtpSink:
    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self.connections = 0  # opened since the sink was made, across restarts
        self.open = 0
        self._hang_ups: list[HangUp] = []
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def env(self, **extra: str) -> dict[str, str]:
        """The bot's settings for mailing through this sink as MAIL_FROM, and `extra` ones."""
        return {"ICC_SMTP_URL": self.url, "ICC_MAIL_FROM": MAIL_FROM, **extra}

    def hang_up(self, at: HangUp) -> None:
        """The next time a client reaches `at`, drop its connection without an answer: at MAIL,
        before anything of the message (a server that closed an idle connection as the client
        reused it); at DATA, once the message is kept (a connection lost before the server's
        250, which the client cannot tell from a message never taken)."""
        self._hang_ups.append(at)

    def _hanging_up(self, at: HangUp, server: SMTP) -> bool:
        if at not in self._hang_ups:
            return False
        self._hang_ups.remove(at)
        assert server.transport is not None
        server.transport.close()
        return True

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self._hanging_up("MAIL", server):
            return "421 closing"  # never heard: the connection is gone
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        mail = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        self.messages.append(mail)
        if self._hanging_up("DATA", server):
            return "421 closing"
        return "250 Message accepted"

    def start(self) -> None:
        self._controller = _Counting(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


class _Counting(Controller):
    """aiosmtpd's controller, its clients' connections counted on the sink: those that said
    EHLO, not the controller's own probe, which only reads the greeting."""

    def factory(self) -> SMTP:
        sink: SmtpSink = self.handler

        class CountingSMTP(SMTP):
            greeted = False

            async def smtp_EHLO(self, hostname: str) -> None:
                if not self.greeted:
                    self.greeted = True
                    sink.connections += 1
                    sink.open += 1
                await super().smtp_EHLO(hostname)

            def connection_lost(self, exc: Exception | None) -> None:
                if self.greeted:
                    sink.open -= 1
                super().connection_lost(exc)

        return CountingSMTP(self.handler, **self.SMTP_kwargs)


def text_of(mail: EmailMessage) -> str:
    part = mail.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())

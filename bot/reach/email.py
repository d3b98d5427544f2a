"""E-mail through the operator's SMTP server (`ICC_SMTP_URL`, `ICC_MAIL_FROM`), with aiosmtplib.

`smtp://user:password@host:587` upgrades to TLS when the server offers STARTTLS; `smtps://…:465`
speaks TLS from the first byte. A send that fails raises `MailError` with the server's reason,
which the caller records: the evidence says why a person was not mailed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from urllib.parse import unquote, urlsplit

import aiosmtplib

from bot.reach.channel import ChannelError
from bot.render import Message
from bot.runtime.metrics import OFF, REFUSED, UNREACHABLE

SEND_TIMEOUT = 30.0  # seconds for one message, connection included


class MailError(ChannelError):
    """The SMTP server could not be reached, or refused the message."""


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool  # smtps://

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname or "localhost",
            port=parts.port or (465 if implicit else 587),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            implicit_tls=implicit,
        )


def compose(
    *, sender: str, to: str, subject: str, message: Message, message_id: str
) -> MIMEMultipart:
    """A text and HTML e-mail; `message_id` stable for what it carries (a page to a person), so
    that a retried send is recognisable as the same message.

    Built with the `email.mime` classes rather than `EmailMessage`, whose policy parses every
    header as it is set: measured in bench/ (bench_email), a fifth of the bot's cost per mail.
    """
    mail = MIMEMultipart("alternative")
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = encoded_subject(subject)
    mail["Message-ID"] = message_id
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to the bot
    mail.attach(MIMEText(message.body, "plain", "utf-8"))
    mail.attach(MIMEText(f"<html><body>{message.html}</body></html>", "html", "utf-8"))
    return mail


@functools.lru_cache(maxsize=1024)
def encoded_subject(subject: str) -> str:
    """The subject as RFC 2047 encoded words when it is not ASCII (`· APPEL`), made once per
    subject: a page's e-mails share a few subjects, and encoding one is a fifth of a
    millisecond (measured in bench/, bench_email: the largest part of the bot's own cost)."""
    return (
        subject if subject.isascii() else Header(subject, "utf-8", header_name="Subject").encode()
    )


def message_id(sender: str, local: str) -> str:
    """`<local@the sender's domain>`."""
    domain = sender.rpartition("@")[2] or "icc-bot.invalid"
    return f"<{local}@{domain}>"


class Mailer:
    """Sends through one SMTP server; `None` URL: e-mail is off."""

    def __init__(self, url: str | None, sender: str | None) -> None:
        self.server = SmtpServer.from_url(url) if url else None
        self.sender = sender or ""

    @property
    def enabled(self) -> bool:
        return self.server is not None

    async def send(self, mail: MIMEMultipart) -> None:
        server = self.server
        if server is None:
            raise MailError("e-mail is not configured (ICC_SMTP_URL)", retry=False, kind=OFF)
        try:
            await aiosmtplib.send(
                mail,
                hostname=server.host,
                port=server.port,
                username=server.username,
                password=server.password,
                use_tls=server.implicit_tls,
                start_tls=None if not server.implicit_tls else False,
                timeout=SEND_TIMEOUT,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Connection refused, lost or timed out are OSErrors (aiosmtplib's own ones too);
            # any other SMTPException is the server's answer.
            kind = UNREACHABLE if isinstance(exc, OSError) else REFUSED
            raise MailError(f"{type(exc).__name__}: {exc}", kind=kind) from None

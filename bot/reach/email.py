"""E-mail through the operator's SMTP server (`ICC_SMTP_URL`, `ICC_MAIL_FROM`), with aiosmtplib.

`smtp://user:password@host:587` upgrades to TLS when the server offers STARTTLS; `smtps://…:465`
speaks TLS from the first byte. A send that fails raises `MailError` with the server's reason,
which the caller records: the evidence says why a person was not mailed.

A burst of mail (a big page's fallback) goes over a few connections kept open for it
(`Mailer.connections`), not one connection a message: measured in bench/ (bench_email), the
connect, EHLO and QUIT of each message were most of the bot's cost on the wire.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import random
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.header import Header
from email.policy import compat32
from urllib.parse import unquote, urlsplit

import aiosmtplib

from bot.reach.channel import ChannelError
from bot.render import Message
from bot.runtime.metrics import OFF, REFUSED, UNREACHABLE

SEND_TIMEOUT = 30.0  # seconds for each step of a message (connecting, each command)
QUIT_TIMEOUT = 5.0  # seconds for the goodbye at the end of a burst; then the socket is closed
CLOSING = 421  # RFC 5321: the server is closing the connection ("service not available")


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
        server = MailServerUrl.parse(url, tls_scheme="smtps", tls_port=465, plain_port=587)
        return cls(server.host, server.port, server.username, server.password, server.tls)


@dataclass(frozen=True)
class MailServerUrl:
    """A mail server's URL (`smtps://user:password@host:port`, `imap://…/folder`), read once for
    the SMTP sender and the IMAP reader: the host (localhost when absent), the port (the
    scheme's usual one when absent), the credentials unquoted (None when absent), whether the
    scheme asks for TLS from the first byte, and the path unquoted, without its slashes."""

    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool
    path: str

    @classmethod
    def parse(cls, url: str, *, tls_scheme: str, tls_port: int, plain_port: int) -> MailServerUrl:
        parts = urlsplit(url)
        tls = parts.scheme == tls_scheme
        return cls(
            host=parts.hostname or "localhost",
            port=parts.port or (tls_port if tls else plain_port),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
            path=unquote(parts.path.strip("/")),
        )


@dataclass(frozen=True)
class Mail:
    """One e-mail as it goes on the wire: its recipient and its bytes, headers and body."""

    to: str
    content: bytes


def compose(*, sender: str, to: str, subject: str, message: Message, message_id: str) -> Mail:
    """A text and HTML e-mail (multipart/alternative, each part UTF-8 in base64); `message_id`
    stable for what it carries (a page to a person), so that a retried send is recognisable as
    the same message.

    Written straight to bytes, as Python's `email` generator writes the same message built from
    the compat32 MIME classes (`MIMEMultipart("alternative")` of two `MIMEText(…, "utf-8")`),
    byte for byte (tests/test_fallback.py checks it): the generator re-folds every header
    and compiles a regular expression for each message's boundary — measured in bench/
    (bench_email), about 1 ms a mail, most of the bot's own cost. It is safe to write directly
    because nothing in it needs the generator's judgement:
    - the bodies are base64, whose alphabet has no `-`, so no line of them can start a
      boundary line, whatever the boundary; each person's link is put into the text before it
      is encoded, never substituted into encoded bytes;
    - a header whose value is printable ASCII with no space, on a line of at most 78
      characters, is written as it is, which is what the generator's folding (`Header.encode`)
      leaves it; any other value (a long address, a non-ASCII one, the subject) is folded by
      the generator's own policy (`compat32.fold_binary`).
    Lines end with CRLF, as SMTP sends them.
    """
    boundary = "=" * 15 + f"{random.randrange(sys.maxsize):019d}" + "=="  # as the generator's
    html = f"<html><body>{message.html}</body></html>"
    return Mail(
        to,
        b"".join(
            (
                f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n'.encode(),
                b"MIME-Version: 1.0\r\n",
                _header("From", sender),
                _header("To", to),
                _subject_line(subject),
                _header("Message-ID", message_id),
                b"Auto-Submitted: auto-generated\r\n",  # RFC 3834: no auto-replies to the bot
                f"\r\n--{boundary}\r\n".encode(),
                _part("plain", message.body),
                f"\r\n--{boundary}\r\n".encode(),
                _part("html", html),
                f"\r\n--{boundary}--\r\n".encode(),
            )
        ),
    )


_SHORT_LINE = 78  # RFC 5322's recommended line length, the generator's fold width


def _header(name: str, value: str) -> bytes:
    """`name: value` as the compat32 generator writes it (see `compose`)."""
    if (
        len(name) + 2 + len(value) <= _SHORT_LINE
        and value.isascii()
        and value.isprintable()
        and " " not in value
    ):
        return f"{name}: {value}\r\n".encode("ascii")
    return _SMTP_COMPAT32.fold_binary(name, value)


_SMTP_COMPAT32 = compat32.clone(linesep="\r\n")


@functools.lru_cache(maxsize=1024)
def _subject_line(subject: str) -> bytes:
    """The Subject header, made once per subject: a page's e-mails share a few."""
    return _SMTP_COMPAT32.fold_binary("Subject", encoded_subject(subject))


def _part(subtype: str, text: str) -> bytes:
    """A text part in UTF-8 and base64, lines of 76 characters, as `MIMEText(text, subtype,
    "utf-8")` is written."""
    encoded = base64.encodebytes(text.encode("utf-8")).replace(b"\n", b"\r\n")
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\nMIME-Version: 1.0\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode() + encoded


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

    @asynccontextmanager
    async def connections(self) -> AsyncIterator[Connections]:
        """Connections to the server for a burst of mail: opened as the sends need them, so
        never more than there are sends at once; each reused from one message to the next;
        all closed (QUIT) when the burst is over."""
        connections = Connections(self.server, self.sender)
        try:
            yield connections
        finally:
            await connections.close()

    async def send(self, mail: Mail) -> None:
        """One message, on a connection of its own."""
        async with self.connections() as connections:
            await connections.send(mail)


class Connections:
    """The open connections of one burst (`Mailer.connections`), each carrying one message at
    a time.

    A connection that waited may have been closed by the server meanwhile (an idle timeout, a
    limit of messages a session, a restart): if it fails before the message began — at MAIL or
    RCPT, by a lost connection or a 421 reply —, the message goes on a new connection, once.
    Once DATA was sent nothing is tried again here: the server may have taken the message
    before the connection broke, and the recipient must not get it twice (the caller records
    the failure; its own retry, a minute later, carries the same Message-ID). A connection that
    failed in any way is closed, never reused."""

    def __init__(self, server: SmtpServer | None, sender: str) -> None:
        self._server = server
        self._sender = sender
        self._idle: list[aiosmtplib.SMTP] = []

    async def send(self, mail: Mail) -> None:
        if self._server is None:
            raise MailError("e-mail is not configured (ICC_SMTP_URL)", retry=False, kind=OFF)
        try:
            await self._send(self._server, mail)
        except ValueError as exc:  # aiosmtplib refuses an address it cannot put on a line
            raise MailError(f"{type(exc).__name__}: {exc}", retry=False) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Connection refused, lost or timed out are OSErrors (aiosmtplib's own ones too);
            # any other SMTPException is the server's answer.
            kind = UNREACHABLE if isinstance(exc, OSError) else REFUSED
            raise MailError(f"{type(exc).__name__}: {exc}", kind=kind) from None

    async def _send(self, server: SmtpServer, mail: Mail) -> None:
        client = self._reusable()
        if client is not None:
            try:
                await self._envelope(client, mail)
            except (aiosmtplib.SMTPException, OSError) as exc:
                client.close()
                if not _closed_by_server(exc):
                    raise
                client = None  # nothing of the message reached the server: a new connection
            except BaseException:
                client.close()
                raise
        if client is None:
            client = await self._open(server)
            try:
                await self._envelope(client, mail)
            except BaseException:
                client.close()
                raise
        try:
            await client.data(mail.content)
        except BaseException:
            client.close()  # never tried again: the server may have the message
            raise
        self._idle.append(client)

    def _reusable(self) -> aiosmtplib.SMTP | None:
        """An idle connection still open, the most recently used first (the likeliest to be
        alive); those the server closed meanwhile are dropped."""
        while self._idle:
            client = self._idle.pop()
            if client.is_connected:
                return client
            client.close()
        return None

    async def _open(self, server: SmtpServer) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
            hostname=server.host,
            port=server.port,
            username=server.username,
            password=server.password,
            use_tls=server.implicit_tls,
            start_tls=None if not server.implicit_tls else False,  # STARTTLS when offered
            timeout=SEND_TIMEOUT,
        )
        await client.connect()  # with TLS and the login as `server` says
        return client

    async def _envelope(self, client: aiosmtplib.SMTP, mail: Mail) -> None:
        """MAIL and RCPT: the message's transaction up to its data. SMTPUTF8 for an address
        that is not ASCII (the server refuses it if it cannot); SIZE when the server said it
        takes it, as aiosmtplib's `sendmail` does."""
        utf8 = not (self._sender.isascii() and mail.to.isascii())
        encoding = "utf-8" if utf8 else "ascii"
        options = [f"SIZE={len(mail.content)}"] if client.supports_extension("size") else []
        if utf8:
            options.append("SMTPUTF8")
        await client.mail(self._sender, options=options, encoding=encoding)
        await client.rcpt(mail.to, encoding=encoding)

    async def close(self) -> None:
        """QUIT every idle connection, side by side; one that does not answer is dropped."""
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_quit(client) for client in idle))


def _closed_by_server(exc: Exception) -> bool:
    """Whether a failure says the connection was gone, rather than the message refused."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code == CLOSING
    return isinstance(exc, ConnectionError)  # aiosmtplib's SMTPServerDisconnected is one


async def _quit(client: aiosmtplib.SMTP) -> None:
    try:
        await client.quit(timeout=QUIT_TIMEOUT)
    except (aiosmtplib.SMTPException, OSError):
        pass  # the burst is over either way
    finally:
        client.close()

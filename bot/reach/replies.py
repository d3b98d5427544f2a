"""Acknowledgements by e-mail reply, read from the operator's mailbox (`ICC_IMAP_URL`).

`imap://user:password@host:143/INBOX` (or `imaps://…:993/…`) is read every `POLL_EVERY` with
aioimaplib: each unseen message is read once and marked seen. A message from a contact's address
(`email` in the directory in force) whose subject or first line of text opens with an
acknowledgement word (`ACK`, `reçu`, `ontvangen`… as in Matrix, `bot.paging.acks`) acknowledges:
the page its words name (`ACK 12`, `ack PG-12`), else the page the message replies to (its
`In-Reply-To`, the bot's `<PG-12.handle@…>`, or `PG-12` in its subject), else the person's newest
open page. Anything else — not an acknowledgement, an unknown sender — changes nothing and is
logged (never its text: a reply may quote a TLP:RED page).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any

import aioimaplib

from bot.errors import UserError
from bot.paging.acks import read_ack
from bot.reach.email import MailServerUrl
from bot.timeutil import utcnow

if TYPE_CHECKING:
    from bot.directory.keeper import DirectoryKeeper
    from bot.paging.answers import Answers
    from bot.settings import Settings

log = logging.getLogger(__name__)

POLL_EVERY = timedelta(seconds=30)
IMAP_TIMEOUT = 30.0
PAGE_IN_SUBJECT = re.compile(r"\bPG-(\d+)\b")
PAGE_IN_MESSAGE_ID = re.compile(r"<PG-(\d+)\.")


@dataclass(frozen=True)
class Mailbox:
    host: str
    port: int
    username: str
    password: str
    folder: str
    tls: bool

    @classmethod
    def from_url(cls, url: str) -> Mailbox:
        at = MailServerUrl.parse(url, tls_scheme="imaps", tls_port=993, plain_port=143)
        return cls(
            at.host, at.port, at.username or "", at.password or "", at.path or "INBOX", at.tls
        )


@dataclass(frozen=True, kw_only=True)
class MailReplies:
    settings: Settings
    keeper: DirectoryKeeper
    answers: Answers

    async def run(self) -> None:
        """Read the mailbox until cancelled; a mailbox that cannot be read is tried again at
        the next poll."""
        while True:
            try:
                await self.poll_once()
            except (aioimaplib.Abort, aioimaplib.Error, OSError, TimeoutError) as exc:
                log.warning("mailbox not read (%s); trying again in %s", exc, POLL_EVERY)
            await asyncio.sleep(POLL_EVERY.total_seconds())

    async def poll_once(self) -> int:
        """Every unseen message read and marked seen; returns how many acknowledged."""
        if not self.settings.imap_url:
            return 0
        box = Mailbox.from_url(self.settings.imap_url)
        kind = aioimaplib.IMAP4_SSL if box.tls else aioimaplib.IMAP4
        imap = kind(host=box.host, port=box.port, timeout=IMAP_TIMEOUT)
        await imap.wait_hello_from_server()
        await _ok(imap.login(box.username, box.password))
        try:
            await _ok(imap.select(box.folder))
            found = await _ok(imap.search("UNSEEN"))
            acknowledged = 0
            for number in found.lines[0].decode().split():
                fetched = await _ok(imap.fetch(number, "(BODY.PEEK[])"))
                raw = next((bytes(x) for x in fetched.lines if isinstance(x, bytearray)), b"")
                acknowledged += await self.read(raw)
                await _ok(imap.store(number, "+FLAGS", "(\\Seen)"))
            return acknowledged
        finally:
            await imap.logout()

    async def read(self, raw: bytes) -> bool:
        """One message: whether it acknowledged a page."""
        mail = message_from_bytes(raw, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        address = parseaddr(str(mail["From"] or ""))[1].lower()
        contact = next(
            (
                c
                for c in self.keeper.current.contacts.values()
                if (c.email or "").lower() == address
            ),
            None,
        )
        if contact is None:
            log.info("e-mail from an address the directory does not know: ignored")
            return False
        subject = str(mail["Subject"] or "")
        ack = read_ack(_first_line(mail)) or read_ack(_without_reply_prefix(subject))
        if ack is None:
            log.info("e-mail from %s is not an acknowledgement: ignored", contact.handle)
            return False
        page = ack.page or _page_replied_to(mail, subject)
        try:
            await self.answers.answer(
                contact.key,
                ref=f"PG-{page}" if page else None,
                relates_to=None,
                how="email",
                event_id=f"mail-{mail['Message-ID'] or hashlib.sha256(raw).hexdigest()[:32]}",
                at=utcnow(),
            )
        except UserError as exc:  # not theirs, closed, none open: nothing to acknowledge
            log.info("e-mail from %s acknowledged nothing: %s", contact.handle, exc)
            return False
        log.info("PG-%s acknowledged by e-mail from %s", page or "(newest)", contact.handle)
        return True


async def _ok(call: Awaitable[Any]) -> Any:
    """The server's response to a command, which must be OK."""
    response = await call
    if response.result != "OK":
        raise aioimaplib.Error(f"{response.result} {response.lines[-1:]!r}")
    return response


def _first_line(mail: EmailMessage) -> str:
    """The first line the person wrote (not a quoted line, not an empty one)."""
    body = mail.get_body(preferencelist=("plain",))
    text = str(body.get_content()) if body is not None else ""
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith(">"):
            return line
    return ""


def _without_reply_prefix(subject: str) -> str:
    return re.sub(r"^\s*((re|aw|antw|tr|fwd?)\s*:\s*)+", "", subject, flags=re.IGNORECASE)


def _page_replied_to(mail: EmailMessage, subject: str) -> int | None:
    """The page a reply answers: the bot's Message-ID it names, else a `PG-n` in its subject."""
    for header in (mail["In-Reply-To"], mail["References"]):
        found = PAGE_IN_MESSAGE_ID.search(str(header or ""))
        if found:
            return int(found.group(1))
    found = PAGE_IN_SUBJECT.search(subject)
    return int(found.group(1)) if found else None

"""Acknowledgements by e-mail reply, read over IMAP from a real mailbox (a private Dovecot,
tests/support/imap.py), on the desk: a partner reached by e-mail answers it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from bot.storage import page_store
from tests.support.cast import desk_cast, paging_directory
from tests.support.desk import Desk, desk_running
from tests.support.imap import Dovecot
from tests.support.mail import SmtpSink
from tests.support.reach import fallen_back, paged
from tests.support.serving import serving

PARTNER_MAIL = "duty@ercc.example"


@pytest.fixture
def mailbox() -> Iterator[Dovecot]:
    with serving(Dovecot()) as server:
        yield server


@pytest.fixture
async def reply_desk(
    tmp_path: Path, database_url: str, smtp: SmtpSink, mailbox: Dovecot
) -> AsyncIterator[Desk]:
    directory = paging_directory(desk_cast())
    partner = next(c for c in directory["contacts"] if c["handle"] == "partner")
    partner.update(email=PARTNER_MAIL, channels=["matrix", "email"])
    env = smtp.env(ICC_IMAP_URL=mailbox.url)
    async with desk_running(tmp_path, database_url, contacts=directory, env=env) as desk:
        yield desk


def reply(sent: EmailMessage, text: str, *, sender: str = PARTNER_MAIL) -> bytes:
    """A reply as a mail client writes it: Re: subject, In-Reply-To, the quote below."""
    mail = EmailMessage()
    mail["From"] = f"ERCC Duty <{sender}>"
    mail["To"] = "icc@crisis.example"
    mail["Subject"] = f"Re: {sent['Subject']}"
    mail["In-Reply-To"] = str(sent["Message-ID"])
    mail["Message-ID"] = f"<reply-{abs(hash(text))}@ercc.example>"
    mail.set_content(f"{text}\n\n> the page, quoted\n")
    return bytes(mail)


async def acked_how(desk: Desk) -> str | None:
    async with desk.services.db.session() as session:
        [row] = await page_store.targets(session, 1)
    return row.ack_how if row.acked_at else None


async def test_a_reply_saying_received_acknowledges_the_page_it_answers(
    reply_desk: Desk, smtp: SmtpSink, mailbox: Dovecot
) -> None:
    desk = reply_desk
    room = await fallen_back(desk, "partner", "Are your teams deployable?")
    [sent] = smtp.to(PARTNER_MAIL)
    mailbox.deliver(reply(sent, "Bien reçu, on s'en occupe."))
    assert await desk.services.mail_replies.poll_once() == 1
    assert await acked_how(desk) == "email"
    await desk.settled()
    assert "(email)" in desk.board(room, "PG-1")
    assert mailbox.seen() == 1  # read once
    assert await desk.services.mail_replies.poll_once() == 0


async def test_anything_else_changes_nothing_and_is_read_once(
    reply_desk: Desk, smtp: SmtpSink, mailbox: Dovecot
) -> None:
    desk = reply_desk
    await fallen_back(desk, "partner", "Are your teams deployable?")
    [sent] = smtp.to(PARTNER_MAIL)
    mailbox.deliver(reply(sent, "We cannot come before 18:00."))
    mailbox.deliver(reply(sent, "ACK", sender="someone@elsewhere.example"))
    assert await desk.services.mail_replies.poll_once() == 0
    assert await acked_how(desk) is None
    assert mailbox.seen() == 2


async def test_an_ack_naming_the_page_in_the_subject_acknowledges_it(
    reply_desk: Desk, smtp: SmtpSink, mailbox: Dovecot
) -> None:
    desk = reply_desk
    await paged(desk, "partner", "Are your teams deployable?")
    mail = EmailMessage()
    mail["From"] = PARTNER_MAIL
    mail["Subject"] = "ACK PG-1"
    mail.set_content("")
    mailbox.deliver(bytes(mail))
    assert await desk.services.mail_replies.poll_once() == 1
    assert await acked_how(desk) == "email"

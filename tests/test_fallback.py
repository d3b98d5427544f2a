"""Reaching people outside Matrix: a page not acknowledged on Matrix goes on by e-mail, through a
real SMTP server in the test process (aiosmtpd), with a one-time acknowledgement link served by
the bot's real web endpoint on loopback — on the desk (Matrix recorded, timers fired on demand)."""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import AsyncIterator
from email import message_from_bytes, policy
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from bot.paging import send as send_module
from bot.reach.email import Mail, Mailer, MailError, compose, encoded_subject
from bot.reach.fallback import Fallback
from bot.render import Message
from bot.storage import page_store
from bot.storage.models import PageAttemptRow, TimerKind
from tests.support.bots import bot_running
from tests.support.cast import Cast, desk_cast, paging_directory, with_everyone
from tests.support.desk import Desk, desk_running
from tests.support.mail import SmtpSink, text_of
from tests.support.matrix_people import Person, body
from tests.support.processes import BotProcess
from tests.support.reach import fallen_back, paged, web_endpoint
from tests.support.reading import board_shows
from tests.support.rooms import activation_room, page_received

PUBLIC_URL = "https://icc.example"
PARTNER_MAIL = "duty@ercc.example"
DG_MAIL = "dg@ercc.example"
EMBASSY_MAIL = "crisis@embassy.example"


def reachable_directory(cast: Cast | None = None) -> dict[str, Any]:
    """The paging cast; the partner reachable by e-mail after Matrix, the DG by e-mail and SMS."""
    directory = paging_directory(cast or desk_cast())
    by_handle = {c["handle"]: c for c in directory["contacts"]}
    by_handle["partner"].update(email=PARTNER_MAIL, channels=["matrix", "email"])
    by_handle["dg"].update(email=DG_MAIL, phone="+32475123456", channels=["matrix", "email", "sms"])
    directory["organisations"].append({"key": "emb", "name": "Embassy", "country": "NL"})
    directory["contacts"].append(  # on no homeserver: reached by e-mail only
        {"handle": "embassy", "name": "Embassy desk", "organisation": "emb", "email": EMBASSY_MAIL}
    )
    return directory


@pytest.fixture
async def mail_desk(tmp_path: Path, database_url: str, smtp: SmtpSink) -> AsyncIterator[Desk]:
    env = smtp.env(ICC_PUBLIC_URL=PUBLIC_URL, ICC_FALLBACK_AFTER="5m")
    async with desk_running(tmp_path, database_url, contacts=reachable_directory(), env=env) as d:
        yield d


@pytest.fixture
async def web(mail_desk: Desk) -> AsyncIterator[str]:
    async with web_endpoint(mail_desk) as url:
        yield url


async def attempts(desk: Desk) -> list[PageAttemptRow]:
    async with desk.services.db.session() as session:
        rows = await page_store.targets(session, 1)
        return await page_store.attempts(session, [r.id for r in rows])


def link_path(mail_text: str) -> str:
    found = re.search(rf"{re.escape(PUBLIC_URL)}(/ack/\S+)", mail_text)
    assert found, mail_text
    return found.group(1)


async def test_a_page_not_acknowledged_on_matrix_goes_by_email_after_the_fallback_delay(
    mail_desk: Desk, smtp: SmtpSink
) -> None:
    desk = mail_desk
    await paged(desk, "partner", "Are your teams deployable?")
    [step] = await desk.armed(TimerKind.PAGE_FALLBACK)
    [escalation] = await desk.armed(TimerKind.PAGE_STEP)
    # Five minutes after the page went out, which is its 30-minute deadline less 25 minutes.
    assert abs((escalation.due_at - step.due_at).total_seconds() - 25 * 60) < 5
    assert not smtp.messages  # not before the delay
    await desk.fire(TimerKind.PAGE_FALLBACK)
    [mail] = smtp.to(PARTNER_MAIL)
    assert mail["Subject"] == "[TLP:AMBER] APPEL PG-1 · ICC-2026-001 Meuse flooding"
    assert mail["Message-ID"] == "<PG-1.partner@crisis.example>"
    text = text_of(mail)
    assert "Are your teams deployable?" in text
    assert "Merci d’accuser réception avant" in text  # the partner reads French
    assert link_path(text).startswith("/ack/")
    [attempt] = await attempts(desk)
    assert (attempt.channel, attempt.error) == ("email", None)
    assert attempt.sent_at is not None


async def test_someone_paged_directly_and_as_a_backup_gets_two_distinct_emails(
    mail_desk: Desk, smtp: SmtpSink
) -> None:
    desk = mail_desk
    await paged(desk, "partner,dg", "Convoy at the border?")
    await desk.fire(TimerKind.PAGE_STEP)  # the partner's deadline: the DG stands in for them
    await desk.fire(TimerKind.PAGE_FALLBACK)
    ids = sorted(str(m["Message-ID"]) for m in smtp.to(DG_MAIL))
    assert ids == ["<PG-1.dg.for-partner@crisis.example>", "<PG-1.dg@crisis.example>"]


async def test_an_ack_on_matrix_before_the_delay_stops_the_fallback(
    mail_desk: Desk, smtp: SmtpSink
) -> None:
    desk = mail_desk
    await paged(desk, "partner", "Are your teams deployable?")
    await desk.ask("partner", desk.dm_of("partner"), "!ack")
    await desk.fire(TimerKind.PAGE_FALLBACK)
    assert not smtp.messages
    assert not await attempts(desk)


async def test_a_failed_matrix_send_falls_back_at_once(
    mail_desk: Desk, smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(send_module, "SEND_RETRIES", (0.0, 0.0))
    desk = mail_desk
    room = await paged(desk, "partner", "First page")
    desk.messenger.failing.add(desk.dm_of("partner"))  # the homeserver refuses from now on
    await desk.say("member", room, "!icc page partner Second page --ack 30m")
    due_now = await desk.fire(TimerKind.PAGE_FALLBACK, key=":pg2:")
    assert due_now is not None
    assert [m["Subject"] for m in smtp.to(PARTNER_MAIL)] == [
        "[TLP:AMBER] APPEL PG-2 · ICC-2026-001 Meuse flooding"
    ]
    [step] = [t for t in await desk.armed(TimerKind.PAGE_FALLBACK) if ":pg1:" in t.key]
    assert step.due_at > step.created_at  # the first page, delivered, still waits its delay


async def test_channels_are_tried_in_the_contacts_order(mail_desk: Desk, smtp: SmtpSink) -> None:
    """Matrix, then e-mail, then SMS: each after the one before brought no answer; an SMS is
    recorded as not sent, with why (this desk has no SMS gateway)."""
    desk = mail_desk
    await fallen_back(desk, "dg", "Convoy at the border?")  # e-mail
    assert len(smtp.to(DG_MAIL)) == 1
    [sms_step] = await desk.armed(TimerKind.PAGE_FALLBACK)
    assert sms_step.payload["step"] == 2
    await desk.fire(TimerKind.PAGE_FALLBACK)  # SMS
    email, sms = await attempts(desk)
    assert (email.channel, email.error) == ("email", None)
    assert sms.channel == "sms"
    assert "no SMS gateway" in (sms.error or "")
    assert not await desk.armed(TimerKind.PAGE_FALLBACK)


async def test_the_link_shows_the_page_and_only_its_button_acknowledges(
    mail_desk: Desk, smtp: SmtpSink, web: str
) -> None:
    desk = mail_desk
    room = await fallen_back(desk, "partner", "Are your teams deployable?")
    path = link_path(text_of(smtp.to(PARTNER_MAIL)[0]))
    async with aiohttp.ClientSession() as http:
        async with http.get(web + path) as shown:  # a mail scanner or a preview opens it
            assert shown.status == 200
            page = await shown.text()
        assert "Accuser réception de PG-1" in page  # in the partner's language
        assert "Partner" in page
        assert '<form method="post">' in page
        assert "Content-Security-Policy" in shown.headers
        assert "1/1 acknowledged" not in desk.board(room, "PG-1")
        async with http.post(web + path) as pressed:
            assert pressed.status == 200
            assert "Merci : réception de PG-1 accusée le" in await pressed.text()
        await desk.settled()
        assert "✅ Partner" in desk.board(room, "PG-1")
        assert "(link)" in desk.board(room, "PG-1")
        async with http.post(web + path) as again:  # a second press changes nothing
            assert "réception de PG-1 accusée le" in await again.text()
        async with http.post(web + path.replace("/ack/1.", "/ack/2.")) as forged:
            assert forged.status == 404
        async with http.get(web + "/ack/%C2%B2.x") as odd:  # a digit int() refuses: `²`
            assert odd.status == 404
    await desk.fire(TimerKind.PAGE_FALLBACK)
    assert len(smtp.to(PARTNER_MAIL)) == 1


async def test_a_tlp_red_email_carries_no_content(mail_desk: Desk, smtp: SmtpSink) -> None:
    desk = mail_desk
    await fallen_back(desk, "partner", "Reactor 2 pressure rising", tlp="--tlp RED")
    [mail] = smtp.to(PARTNER_MAIL)
    text = text_of(mail)
    assert "Reactor" not in text
    assert "Reactor" not in str(mail["Subject"])
    assert "Meuse" not in str(mail["Subject"])
    assert "ouvrez votre messagerie sécurisée ou appelez la permanence du CCI" in text


async def test_an_smtp_server_that_is_down_is_retried_and_nothing_is_sent_twice(
    mail_desk: Desk, smtp: SmtpSink
) -> None:
    desk = mail_desk
    await paged(desk, "partner", "Are your teams deployable?")
    smtp.stop()
    await desk.fire(TimerKind.PAGE_FALLBACK)
    [failed] = await attempts(desk)
    assert failed.error
    assert failed.sent_at is None
    [retry] = await desk.armed(TimerKind.PAGE_FALLBACK)
    assert retry.payload["attempt"] == 2
    smtp.start()
    await desk.fire(TimerKind.PAGE_FALLBACK)
    await desk.fire(TimerKind.PAGE_FALLBACK)
    assert len(smtp.to(PARTNER_MAIL)) == 1
    assert [a.sent_at is not None for a in await attempts(desk)] == [False, True]


async def test_every_try_shows_on_the_board_in_pages_and_in_the_record(
    mail_desk: Desk, smtp: SmtpSink
) -> None:
    desk = mail_desk
    room = await fallen_back(desk, "partner", "Are your teams deployable?")
    assert "· email sent" in desk.board(room, "PG-1")
    listed = await desk.ask("member", room, "!icc pages")
    assert "· email sent" in listed.body
    await desk.say("lead", room, "!icc close Drill over")
    record = json.loads(desk.file(room, "ICC-2026-001-record.json"))
    [tried] = record["pages"][0]["people"][0]["other_channels"]
    assert (tried["channel"], tried["error"]) == ("email", None)
    assert tried["message_id"] == "<PG-1.partner@crisis.example>"


async def test_the_contact_card_says_how_a_person_is_reached(mail_desk: Desk) -> None:
    card = await mail_desk.ask("member", mail_desk.room("member"), "!icc contact dg")
    assert "E-mail: dg@ercc.example" in card.body
    assert "Phone: +32475123456" in card.body
    assert "Reached by: matrix → email → sms" in card.body


async def test_a_communication_check_reports_reachability_per_channel(
    mail_desk: Desk, smtp: SmtpSink
) -> None:
    desk = mail_desk
    room = desk.room("lead", "member")
    await desk.ask("lead", room, "!icc commscheck partner,dg --window 10m")
    await desk.fire(TimerKind.PAGE_FALLBACK)  # e-mail to both
    await desk.fire(TimerKind.PAGE_FALLBACK)  # the DG's SMS step
    assert len(smtp.messages) == 2
    [result] = [r for r in await desk.fire("check.close") if "Communication check" in r.body]
    assert "⚠ Partner (ERCC): no answer · email sent" in result.body
    assert "⚠ Dg (ERCC): no answer · email sent · sms failed" in result.body


async def test_a_fallback_step_outlives_a_restart_and_runs_once(
    tmp_path: Path, database_url: str, smtp: SmtpSink
) -> None:
    env = smtp.env()
    contacts = reachable_directory()
    async with desk_running(tmp_path, database_url, contacts=contacts, env=env) as desk:
        await paged(desk, "partner", "Are your teams deployable?")
    async with desk_running(tmp_path, database_url, contacts=contacts, env=env) as desk:
        assert await desk.armed(TimerKind.PAGE_FALLBACK)  # still there after the restart
        await desk.fire(TimerKind.PAGE_FALLBACK)
        await desk.fire(TimerKind.PAGE_FALLBACK)
    assert len(smtp.to(PARTNER_MAIL)) == 1
    assert "Accusez réception dans votre client Matrix" in text_of(smtp.to(PARTNER_MAIL)[0])


async def test_someone_not_on_matrix_is_paged_by_email_at_once(
    mail_desk: Desk, smtp: SmtpSink
) -> None:
    desk = mail_desk
    room = await paged(desk, "embassy", "Are Dutch nationals in the area?")
    assert not [
        r for r in desk.messenger.recorded if r.kind == "create_room" and r.details["direct"]
    ]
    [step] = await desk.armed(TimerKind.PAGE_FALLBACK)
    assert step.due_at <= step.created_at  # no Matrix page to wait for
    await desk.fire(TimerKind.PAGE_FALLBACK)
    [mail] = smtp.to(EMBASSY_MAIL)
    assert "Are Dutch nationals in the area?" in text_of(mail)
    assert "It reaches you by e-mail." in text_of(mail)  # not "… not acknowledged on Matrix"
    assert "Matrix" not in text_of(mail)
    assert "· email sent" in desk.board(room, "PG-1")
    assert "not delivered" not in desk.board(room, "PG-1")


async def test_someone_not_on_matrix_acknowledges_by_the_link_with_its_latency(
    mail_desk: Desk, smtp: SmtpSink, web: str
) -> None:
    desk = mail_desk
    room = await fallen_back(desk, "embassy", "Are Dutch nationals in the area?")
    path = link_path(text_of(smtp.to(EMBASSY_MAIL)[0]))
    async with aiohttp.ClientSession() as http, http.post(web + path) as pressed:
        assert pressed.status == 200
    await desk.settled()
    board = desk.board(room, "PG-1")
    assert "1/1 acknowledged" in board
    assert re.search(r"✅ Embassy desk .*\d+s \(link\)", board), board


async def test_an_input_request_leaves_out_who_is_not_on_matrix_and_says_so(
    mail_desk: Desk,
) -> None:
    desk = mail_desk
    room = await paged(desk, "partner", "Warm-up")
    sent = await desk.ask("member", room, "!icc ask partner,embassy Any convoys? --by 2h")
    assert "sent to 1 person" in sent.body
    assert "Not asked, not on Matrix: Embassy desk" in sent.body
    refused = await desk.ask("member", room, "!icc ask embassy Any convoys?")
    assert "not on Matrix, where inputs are answered; nothing was asked" in refused.body


# -- e-mail on the wire ---------------------------------------------------------------------------

SENDER = "icc@crisis.example"


@pytest.mark.parametrize(
    ("to", "subject", "message_id"),
    [
        (
            PARTNER_MAIL,
            "[TLP:AMBER] APPEL PG-1 · ICC-2026-001 Meuse flooding",
            "<PG-1.p@c.example>",
        ),
        (
            "x" * 70 + "@a-long-domain.example",
            "PAGE PG-2 " * 12,
            "<" + "PG-2.long" * 9 + "@c.example>",
        ),
        ("jörg.müller@ercc.example", "Ärger · 警報", "<PG-3.jörg@crisis.example>"),
        ("odd,but;valid=@ercc.example", "", "<PG-4.odd=handle@crisis.example>"),
    ],
)
def test_an_email_is_written_as_pythons_email_generator_writes_it(
    to: str, subject: str, message_id: str
) -> None:
    """`compose` writes the bytes itself, for speed; they are the `email` package's own for
    the same message, byte for byte, and read back as what was given."""
    text = "Bonjour,\nRépondez : https://icc.example/ack/12.AbC_d-9\n" + "Ligne de texte. " * 200
    message = Message(text, "<p>Bonjour, <a href='https://icc.example/ack/12'>ici</a></p>")
    ours = compose(sender=SENDER, to=to, subject=subject, message=message, message_id=message_id)
    boundary = re.search(rb'boundary="([^"]+)"', ours.content)
    assert boundary is not None
    reference = MIMEMultipart("alternative", boundary=boundary.group(1).decode())
    reference["From"] = SENDER
    reference["To"] = to
    reference["Subject"] = encoded_subject(subject)
    reference["Message-ID"] = message_id
    reference["Auto-Submitted"] = "auto-generated"
    reference.attach(MIMEText(message.body, "plain", "utf-8"))
    reference.attach(MIMEText(f"<html><body>{message.html}</body></html>", "html", "utf-8"))
    flat = io.BytesIO()
    BytesGenerator(flat, policy=policy.compat32.clone(linesep="\r\n")).flatten(reference)
    assert ours.content == flat.getvalue()
    read = message_from_bytes(ours.content, policy=policy.default)
    assert isinstance(read, EmailMessage)
    assert (read["Subject"], read["Message-ID"].strip()) == (subject, message_id)
    assert text_of(read) == text


def numbered(n: int, *, to: str = "", message_id: str = "") -> Mail:
    """Page n's e-mail, by default to duty-n@ercc.example as <PG-n.duty@crisis.example>."""
    return compose(
        sender=SENDER,
        to=to or f"duty-{n}@ercc.example",
        subject=f"PG-{n}",
        message=Message(f"Page {n}", f"<p>Page {n}</p>"),
        message_id=message_id or f"<PG-{n}.duty@crisis.example>",
    )


def ids(smtp: SmtpSink) -> list[str]:
    return [str(m["Message-ID"]) for m in smtp.messages]


async def test_the_emails_of_a_burst_share_a_connection_closed_after_it(smtp: SmtpSink) -> None:
    async with Mailer(smtp.url, SENDER).connections() as connections:
        for n in range(3):
            await connections.send(numbered(n))
        assert smtp.open == 1
    assert ids(smtp) == [f"<PG-{n}.duty@crisis.example>" for n in range(3)]
    assert smtp.connections == 1
    await until(lambda: smtp.open == 0)  # QUIT once the burst is over


async def test_an_address_that_is_not_ascii_goes_with_smtputf8(smtp: SmtpSink) -> None:
    mail = numbered(1, to="jörg@ercc.example", message_id="<PG-1.jorg@crisis.example>")
    await Mailer(smtp.url, SENDER).send(mail)
    assert ids(smtp) == ["<PG-1.jorg@crisis.example>"]


async def test_an_address_smtp_cannot_carry_fails_for_good(smtp: SmtpSink) -> None:
    """The directory takes `"` in an address; aiosmtplib refuses to put it on a command line."""
    mail = numbered(1, to='du"ty"x@ercc.example')
    with pytest.raises(MailError) as refused:
        await Mailer(smtp.url, SENDER).send(mail)
    assert not refused.value.retry
    assert not smtp.messages


async def test_a_connection_the_server_dropped_is_replaced_and_the_email_sent_once(
    smtp: SmtpSink,
) -> None:
    async with Mailer(smtp.url, SENDER).connections() as connections:
        await connections.send(numbered(1))
        smtp.hang_up(at="MAIL")  # as the idle connection is taken again
        await connections.send(numbered(2))
        smtp.stop()  # a restart between two messages
        smtp.start()
        await connections.send(numbered(3))
    assert ids(smtp) == [f"<PG-{n}.duty@crisis.example>" for n in (1, 2, 3)]
    assert smtp.connections == 3


async def test_an_email_the_server_may_have_taken_is_not_sent_again(smtp: SmtpSink) -> None:
    """The connection lost after the message's data went: the server may have it, so the send
    fails (the fallback records it) rather than trying again on another connection."""
    async with Mailer(smtp.url, SENDER).connections() as connections:
        smtp.hang_up(at="DATA")
        with pytest.raises(MailError, match="SMTPServerDisconnected"):
            await connections.send(numbered(1))
        await connections.send(numbered(2))  # on a new connection: a broken one is not reused
    assert ids(smtp) == ["<PG-1.duty@crisis.example>", "<PG-2.duty@crisis.example>"]
    assert smtp.connections == 2


# -- through Synapse -------------------------------------------------------------------------------


@pytest.mark.synapse
async def test_a_page_by_email_and_its_link_on_the_homeserver(
    paging_env: dict[str, str], people: dict[str, Person], cast: Cast, smtp: SmtpSink
) -> None:
    """The running bot: a page not acknowledged on Matrix within the fallback delay is mailed
    through a real SMTP server; the link's button, posted to the bot's own web endpoint,
    acknowledges it, and the board in the activation room says so."""
    config = Path(paging_env["ICC_CONFIG_DIR"]) / "directory.yaml"
    config.write_text(yaml.safe_dump(reachable_directory(cast)))
    env = paging_env | smtp.env(
        ICC_PUBLIC_URL=PUBLIC_URL, ICC_WEB_ADDR="127.0.0.1:0", ICC_FALLBACK_AFTER="1s"
    )
    async with bot_running(env) as running:
        _ref, room = await activation_room(people, cast)
        member = people["member"]
        await member.send(room, "!icc page partner Sandbags for Visé? --ack 10m")
        _dm, page = await page_received(people["partner"], cast, "Sandbags for Visé?")
        pg = re.search(r"PG-\d+", body(page)).group(0)  # type: ignore[union-attr]
        mails = await until(lambda: smtp.to(PARTNER_MAIL))
        assert pg in str(mails[0]["Subject"])
        assert running.app is not None
        assert running.app.web is not None
        link = f"http://127.0.0.1:{running.app.web.port}" + link_path(text_of(mails[0]))
        async with aiohttp.ClientSession() as http, http.post(link) as pressed:
            assert "Merci : réception de PG-1 accusée le" in await pressed.text()
        board = await board_shows(member, room, cast, pg, "1/1 acknowledged")
        assert "(link)" in board
        assert "email sent" in board


async def until(found: Any, timeout: float = 20) -> Any:
    """`found()` once it is truthy (waiting for what another thread or process delivers)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := found()):
        assert asyncio.get_running_loop().time() < deadline, "nothing arrived in time"
        await asyncio.sleep(0.1)
    return result


async def test_a_page_to_hundreds_keeps_its_board_within_one_event(
    tmp_path: Path, database_url: str, smtp: SmtpSink
) -> None:
    """300 people, each tried by e-mail too: the board would outgrow Matrix's 64 KiB; it lists
    who still has not answered and counts the rest, and its edits still go through (an ack
    after the e-mails went out; the e-mails alone change nothing such a board shows)."""
    directory = with_everyone(
        desk_cast().directory(),
        300,
        name="Partner number {n} of the exercise",
        email=lambda n: f"duty-{n:03d}@partners.example",
        channels=["matrix", "email"],
    )
    env = smtp.env()
    async with desk_running(tmp_path, database_url, contacts=directory, env=env) as desk:
        room = await fallen_back(desk, "everyone", "Are your teams deployable?")
        await desk.say("@p007:desk.test", desk.dm_of("@p007:desk.test"), "!icc ack")
        edits = [r for r in desk.messenger.recorded if r.kind == "edit" and r.room_id == room]
        assert edits
        assert all(r.error is None for r in edits)
        board = desk.board(room, "PG-1")
        assert "1/300 acknowledged" in board
        assert "!icc pages PG-1` lists everyone" in board


@pytest.mark.synapse
async def test_the_email_goes_once_across_a_kill_between_matrix_and_email(
    paging_env: dict[str, str],
    people: dict[str, Person],
    cast: Cast,
    smtp: SmtpSink,
    tmp_path: Path,
) -> None:
    """`icc-bot run` killed (SIGKILL) after the Matrix page and before the e-mail step: the
    restarted bot sends the e-mail once."""
    config = Path(paging_env["ICC_CONFIG_DIR"]) / "directory.yaml"
    config.write_text(yaml.safe_dump(reachable_directory(cast)))
    env = paging_env | smtp.env(ICC_FALLBACK_AFTER="8s")
    bot = BotProcess(env, tmp_path / "bot.log")
    await bot.start()
    try:
        _ref, room = await activation_room(people, cast)
        await people["member"].send(room, "!icc page partner Sandbags for Visé? --ack 10m")
        await page_received(people["partner"], cast, "Sandbags for Visé?")
        bot.kill()  # the e-mail step is armed, not yet due
        assert not smtp.to(PARTNER_MAIL)
        bot.launch()
        await until(lambda: smtp.to(PARTNER_MAIL), timeout=40)
        await asyncio.sleep(3)
        assert len(smtp.to(PARTNER_MAIL)) == 1
    finally:
        bot.stop()


async def test_a_page_marked_sent_always_has_its_email_step_armed(
    mail_desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page's sends are recorded in the same transaction as its e-mail steps: the bot stopped
    between the two (here, arming fails) leaves the page unmarked, so the command, run again
    at start-up, sends it again (under the same transaction IDs) and arms the step. A page
    marked sent with no e-mail step would never be e-mailed."""
    desk = mail_desk
    control = desk.room("lead", "member", "partner", "dg", "deputy")
    _ref, room, _ = await desk.open_activation("lead", control)
    arm = Fallback.arm

    async def stopped_here(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("the bot stopped between the sends and the e-mail step")

    monkeypatch.setattr(Fallback, "arm", stopped_here)
    content = {"msgtype": "m.text", "body": "!icc page partner Sandbags for Visé? --ack 30m"}
    item = desk.inbox_event("member", room, content)
    assert item is not None
    await desk.handle(item)
    async with desk.services.db.session() as session:
        [row] = await page_store.targets(session, 1)
    assert row.event_id is None  # not marked sent
    monkeypatch.setattr(Fallback, "arm", arm)
    await desk.runner.run(item)  # as a restart runs the command it had not finished
    [step] = await desk.armed(TimerKind.PAGE_FALLBACK)
    assert step.key.endswith("fb:partner:1.1")

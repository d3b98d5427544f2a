"""Reaching people by SMS: a page not acknowledged on Matrix nor by e-mail goes on by SMS, through
a gateway played by an aiohttp server in the test process (tests/support/sms.py), and an SMS
reply `ACK 1` delivered, signed, to the bot's real web endpoint acknowledges it — on the desk
(Matrix recorded, timers fired on demand)."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.paging.acks import read_ack
from bot.reach.gsm import ONE_GSM, is_gsm, length, one_sms, parts
from bot.storage import page_store
from bot.storage.models import PageAttemptRow, PageTargetRow, TimerKind
from bot.web.server import WebServer
from tests.support.cast import desk_cast, paging_directory
from tests.support.desk import Desk, desk_running
from tests.support.mail import SmtpSink, text_of
from tests.support.reach import fallen_back, paged, web_endpoint
from tests.support.sms import SmsGateway, inbound, signed

PUBLIC_URL = "https://icc.example"
TOKEN = "gw-token-0123456789"
SECRET = "inbound-signing-secret-0123"
PARTNER_PHONE = "+32475123456"
DG_PHONE = "+4915112345678"
LINK = re.compile(rf"{re.escape(PUBLIC_URL)}/ack/\S+")
ALERT = """\
name: {en: Flood alert}
pages:
  - targets: [partner, dg]
    text:
      en: Are your teams deployable?
      fr: Vos équipes sont-elles déployables ?
      de: Sind Ihre Teams einsatzbereit?
"""


def sms_directory() -> dict[str, Any]:
    """The paging cast; the partner (French) reachable by e-mail then SMS after Matrix, the DG
    (German) by SMS straight after Matrix."""
    directory = paging_directory(desk_cast())
    by_handle = {c["handle"]: c for c in directory["contacts"]}
    by_handle["partner"].update(
        email="duty@ercc.example", phone=PARTNER_PHONE, channels=["matrix", "email", "sms"]
    )
    by_handle["dg"].update(phone=DG_PHONE, channels=["matrix", "sms"])
    return directory


@pytest.fixture
async def gateway() -> AsyncIterator[SmsGateway]:
    gw = SmsGateway()
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


def sms_env(smtp: SmtpSink, gateway: SmsGateway) -> dict[str, str]:
    return smtp.env(
        ICC_PUBLIC_URL=PUBLIC_URL,
        ICC_SMS_URL=gateway.url,
        ICC_SMS_TOKEN=TOKEN,
        ICC_SMS_SECRET=SECRET,
    )


@pytest.fixture
async def sms_desk(
    tmp_path: Path, database_url: str, smtp: SmtpSink, gateway: SmsGateway
) -> AsyncIterator[Desk]:
    env = sms_env(smtp, gateway)
    playbooks = tmp_path / "config" / "playbooks"
    playbooks.mkdir(parents=True)
    (playbooks / "alert.yaml").write_text(ALERT)
    async with desk_running(tmp_path, database_url, contacts=sms_directory(), env=env) as desk:
        yield desk


@pytest.fixture
async def web(sms_desk: Desk) -> AsyncIterator[str]:
    """The bot's web endpoint, reading inbound SMS."""
    async with web_endpoint(sms_desk, sms=sms_desk.services.sms_replies) as url:
        yield url


async def sms_attempts(desk: Desk) -> list[PageAttemptRow]:
    async with desk.services.db.session() as session:
        rows = [r for p in (1, 2) for r in await page_store.targets(session, p)]
        tried = await page_store.attempts(session, [r.id for r in rows])
    return [a for a in tried if a.channel == "sms"]


async def rows_of(desk: Desk, page_id: int) -> list[PageTargetRow]:
    async with desk.services.db.session() as session:
        return await page_store.targets(session, page_id)


async def deliver(web: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """The gateway delivers an inbound SMS to the bot: the answer's status and text."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{web}/sms/inbound", data=body, headers=headers) as answer,
    ):
        return answer.status, await answer.text()


# -- out: the page by SMS ---------------------------------------------------------------------


async def test_matrix_then_email_then_sms_reaches_the_gateway_with_its_body_and_token(
    sms_desk: Desk, smtp: SmtpSink, gateway: SmsGateway
) -> None:
    desk = sms_desk
    # the fallback step: e-mail, after Matrix brought no answer
    await fallen_back(desk, "partner", "Are your teams deployable?")
    assert len(smtp.messages) == 1
    assert not gateway.requests  # not before e-mail has had its time
    await desk.fire(TimerKind.PAGE_FALLBACK)  # SMS
    [sent] = gateway.to(PARTNER_PHONE)
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["Content-Type"] == "application/json"
    [row] = await rows_of(desk, 1)
    assert sent.json["reference"] == sent.headers["Idempotency-Key"] == f"PG-1.{row.id}"
    text = sent.text
    assert text.startswith("APPEL CCI PG-1 TLP:AMBER : Are your teams deployable?")  # French
    assert "Accuser réception : répondez ACK 1 ou https://icc.example/ack/1." in text
    assert is_gsm(text)
    assert length(text) <= ONE_GSM
    [attempt] = await sms_attempts(desk)
    assert (attempt.error, attempt.message_id) == (None, "gw-1")  # the gateway's `id`
    assert attempt.sent_at is not None
    assert not await desk.armed(TimerKind.PAGE_FALLBACK)  # SMS was the last channel


async def test_a_playbook_page_goes_by_email_and_sms_in_each_persons_language(
    sms_desk: Desk, smtp: SmtpSink, gateway: SmsGateway
) -> None:
    desk = sms_desk
    lobby = desk.room("lead", "member")
    await desk.open_activation("lead", lobby, '!icc activate "Flood" --playbook alert')
    await desk.fire(TimerKind.PAGE_FALLBACK)  # the partner by e-mail, the DG by SMS
    [mail] = smtp.to("duty@ercc.example")
    assert "Vos équipes sont-elles déployables ?" in text_of(mail)
    [to_dg] = gateway.to(DG_PHONE)
    assert "Sind Ihre Teams einsatzbereit?" in to_dg.text
    await desk.fire(TimerKind.PAGE_FALLBACK)  # the partner by SMS
    [to_partner] = gateway.to(PARTNER_PHONE)
    assert "Vos équipes sont-elles déployables ?" in to_partner.text


async def test_a_long_page_is_shortened_to_one_sms_keeping_its_ref_and_link(
    sms_desk: Desk, gateway: SmsGateway
) -> None:
    desk = sms_desk
    words = (
        "Meuse flooding in Liège province: are your teams deployable within 6 hours? "
        "We need two boats, a liaison officer at the Namur crisis centre and your ETA."
    )
    await fallen_back(desk, "dg", words)
    [sent] = gateway.to(DG_PHONE)
    text = sent.text
    assert length(text) <= ONE_GSM
    assert text.startswith("ALARMIERUNG ICC PG-1 TLP:AMBER: Meuse flooding in Liège")  # German
    assert "..." in text
    assert "ETA" not in text
    assert "Empfang bestätigen: antworten Sie ACK 1 oder" in text
    assert LINK.search(text)


async def test_a_failing_gateway_is_recorded_and_retried_and_nothing_is_sent_twice(
    sms_desk: Desk, gateway: SmsGateway
) -> None:
    desk = sms_desk
    await paged(desk, "dg", "Convoy at the border?")
    await gateway.stop()  # down: nothing answers on its port
    await desk.fire(TimerKind.PAGE_FALLBACK)
    [retry] = await desk.armed(TimerKind.PAGE_FALLBACK)
    assert retry.payload["attempt"] == 2
    await gateway.start()
    await desk.fire(TimerKind.PAGE_FALLBACK)
    await desk.fire(TimerKind.PAGE_FALLBACK)  # whatever is left: nothing, once it was sent
    down, sent = await sms_attempts(desk)
    assert "Connect" in (down.error or "")  # aiohttp's ClientConnectorError, with the address
    assert down.sent_at is None
    assert (sent.error, sent.message_id) == (None, "gw-1")
    assert len(gateway.to(DG_PHONE)) == 1
    assert not await desk.armed(TimerKind.PAGE_FALLBACK)


async def test_a_gateway_that_keeps_refusing_is_given_up_after_three_tries(
    sms_desk: Desk, gateway: SmsGateway
) -> None:
    desk = sms_desk
    await paged(desk, "dg", "Convoy at the border?")
    gateway.failing = 503
    await desk.fire_all(TimerKind.PAGE_FALLBACK)
    tried = await sms_attempts(desk)
    assert [a.error for a in tried] == [
        'the gateway answered HTTP 503: {"error": "gateway overloaded"}'
    ] * 3
    assert [a.sent_at for a in tried] == [None, None, None]
    assert len(gateway.refused) == 3
    assert not gateway.requests


async def test_a_tlp_red_sms_carries_no_content(sms_desk: Desk, gateway: SmsGateway) -> None:
    desk = sms_desk
    # the fallback step: e-mail
    await fallen_back(desk, "partner", "Reactor 2 pressure rising at Tihange", tlp="--tlp RED")
    await desk.fire(TimerKind.PAGE_FALLBACK)  # SMS
    [sent] = gateway.to(PARTNER_PHONE)
    text = sent.text
    assert "Reactor" not in text
    assert "Tihange" not in text
    assert "Meuse" not in text
    assert "TLP" not in text
    assert text.startswith(
        "Message urgent du CCI PG-1 : ouvrez votre messagerie sécurisée ou appelez la "
        "permanence du CCI."
    )
    assert "répondez ACK 1" in text


async def test_an_exercise_sms_opens_with_the_exercise_marker(
    sms_desk: Desk, gateway: SmsGateway
) -> None:
    desk = sms_desk
    await fallen_back(desk, "dg", "Dam breach drill: are you ready?", tlp="--exercise")
    [sent] = gateway.to(DG_PHONE)
    assert sent.text.startswith("EXERCISE EXERCISE EXERCISE\nALARMIERUNG ICC PG-1 TLP:AMBER: Dam")
    # The marker leaves too little of one SMS for the words: two parts, the words kept whole.
    assert "Dam breach drill: are you ready?" in sent.text
    assert parts(sent.text) == 2


async def test_an_operators_request_template_fits_another_gateway(
    tmp_path: Path, database_url: str, smtp: SmtpSink, gateway: SmsGateway
) -> None:
    """`config/templates/sms_request.txt.j2` overrides the default body: a form, here."""
    templates = tmp_path / "config" / "templates"
    templates.mkdir(parents=True)
    (templates / "sms_request.txt.j2").write_text(
        "To={{ to | urlencode }}&From=ICC&Body={{ text | urlencode }}"
    )
    env = sms_env(smtp, gateway)
    async with desk_running(tmp_path, database_url, contacts=sms_directory(), env=env) as desk:
        await fallen_back(desk, "dg", "Convoy at the border?")
    [sent] = gateway.requests
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert sent.body.startswith(b"To=%2B4915112345678&From=ICC&Body=ALARMIERUNG%20ICC%20PG-1")


# -- in: acknowledgements by SMS ----------------------------------------------------------------


async def test_an_sms_ack_from_the_contacts_number_acknowledges(
    sms_desk: Desk, gateway: SmsGateway, web: str
) -> None:
    desk = sms_desk
    room = await fallen_back(desk, "dg", "Convoy at the border?")
    assert len(gateway.to(DG_PHONE)) == 1
    status, said = await deliver(web, *inbound(SECRET, DG_PHONE, "ACK 1"))
    assert (status, said) == (200, "acknowledged")
    await desk.settled()
    board = desk.board(room, "PG-1")
    assert "✅ Dg" in board
    assert "(sms)" in board
    [row] = await rows_of(desk, 1)
    assert row.ack_how == "sms"
    assert not await desk.armed(TimerKind.PAGE_STEP)  # the escalation stopped


async def test_a_bare_ack_by_sms_acknowledges_the_newest_open_page(
    sms_desk: Desk, web: str
) -> None:
    desk = sms_desk
    room = await paged(desk, "dg", "First page")
    await desk.say("member", room, "!icc page dg Second page --ack 30m")
    # Written as a phone may: the number without its plus, the word in the person's language.
    status, _ = await deliver(web, *inbound(SECRET, DG_PHONE.lstrip("+"), "Erhalten, danke"))
    assert status == 200
    [first], [second] = await rows_of(desk, 1), await rows_of(desk, 2)
    assert first.acked_at is None
    assert second.ack_how == "sms"


async def test_a_delivery_the_gateway_repeats_changes_nothing(sms_desk: Desk, web: str) -> None:
    """A gateway that got no answer in time delivers again: with its `id`, the second delivery
    of a bare ACK must not acknowledge the next page down."""
    desk = sms_desk
    room = await paged(desk, "dg", "First page")
    await desk.say("member", room, "!icc page dg Second page --ack 30m")
    delivery = inbound(SECRET, DG_PHONE, "ACK", id="gw-in-77")
    assert await deliver(web, *delivery) == (200, "acknowledged")
    assert await deliver(web, *delivery) == (200, "ignored")
    [first], [second] = await rows_of(desk, 1), await rows_of(desk, 2)
    assert (first.acked_at, second.ack_how) == (None, "sms")


async def test_an_sms_ack_from_a_shared_duty_phone_acknowledges_for_everyone_it_reached(
    tmp_path: Path, database_url: str, smtp: SmtpSink, gateway: SmsGateway
) -> None:
    directory = sms_directory()
    by_handle = {c["handle"]: c for c in directory["contacts"]}
    by_handle["deputy"].update(phone=DG_PHONE, channels=["matrix", "sms"])  # the same phone
    env = sms_env(smtp, gateway)
    async with desk_running(tmp_path, database_url, contacts=directory, env=env) as desk:
        services = desk.services
        server = WebServer(
            "127.0.0.1", 0, services.links, services.renderer, sms=services.sms_replies
        )
        await server.start()
        try:
            await paged(desk, "dg,deputy", "Convoy at the border?")
            answer = await deliver(
                f"http://127.0.0.1:{server.port}", *inbound(SECRET, DG_PHONE, "ACK 1")
            )
        finally:
            await server.stop()
        rows = await rows_of(desk, 1)
    assert answer == (200, "acknowledged")
    assert sorted((r.handle, r.ack_how) for r in rows) == [("deputy", "sms"), ("dg", "sms")]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-ICC-Signature": "0" * 64},
        {
            "X-ICC-Signature": inbound("another-secret-0123456", DG_PHONE, "ACK 1")[1][
                "X-ICC-Signature"
            ]
        },
    ],
    ids=["missing", "wrong", "another-key"],
)
async def test_an_sms_without_the_gateways_signature_is_refused_and_changes_nothing(
    sms_desk: Desk, web: str, headers: dict[str, str]
) -> None:
    desk = sms_desk
    room = await paged(desk, "dg", "Convoy at the border?")
    body, _signed = inbound(SECRET, DG_PHONE, "ACK 1")
    status, _ = await deliver(web, body, headers)
    assert status == 401
    [row] = await rows_of(desk, 1)
    assert row.acked_at is None
    assert "✅" not in desk.board(room, "PG-1")
    assert await desk.armed(TimerKind.PAGE_STEP)  # the escalation still stands


async def test_an_sms_from_an_unknown_number_or_not_an_ack_changes_nothing(
    sms_desk: Desk, web: str, caplog: pytest.LogCaptureFixture
) -> None:
    desk = sms_desk
    room = await paged(desk, "dg", "Convoy at the border?")
    with caplog.at_level(logging.INFO, logger="bot.reach.sms"):
        unknown = await deliver(web, *inbound(SECRET, "+32499887766", "ACK 1"))
        chatter = await deliver(web, *inbound(SECRET, DG_PHONE, "Who is this? Call me back"))
    assert unknown == (200, "ignored")
    assert chatter == (200, "ignored")
    [row] = await rows_of(desk, 1)
    assert row.acked_at is None
    assert "✅" not in desk.board(room, "PG-1")
    logged = caplog.text
    assert "unknown number (…766)" in logged
    assert "+32499887766" not in logged  # only the last digits of a number the cell does not know
    assert "from dg is not an acknowledgement" in logged
    assert "Who is this" not in logged  # never what an SMS says


async def test_a_signed_delivery_that_is_not_the_inbound_format_is_a_bad_request(
    sms_desk: Desk, web: str
) -> None:
    await paged(sms_desk, "dg", "Convoy at the border?")
    for data in ({"sender": DG_PHONE, "message": "ACK 1"}, ["ACK 1"], {"from": 32, "text": ""}):
        assert (await deliver(web, *signed(SECRET, data)))[0] == 400
    [row] = await rows_of(sms_desk, 1)
    assert row.acked_at is None


async def test_inbound_sms_have_no_route_when_they_are_not_read(
    tmp_path: Path, database_url: str, smtp: SmtpSink, gateway: SmsGateway
) -> None:
    env = sms_env(smtp, gateway)
    del env["ICC_SMS_SECRET"]
    async with desk_running(tmp_path, database_url, contacts=sms_directory(), env=env) as desk:
        await fallen_back(desk, "dg", "Convoy at the border?")
        services = desk.services
        server = WebServer("127.0.0.1", 0, services.links, services.renderer)
        await server.start()
        try:
            status, _ = await deliver(
                f"http://127.0.0.1:{server.port}", *inbound(SECRET, DG_PHONE, "ACK 1")
            )
        finally:
            await server.stop()
    assert status == 404
    [sent] = gateway.requests
    assert "ACK" not in sent.text  # no reply is asked for that nobody would read
    assert "Empfang bestätigen: https://icc.example/ack/" in sent.text


# -- reading and writing SMS ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "page"),
    [
        ("ACK 12", 12),
        ("ack pg-12", 12),
        ("Ack PG12", 12),
        ("ACK", None),
        ("reçu 3, on arrive", 3),
        ("Bien reçu", None),
        ("ontvangen 7", 7),
        ("Verstanden PG-4", 4),
        ("👍", None),
    ],
)
def test_what_reads_as_an_sms_acknowledgement(text: str, page: int | None) -> None:
    ack = read_ack(text)
    assert ack is not None
    assert ack.page == page


@pytest.mark.parametrize("text", ["", "Who is this?", "not received", "12 ACK", "NACK 12"])
def test_what_does_not_read_as_an_sms_acknowledgement(text: str) -> None:
    assert read_ack(text) is None


def test_an_sms_is_written_the_gsm_way_and_kept_to_one_message() -> None:
    def render(words: str) -> str:
        return f"ICC PAGE PG-9 TLP:AMBER: {words}\nAcknowledge: reply ACK 9 or {'x' * 50}"

    typographic = one_sms(render, "L’équipe « prête » — être à Liège…")
    assert 'L\'équipe " prete " - etre à Liège...' in typographic  # é and è are GSM, ê not
    assert is_gsm(typographic)
    long = one_sms(render, "word " * 60)
    assert parts(long) == 1
    assert length(long) <= ONE_GSM
    assert long.count("word") >= 10  # as much of the page as fits, not a stub
    cyrillic = one_sms(render, "Паводок на Маасе: готовы ли ваши команды? Нужны лодки. " * 3)
    assert "Паводок на Маасе" in cyrillic  # some of the words, in several parts, not none
    assert parts(cyrillic) > 1

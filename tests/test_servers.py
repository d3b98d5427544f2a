"""Unreachable homeservers (SPEC, "Delivered, seen, trusted"): a page to a person whose server
cannot be reached moves them to their next channel at once, and the activation room is told
which server is unreachable since when, once per outage — on the desk with a partner on another
server, and with two real Synapses federating on loopback, one stopped mid-page."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.settings import load_settings
from bot.storage.models import TimerKind
from bot.timeutil import utcnow
from tests.support.bots import RunningBot
from tests.support.cast import Account, Cast, desk_cast, paging_directory, people_of
from tests.support.desk import Desk
from tests.support.federation import FederatedPair
from tests.support.mail import SmtpSink
from tests.support.matrix_people import Person, body
from tests.support.reach import paged
from tests.support.reading import board_shows
from tests.support.rooms import DM, bot_joined, open_activation

REMOTE = "@partner:ercc.example"  # the partner's account on their own organisation's server
PARTNER_MAIL = "duty@ercc.example"
TOLD = "Homeserver ercc.example has been unreachable since"


def remote_partner_directory() -> dict[str, Any]:
    directory = paging_directory(desk_cast())
    partner = next(c for c in directory["contacts"] if c["handle"] == "partner")
    partner.update(matrix_id=REMOTE, email=PARTNER_MAIL, channels=["matrix", "email"])
    return directory


@pytest.fixture
async def remote_desk(tmp_path: Path, database_url: str, smtp: SmtpSink) -> AsyncIterator[Desk]:
    env = smtp.env()
    people = people_of(desk_cast()) | {"partner": REMOTE}
    desk = await Desk.open(tmp_path, database_url, people, remote_partner_directory(), env=env)
    try:
        yield desk
    finally:
        await desk.close()


def told(desk: Desk, room: str) -> list[str]:
    return [t for t in desk.messenger.texts(room) if TOLD in t]


async def test_a_server_silent_through_the_deadline_is_reported_and_its_person_mailed_at_once(
    remote_desk: Desk, smtp: SmtpSink
) -> None:
    desk = remote_desk
    room = await paged(desk, "partner", "Are your teams deployable?")
    desk.services.messenger.hearing.heard(desk.who("member"))  # the bot hears its own server
    await desk.fire(TimerKind.PAGE_STEP)  # the deadline: nothing from ercc.example since
    [message] = told(desk, room)
    assert "PG-1 goes on to its people's other channels" in message
    [step] = await desk.armed(TimerKind.PAGE_FALLBACK)
    assert step.due_at <= utcnow()  # brought forward from five minutes after the page
    await desk.fire(TimerKind.PAGE_FALLBACK)
    assert len(smtp.to(PARTNER_MAIL)) == 1


async def test_a_server_heard_from_after_the_page_is_not_reported(remote_desk: Desk) -> None:
    desk = remote_desk
    room = await paged(desk, "partner", "Are your teams deployable?")
    desk.services.messenger.hearing.heard("@someone-else:ercc.example")
    desk.services.messenger.hearing.heard(desk.who("member"))
    await desk.fire(TimerKind.PAGE_STEP)
    assert not told(desk, room)


async def test_silence_while_nothing_else_is_heard_is_not_an_outage(remote_desk: Desk) -> None:
    """The bot's own sync may be what is down: silence counts only while others are heard."""
    desk = remote_desk
    room = await paged(desk, "partner", "Are your teams deployable?")
    await desk.fire(TimerKind.PAGE_STEP)
    assert not told(desk, room)


async def test_one_outage_is_told_once_and_a_new_one_again(remote_desk: Desk) -> None:
    desk = remote_desk
    hearing = desk.services.messenger.hearing
    room = await paged(desk, "partner", "First")
    hearing.heard(desk.who("member"))
    await desk.fire(TimerKind.PAGE_STEP)
    await desk.say("member", room, "!icc page partner Second --ack 30m")
    hearing.heard(desk.who("member"))
    await desk.fire(TimerKind.PAGE_STEP, key=":pg2:")
    assert len(told(desk, room)) == 1  # the same outage
    hearing.heard(REMOTE)  # back
    await desk.say("member", room, "!icc page partner Third --ack 30m")
    hearing.heard(desk.who("member"))
    await desk.fire(TimerKind.PAGE_STEP, key=":pg3:")
    assert len(told(desk, room)) == 2


# -- two real homeservers ------------------------------------------------------------------------


@asynccontextmanager
async def bot_on_a(
    pair: FederatedPair, tmp_path: Path, database_url: str, smtp: SmtpSink
) -> AsyncIterator[tuple[dict[str, Person], Cast]]:
    """The bot, a lead and a member on A; the partner (e-mail after Matrix) on B."""
    accounts = {}
    for role in ("bot", "lead", "member", "dg", "stranger", "deputy"):
        accounts[role] = pair.a.new_user(role)
    accounts["partner"] = pair.b.new_user("partner")
    cast = Cast(
        *(
            Account(uid, pw, uid[1:].split(":")[0])
            for uid, pw in (
                accounts[r]
                for r in ("bot", "lead", "member", "partner", "dg", "stranger", "deputy")
            )
        )
    )
    directory = paging_directory(cast)
    partner = next(c for c in directory["contacts"] if c["handle"] == "partner")
    partner.update(email=PARTNER_MAIL, channels=["matrix", "email"])
    config = tmp_path / "config"
    config.mkdir()
    (config / "directory.yaml").write_text(yaml.safe_dump(directory))
    env = {
        "ICC_HOMESERVER": pair.a.base_url,
        "ICC_USER_ID": cast.bot.user_id,
        "ICC_PASSWORD": cast.bot.password,
        "ICC_DATABASE_URL": database_url,
        "ICC_DATA_DIR": str(tmp_path / "data"),
        "ICC_CONFIG_DIR": str(config),
        "ICC_E2EE": "false",
        "ICC_HEALTH_ADDR": "127.0.0.1:0",
        **smtp.env(ICC_FALLBACK_AFTER="10m"),  # the fallback: never on its own within the test
    }
    bot = RunningBot(load_settings(env))
    await bot.start()
    people: dict[str, Person] = {}
    try:
        for role, server in (("lead", pair.a), ("member", pair.a), ("partner", pair.b)):
            user_id, password = accounts[role]
            people[role] = await Person.login(server.base_url, user_id, password)
        yield people, cast
    finally:
        for person in people.values():
            await person.close()
        await bot.stop()


async def activation_on_a(people: dict[str, Person], cast: Cast) -> str:
    lead = people["lead"]
    control = await lead.create_room(invite=[cast.bot.user_id, cast.member.user_id])
    await lead.wait_for(control, bot_joined(cast.bot.user_id))
    _ref, room, _ = await open_activation(lead, control, cast, '!icc activate "Border convoy"')
    for person in (people["member"], lead):
        await person.wait_for_invite(room)
        await person.join(room)
    return room


async def until_said(person: Person, room: str, cast: Cast, text: str, timeout: float) -> str:
    found = await person.wait_for(
        room, lambda e: text in body(e), sender=cast.bot.user_id, timeout=timeout
    )
    return body(found)


async def mailed(smtp: SmtpSink, address: str, timeout: float = 15) -> list[Any]:
    """The mails to `address`, once there is one (the fallback step runs on its own)."""
    for _ in range(int(timeout * 10)):
        if found := smtp.to(address):
            return found
        await asyncio.sleep(0.1)
    return []


@pytest.mark.synapse
async def test_a_page_to_a_stopped_server_falls_back_at_once_and_the_room_is_told(
    federated_pair: FederatedPair, tmp_path: Path, database_url: str, smtp: SmtpSink
) -> None:
    async with bot_on_a(federated_pair, tmp_path, database_url, smtp) as (people, cast):
        room = await activation_on_a(people, cast)
        await asyncio.to_thread(federated_pair.b.stop)
        await people["member"].send(room, "!icc page partner Convoy at Aachen? --ack 10m")
        said = await until_said(people["member"], room, cast, "has been unreachable since", 60)
        assert federated_pair.b.server_name in said
        assert len(await mailed(smtp, PARTNER_MAIL)) == 1  # at once, not after the 10m delay


@pytest.mark.synapse
async def test_a_server_stopped_mid_page_is_reported_at_the_deadline(
    federated_pair: FederatedPair, tmp_path: Path, database_url: str, smtp: SmtpSink
) -> None:
    async with bot_on_a(federated_pair, tmp_path, database_url, smtp) as (people, cast):
        room = await activation_on_a(people, cast)
        member, partner = people["member"], people["partner"]
        await member.send(room, "!icc page partner Warm-up --ack 10m")
        # Their server joins the DM after the page went in: B holds the room, not always the
        # page (a client would backfill it); an ack in the DM answers the page all the same.
        dm = await partner.join_invited(DM, timeout=30)
        await partner.send(dm, "!icc ack")
        await board_shows(member, room, cast, "PG-1", "1/1 acknowledged")
        await asyncio.to_thread(federated_pair.b.stop)  # mid-activation, before the next page
        await member.send(
            room, f"!icc page partner Convoy at Aachen? --ack 8s #{secrets.token_hex(2)}"
        )
        await asyncio.sleep(4)
        await member.send(room, "still here")  # the bot keeps hearing its own server
        said = await until_said(member, room, cast, "has been unreachable since", 40)
        assert federated_pair.b.server_name in said
        assert "PG-2" in said
        assert len(await mailed(smtp, PARTNER_MAIL)) == 1  # brought forward to the deadline

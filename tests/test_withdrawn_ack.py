"""A ✅ on a page taken back (redacted) by the person who gave it (issue 16): the acknowledgement
stands, since the cell already relied on it, but the withdrawal is on the page's row, in the
logbook, on the board and in `pages`, and the bot says nothing to the person. A redaction of
anything else, or by anyone else, changes nothing.

The helpers below repeat a few of tests/test_paging.py's on purpose: a test module never imports
another (STYLE.md, 30)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from nio import Event, RoomRedactError

from bot.chat.dispatch import CommandRunner, Incoming
from bot.chat.registry import Registry, Via
from bot.commands import all_families
from bot.matrix.sync import SyncLoop
from bot.settings import load_settings
from bot.storage import activation_store, page_store
from bot.storage.models import InboxEvent, PageTargetRow
from bot.timeutil import utcnow
from tests.support.bots import RunningBot
from tests.support.cast import Cast
from tests.support.matrix_people import Person, body
from tests.support.reading import board, board_shows
from tests.support.rooms import DM

pytestmark = pytest.mark.synapse
WITHDRAWN = "reaction withdrawn"


# -- helpers --------------------------------------------------------------------------------------


async def activation_room(people: dict[str, Person], cast: Cast) -> tuple[str, str]:
    """(activation ref, activation room) opened by the lead, with the member and lead in it."""
    lead = people["lead"]
    others = [p for role, p in people.items() if role != "lead"]
    control = await lead.create_room(invite=[cast.bot.user_id] + [p.user_id for p in others])
    for person in others:
        await person.join(control)
    await lead.wait_for(
        control,
        lambda e: (
            e.get("type") == "m.room.member"
            and e.get("state_key") == cast.bot.user_id
            and e.get("content", {}).get("membership") == "join"
        ),
    )
    reply = await lead.ask(control, '!icc activate "Meuse flooding"', cast.bot.user_id)
    ref = re.search(r"Opened ((?:EX-)?ICC-\d{4}-\d{3})", body(reply))
    room = re.search(r"https://matrix.to/#/(!\S+)", body(reply))
    assert ref, body(reply)
    assert room, body(reply)
    for person in (people["member"], lead):
        await person.wait_for_invite(room.group(1))
        await person.join(room.group(1))
    return ref.group(1), room.group(1)


async def handled(bot: RunningBot, event_id: str) -> str:
    """How the bot finished with an event (its inbox row's status), once it has."""
    assert bot.app is not None
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        async with bot.app.services.db.session() as session:
            row = await session.get(InboxEvent, event_id)
        if row is not None and row.status != "pending":
            return row.status
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the bot never finished {event_id}")
        await asyncio.sleep(0.1)


async def redact(person: Person, room_id: str, event_id: str) -> str:
    response = await person.client.room_redact(room_id, event_id)
    if isinstance(response, RoomRedactError):
        raise RuntimeError(f"redact: {response.message}")
    return response.event_id


async def partner_row(bot: RunningBot, cast: Cast, ref: str) -> PageTargetRow:
    assert bot.app is not None
    async with bot.app.services.db.session() as session:
        rows = await page_store.targets(session, int(ref.split("-")[1]))
    return next(r for r in rows if r.matrix_id == cast.partner.user_id)


async def withdrawals_logged(bot: RunningBot, ref: str) -> list[Any]:
    assert bot.app is not None
    async with bot.app.services.db.session() as session:
        activation = await activation_store.by_ref(session, ref)
        assert activation is not None
        return await activation_store.log_entries(
            session,
            activation.id,  # type: ignore[arg-type]
            kinds=["system.ack_withdrawn"],
        )


@dataclass(frozen=True)
class Acked:
    """A page the partner acknowledged with ✅, and where everything about it is."""

    ref: str  # the activation
    room: str  # the activation room, where the board is
    pg: str
    dm: str  # the partner's DM room with the bot
    page_event: str  # the page in it
    reaction: str  # the partner's ✅ on it


async def acked_by_reaction(people: dict[str, Person], cast: Cast) -> Acked:
    """The member pages the partner, who reacts ✅; returns once the board counts the ack."""
    ref, room = await activation_room(people, cast)
    member, partner = people["member"], people["partner"]
    await member.send(room, "!icc page partner Confirm two liaison officers for Liège --ack 1h")
    dm = await partner.join_invited(DM)
    page = await partner.wait_for(
        dm, lambda e: "Confirm two liaison officers" in body(e), sender=cast.bot.user_id
    )
    pg = re.search(r"PG-\d+", body(page)).group(0)  # type: ignore[union-attr]
    reaction = await partner.react(dm, page["event_id"], "✅")
    await partner.wait_for(
        dm, lambda e: f"Accusé de réception de {pg} enregistré" in body(e), sender=cast.bot.user_id
    )
    await board_shows(member, room, cast, pg, "1/1 acknowledged")
    return Acked(ref, room, pg, dm, page["event_id"], reaction)


# -- on the real homeserver -----------------------------------------------------------------------


async def test_the_board_shows_a_withdrawn_reaction_and_still_counts_the_ack(
    paging_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    acked = await acked_by_reaction(people, cast)
    await redact(people["partner"], acked.dm, acked.reaction)
    shown = await board_shows(people["member"], acked.room, cast, acked.pg, WITHDRAWN)
    assert "1/1 acknowledged" in shown
    line = next(line for line in shown.splitlines() if "Partner" in line)
    assert line.startswith("✅ Partner (ERCC) ")
    assert re.search(r"\(reaction\) · reaction withdrawn \d\d:\d\d .*; the ack stands", line), line


async def test_a_withdrawn_reaction_is_recorded_on_the_row_and_in_the_logbook(
    paging_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    acked = await acked_by_reaction(people, cast)
    before = utcnow()
    redaction = await redact(people["partner"], acked.dm, acked.reaction)
    assert await handled(paging_bot, redaction) == "done"
    row = await partner_row(paging_bot, cast, acked.pg)
    assert row.acked_at is not None  # the ack stands
    assert row.ack_how == "reaction"
    assert row.ack_event_id == acked.reaction
    assert row.ack_withdrawn_at is not None
    assert before - timedelta(seconds=5) <= row.ack_withdrawn_at <= utcnow()
    (entry,) = await withdrawals_logged(paging_bot, acked.ref)
    assert entry.author == cast.partner.user_id
    assert re.fullmatch(
        rf"Partner withdrew their ✅ acknowledgement of {acked.pg} at \d\d:\d\d .*; "
        "the acknowledgement stands",
        entry.text,
    ), entry.text


async def test_pages_shows_a_withdrawn_reaction(
    paging_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    acked = await acked_by_reaction(people, cast)
    redaction = await redact(people["partner"], acked.dm, acked.reaction)
    await handled(paging_bot, redaction)
    listing = await people["member"].ask(acked.room, f"!icc pages {acked.pg}", cast.bot.user_id)
    line = next(line for line in body(listing).splitlines() if "Partner" in line)
    assert "✅ Partner (ERCC): delivered" in line
    assert "(reaction) · reaction withdrawn" in line
    assert WITHDRAWN in listing["content"]["formatted_body"]


async def test_the_bot_says_nothing_to_a_withdrawal(
    paging_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    acked = await acked_by_reaction(people, cast)
    partner = people["partner"]
    said_before = len(partner.events(acked.dm, cast.bot.user_id))
    redaction = await redact(partner, acked.dm, acked.reaction)
    await handled(paging_bot, redaction)
    await partner.quiet_period(1.5)
    assert len(partner.events(acked.dm, cast.bot.user_id)) == said_before


async def test_a_redaction_of_anything_else_changes_nothing(
    paging_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    """The partner's later 👍 on the page (an ack that changed nothing) and a message of theirs,
    each redacted: neither is the reaction that acknowledged the page."""
    acked = await acked_by_reaction(people, cast)
    partner = people["partner"]
    second = await partner.react(acked.dm, acked.page_event, "👍")
    await partner.wait_for(
        acked.dm, lambda e: "Vous avez déjà accusé réception" in body(e), sender=cast.bot.user_id
    )
    message = await partner.send(acked.dm, "merci, on s'en occupe")
    for event_id in (second, message):
        assert await handled(paging_bot, await redact(partner, acked.dm, event_id)) == "done"
    await people["member"].quiet_period(0.5)
    assert WITHDRAWN not in board(people["member"], acked.room, cast, acked.pg)
    assert (await partner_row(paging_bot, cast, acked.pg)).ack_withdrawn_at is None
    assert await withdrawals_logged(paging_bot, acked.ref) == []


async def test_a_moderator_removing_the_reaction_is_no_withdrawal(
    paging_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    """Only the person can take their ✅ back: the lead, made a moderator of the partner's DM
    room, removes it, and the page stays acknowledged with no withdrawal anywhere."""
    acked = await acked_by_reaction(people, cast)
    lead = people["lead"]
    assert paging_bot.app is not None
    messenger = paging_bot.app.services.messenger
    await messenger.invite(acked.dm, cast.lead.user_id)
    await messenger.set_power(acked.dm, cast.lead.user_id, 50)
    await lead.wait_for_invite(acked.dm)
    await lead.join(acked.dm)
    redaction = await redact(lead, acked.dm, acked.reaction)
    assert await handled(paging_bot, redaction) == "done"
    await people["member"].quiet_period(0.5)
    assert WITHDRAWN not in board(people["member"], acked.room, cast, acked.pg)
    row = await partner_row(paging_bot, cast, acked.pg)
    assert row.acked_at is not None
    assert row.ack_withdrawn_at is None
    assert await withdrawals_logged(paging_bot, acked.ref) == []


# -- reading redactions, without a homeserver -----------------------------------------------------


def runner() -> CommandRunner:
    """The dispatcher's reading of events; it needs no more of the bot than its settings and
    its commands."""
    settings = load_settings(
        {
            "ICC_HOMESERVER": "https://matrix.crisis.example",
            "ICC_USER_ID": "@bot:crisis.example",
            "ICC_PASSWORD": "a-real-secret-value",
            "ICC_STORE_KEY": "another-long-random-value",
        }
    )
    services = SimpleNamespace(settings=settings, registry=Registry(all_families()))
    return CommandRunner(services)  # type: ignore[arg-type]


def reader() -> SyncLoop:
    """The sync loop's event reading, with the bot's own judgement of what it wants."""
    return SyncLoop(
        SimpleNamespace(user_id="@bot:test"),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        wants=runner().wants,
        dispatch=lambda _: None,
        on_invite=lambda *_: asyncio.sleep(0),
        on_ready=lambda: asyncio.sleep(0),
    )


def redaction(**fields: Any) -> Any:
    """A redaction as nio parses it from the sync response."""
    source = {
        "type": "m.room.redaction",
        "event_id": "$the-redaction",
        "sender": "@partner:test",
        "origin_server_ts": int(utcnow().timestamp() * 1000),
        "content": {},
        **fields,
    }
    return Event.parse_event(source)


def test_a_redaction_reaches_the_inbox_with_what_it_removes_in_every_room_version() -> None:
    """Up to room version 10 the removed event is named at the top level (nio: a
    `RedactionEvent`); from 11 in the content (nio: a `BadEvent`, which its schema refuses)."""
    loop = reader()
    for event in (redaction(redacts="$old-style"), redaction(content={"redacts": "$new-style"})):
        item = loop._command_in("!dm:test", event, None, utcnow())
        assert item is not None
        assert item.event_type == "m.room.redaction"
        assert item.content["redacts"] in ("$old-style", "$new-style")
        assert runner().interpret(item.event_type, item.content) == Incoming(
            Via.REDACTION, item.content["redacts"]
        )


def test_a_redaction_that_names_no_event_is_ignored() -> None:
    loop = reader()
    for event in (
        redaction(content={"redacts": 5}),
        redaction(content={"redacts": "$two words"}),
        redaction(content={"redacts": ["$a"]}),
        redaction(content={}),
        redaction(content="boom"),
    ):
        assert loop._command_in("!dm:test", event, None, utcnow()) is None

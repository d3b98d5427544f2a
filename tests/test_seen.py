"""Seen (SPEC, "Delivered, seen, trusted"): a page's DM is seen when the person's public read
receipt at or after it arrives; a private receipt tells the bot nothing; seen is shown beside
delivered and acknowledged and is never an acknowledgement."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta

import pytest

from bot.matrix.sync import ReadReceipt
from bot.storage import page_store
from bot.timeutil import utcnow
from tests.support.bots import RunningBot
from tests.support.cast import Cast
from tests.support.desk import Desk
from tests.support.matrix_people import Person, body
from tests.support.reach import paged
from tests.support.rooms import activation_room, page_received


async def partner_row(desk: Desk):  # type: ignore[no-untyped-def]
    async with desk.services.db.session() as session:
        [row] = await page_store.targets(session, 1)
    return row


async def test_a_receipt_after_the_page_marks_it_seen_on_the_board_and_in_the_record(
    paging_desk: Desk,
) -> None:
    desk = paging_desk
    room = await paged(desk, "partner", "Are your teams deployable?")
    row = await partner_row(desk)
    assert row.delivered_at is not None
    read_at = utcnow()
    assert read_at >= row.delivered_at
    receipt = ReadReceipt(desk.who("partner"), row.event_id or "", read_at)
    await desk.services.seen.on_receipts(desk.dm_of("partner"), [receipt])
    assert (await partner_row(desk)).seen_at == read_at
    await desk.settled()
    assert "· seen" in desk.board(room, "PG-1")
    assert "0/1 acknowledged" in desk.board(room, "PG-1")  # seen is not an acknowledgement
    await desk.say("lead", room, "!icc close Drill over")
    record = json.loads(desk.file(room, "ICC-2026-001-record.json"))
    assert record["pages"][0]["people"][0]["seen_at"] is not None


async def test_a_receipt_from_before_the_page_does_not_mark_it_seen(paging_desk: Desk) -> None:
    desk = paging_desk
    await paged(desk, "partner", "Are your teams deployable?")
    row = await partner_row(desk)
    assert row.delivered_at is not None
    earlier = ReadReceipt(desk.who("partner"), "$older", row.delivered_at - timedelta(minutes=5))
    await desk.services.seen.on_receipts(desk.dm_of("partner"), [earlier])
    assert (await partner_row(desk)).seen_at is None


async def test_someone_elses_receipt_in_the_room_marks_nothing(paging_desk: Desk) -> None:
    desk = paging_desk
    await paged(desk, "partner", "Are your teams deployable?")
    row = await partner_row(desk)
    assert row.delivered_at is not None
    other = ReadReceipt(desk.who("dg"), "$x", row.delivered_at + timedelta(seconds=5))
    await desk.services.seen.on_receipts(desk.dm_of("partner"), [other])
    assert (await partner_row(desk)).seen_at is None


# -- through Synapse -------------------------------------------------------------------------------


async def pages_listing(member: Person, room: str, cast: Cast, expect: str | None) -> str:
    """`pages` asked until its answer contains `expect` (or once, if None)."""
    for _ in range(30):
        said = await member.ask(room, "!icc pages", cast.bot.user_id)
        if expect is None or expect in body(said):
            return body(said)
        await asyncio.sleep(0.5)
    raise AssertionError(f"`pages` never said {expect!r}: {body(said)}")


async def partner_paged(people: dict[str, Person], cast: Cast) -> tuple[str, str, dict]:
    """A page to the partner in a new activation: (its room, the partner's DM, the page)."""
    _ref, room = await activation_room(people, cast)
    await people["member"].send(room, "!icc page partner Sandbags for Visé? --ack 10m")
    dm, page = await page_received(people["partner"], cast, "Sandbags for Visé?")
    return room, dm, page


@pytest.mark.synapse
async def test_a_public_read_receipt_marks_the_page_seen(
    paging_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    room, dm, page = await partner_paged(people, cast)
    assert "seen" not in await pages_listing(people["member"], room, cast, None)
    response = await people["partner"].client.room_read_markers(
        dm, fully_read_event=page["event_id"], read_event=page["event_id"]
    )
    assert not hasattr(response, "status_code") or response.status_code is None, response
    listed = await pages_listing(people["member"], room, cast, "· seen")
    assert re.search(r"⏳ Partner \(ERCC\): delivered .* · seen .* · until", listed), listed


@pytest.mark.synapse
async def test_a_private_read_receipt_leaves_seen_unknown(
    paging_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    room, dm, page = await partner_paged(people, cast)
    partner = people["partner"]
    await partner.client.room_read_markers(
        dm, fully_read_event=page["event_id"], private_read_event=page["event_id"]
    )
    # Whatever the bot's sync carries from the partner after this, it has read: a reply to help.
    await partner.ask(dm, "!icc help", cast.bot.user_id)
    listed = await pages_listing(people["member"], room, cast, None)
    assert "Partner" in listed
    assert "seen" not in listed

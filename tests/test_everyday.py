"""Everyday use on the real homeserver: what a duty officer sees in room lists and reads in the
answers (issue: everyday use)."""

from __future__ import annotations

import re

import pytest

from tests.support.bots import RunningBot
from tests.support.cast import Cast
from tests.support.matrix_people import Person, body
from tests.support.rooms import activation_room, page_received


async def labels(person: Person, room_id: str) -> tuple[str, str]:
    """The room's name and topic as the homeserver holds them."""
    found = []
    for event_type, key in (("m.room.name", "name"), ("m.room.topic", "topic")):
        response = await person.client.room_get_state_event(room_id, event_type)
        found.append(response.content[key])  # type: ignore[union-attr]
    return found[0], found[1]


@pytest.mark.synapse
async def test_the_room_shows_the_level_and_that_the_activation_closed(
    bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    ref, room = await activation_room(people, cast, "Port of Antwerp fire")
    lead = people["lead"]
    name, topic = await labels(lead, room)
    assert name == f"[ICC] {ref} Port of Antwerp fire"
    assert f"{ref} · TLP:AMBER · level monitoring" in topic

    assert "full" in body(await lead.ask(room, "!icc level full", cast.bot.user_id))
    assert "level full" in (await labels(lead, room))[1]

    await lead.ask(room, "!icc close Fire out", cast.bot.user_id)
    name, topic = await labels(lead, room)
    assert name == f"[closed] [ICC] {ref} Port of Antwerp fire"
    assert f"{ref} · TLP:AMBER · CLOSED " in topic


@pytest.mark.synapse
async def test_a_morning_of_everyday_use_on_the_homeserver(
    paging_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    """Options of several words, a two-line page with its formatting, an edited input, and the
    advice note readable in the room, as a real client sends and receives them."""
    ref, room = await activation_room(people, cast, "Meuse flooding")
    member, partner = people["member"], people["partner"]
    bot = cast.bot.user_id

    await member.send(room, "!icc page partner Meuse at **5.2 m**.\nConfirm liaison officers.")
    dm, page = await page_received(partner, cast, "Confirm liaison officers")
    assert "Meuse at **5.2 m**.\nConfirm liaison officers." in body(page)
    assert (
        "<strong>5.2 m</strong>.<br />\nConfirm liaison officers."
        in page["content"]["formatted_body"]
    )

    asked = await member.ask(room, "!icc ask partner Close the Meuse to shipping? --by 2h", bot)
    assert "RQ-1" in body(asked)
    original = await partner.send(dm, "!icc input RQ-1 Oui, fermer")
    await partner.wait_for_reply(dm, original, bot)
    edit = {
        "m.new_content": {"msgtype": "m.text", "body": "!icc input RQ-1 Non : Liège seulement"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": original},
    }
    edited = await partner.send(dm, "* !icc input RQ-1 Non : Liège seulement", **edit)
    assert "(version 2)" in body(await partner.wait_for_reply(dm, edited, bot))

    posted = await member.ask(room, "!icc advice", bot)
    assert "is above, with its files" in body(posted)
    note = await member.wait_for(room, lambda e: "## Recommendation" in body(e), sender=bot)
    assert "Non : Liège seulement" in body(note)
    assert note["content"]["msgtype"] == "m.notice"

    await member.send(room, "!icc round now --with lead --agenda Pumps in Namur; roads")
    prompt = await member.wait_for(room, lambda e: "COORDINATION ROUND" in body(e), sender=bot)
    assert "1. Pumps in Namur" in body(prompt)
    assert "2. roads" in body(prompt)
    assert ref in body(prompt)


@pytest.mark.synapse
async def test_an_activation_read_after_its_close_on_the_homeserver(
    paging_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    """A reminder that says what happens next, two sitreps that each stand alone, a running
    round summed up by close, and after close: a late ack answered in its language, a status
    that reads closed."""
    ref, room = await activation_room(people, cast, "Dyke watch")
    lead, member, partner = people["lead"], people["member"], people["partner"]
    bot = cast.bot.user_id

    await member.send(room, "!icc page partner Dyke at Visé holding? --ack 3s")
    dm, page = await page_received(partner, cast, "Dyke at Visé")
    pg = re.search(r"PG-\d+", body(page)).group(0)  # type: ignore[union-attr]
    reminder = await partner.wait_for(dm, lambda e: "RAPPEL" in body(e), sender=bot, timeout=30)
    assert "votre suppléant éventuel est appelé lui aussi" in body(reminder)

    await member.ask(room, "!icc log Close the towpath --decision", bot)
    first = await member.ask(room, "!icc sitrep", bot)
    assert re.search(r"• NEW #\d+ .* Close the towpath", body(first))
    await member.ask(room, "!icc log Sandbags to Visé --decision", bot)
    second = await member.ask(room, "!icc sitrep", bot)
    assert re.search(r"• #\d+ .* Close the towpath", body(second))  # still in force
    assert re.search(r"• NEW #\d+ .* Sandbags to Visé", body(second))

    await member.send(room, "!icc round now --with member,lead --agenda Dykes; roads")
    await member.wait_for(room, lambda e: "COORDINATION ROUND" in body(e), sender=bot)
    await member.ask(room, "!icc update Dyke holding at Visé", bot)
    await lead.ask(room, "!icc close Water receding", bot)
    summary = await member.wait_for(room, lambda e: "#1 closed" in body(e), sender=bot)
    assert "Member: Dyke holding at Visé" in body(summary)

    late = await partner.ask(dm, f"!ack {pg}", bot)
    assert f"relève de l’activation {ref}, clôturée le" in body(late)
    assert body(late).splitlines()[0] == f"TLP:AMBER · {ref}"
    status = await member.ask(room, f"!icc status {ref}", bot)
    assert "Status: closed" in body(status)
    assert "waiting:" not in body(status)  # a closed activation waits for nobody

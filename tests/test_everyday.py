"""Everyday use on the real homeserver: what a duty officer sees in room lists and reads in the
answers (issue: everyday use)."""

from __future__ import annotations

import pytest

from tests.conftest import Cast, RunningBot
from tests.matrix_people import Person, body
from tests.support.rooms import activation_room


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

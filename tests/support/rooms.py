"""Rooms the tests meet the bot in: a shared room, an activation room, a partner's DM."""

from __future__ import annotations

import re

from tests.support.cast import Cast
from tests.support.matrix_people import Person, body

DM = "ICC liaison"  # the name of the bot's direct-message rooms


def bot_joined(bot_id: str, membership: str = "join"):  # type: ignore[no-untyped-def]
    """A check for the event of the bot's membership becoming `membership`."""

    def check(event: dict) -> bool:
        return (
            event.get("type") == "m.room.member"
            and event.get("state_key") == bot_id
            and event.get("content", {}).get("membership") == membership
        )

    return check


def bot_left(bot_id: str):  # type: ignore[no-untyped-def]
    return bot_joined(bot_id, "leave")


async def shared_room(people: dict[str, Person], cast: Cast, *, with_stranger: bool = False) -> str:
    """A room made by the lead with the bot and every test person in it; the stranger only
    when asked (where one sits, answers with activation content are refused)."""
    lead = people["lead"]
    left_out = {"lead"} if with_stranger else {"lead", "stranger"}
    others = [p for role, p in people.items() if role not in left_out]
    room_id = await lead.create_room(invite=[cast.bot.user_id] + [p.user_id for p in others])
    for person in others:
        await person.join(room_id)
    await lead.wait_for(room_id, bot_joined(cast.bot.user_id))
    return room_id


async def open_activation(
    person: Person, room_id: str, cast: Cast, command: str
) -> tuple[str, str, dict]:
    """Send `activate …`; return (ref, activation room ID, the reply)."""
    reply = await person.ask(room_id, command, cast.bot.user_id)
    found = re.search(r"Opened ((?:EX-)?ICC-\d{4}-\d{3})", body(reply))
    assert found, body(reply)
    link = re.search(r"https://matrix.to/#/(!\S+)", body(reply))
    assert link, body(reply)
    return found.group(1), link.group(1), reply


async def activation_room(
    people: dict[str, Person], cast: Cast, title: str = "Meuse flooding"
) -> tuple[str, str]:
    control = await shared_room(people, cast)
    ref, room, _ = await open_activation(people["lead"], control, cast, f'!icc activate "{title}"')
    for person in (people["member"], people["lead"]):
        await person.wait_for_invite(room)
        await person.join(room)
    return ref, room


def pages_in(person: Person, room_id: str, cast: Cast, ref: str) -> list[dict]:
    return [
        e
        for e in person.events(room_id, cast.bot.user_id)
        if e["content"].get("msgtype") == "m.text" and ref in body(e)
    ]


async def page_received(
    person: Person, cast: Cast, ref: str, dm: str | None = None, timeout: float = 15
) -> tuple[str, dict]:
    dm = dm or await person.join_invited(DM, timeout=timeout)
    event = await person.wait_for(
        dm,
        lambda e: e["content"].get("msgtype") == "m.text" and ref in body(e),
        sender=cast.bot.user_id,
        timeout=timeout,
    )
    return dm, event


def in_thread(root: dict) -> dict:
    """The content fields of a reply in `root`'s thread, as Element sends it."""
    relation = {
        "rel_type": "m.thread",
        "event_id": root["event_id"],
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": root["event_id"]},
    }
    return {"m.relates_to": relation}


def replacing(event_id: str, text: str) -> dict:
    """The content fields of an edit of `event_id` to `text`, as Element sends it (the body
    starts with `* `)."""
    return {
        "m.new_content": {"msgtype": "m.text", "body": text},
        "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
    }


async def escalated_once(
    partner: Person, partner_dm: str, backup: Person, cast: Cast, ref: str
) -> None:
    """The escalation of `ref` happened, once: the partner reminded, their backup paged, and
    neither paged again after (a restart or a takeover ran the step once)."""
    await partner.wait_for(
        partner_dm, lambda e: "RAPPEL" in body(e), sender=cast.bot.user_id, timeout=30
    )
    backup_dm, _ = await page_received(backup, cast, ref)
    await partner.quiet_period(2)
    await backup.quiet_period(0.5)
    assert len(pages_in(partner, partner_dm, cast, ref)) == 2
    assert len(pages_in(backup, backup_dm, cast, ref)) == 1


async def dm_text(person: Person, cast: Cast, text: str, dm: str | None = None) -> tuple[str, str]:
    """(the DM room, the body of the bot's first message there containing `text`)."""
    dm = dm or await person.join_invited(DM, timeout=20)
    event = await person.wait_for(
        dm, lambda e: text in body(e), sender=cast.bot.user_id, timeout=30
    )
    return dm, body(event)

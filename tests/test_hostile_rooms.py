"""Hostile rooms: the bot's rooms are closed to people outside the directory, a room someone else
made is never taken for a direct-message room (on the real homeserver); answers with activation
content are not given where a stranger listens, replies and edits are read as people mean them,
and strangers cannot make the bot post without limit (on the desk, the fast tier)."""

from __future__ import annotations

import asyncio
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
from nio import RoomGetStateEventResponse, RoomInviteError, RoomKickResponse

from tests.support.bots import RunningBot
from tests.support.cast import Cast
from tests.support.desk import Desk
from tests.support.matrix_people import Person, body
from tests.support.processes import BotProcess
from tests.support.reading import framed_as_exercise
from tests.support.recording import Recorded
from tests.support.rooms import (
    DM,
    activation_room,
    bot_joined,
    open_activation,
    page_received,
    shared_room,
)


async def invite_power(person: Person, room_id: str) -> int:
    state = await person.client.room_get_state_event(room_id, "m.room.power_levels")
    assert isinstance(state, RoomGetStateEventResponse), state
    return int(state.content.get("invite", 0))


async def invite_power_becomes(person: Person, room_id: str, level: int) -> int:
    """The room's invite level once it is `level` (tightening runs in the background at start),
    or as it stands after 15 s."""
    deadline = asyncio.get_running_loop().time() + 15
    while (power := await invite_power(person, room_id)) != level:
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    return power


async def paged(
    people: dict[str, Person], cast: Cast, room: str, who: str
) -> tuple[str, str, dict]:
    """`member` pages `who`; returns (PG ref, their DM room, the page event)."""
    await people["member"].send(room, f"!icc page {who} Dyke breach at Visé --ack 60s")
    dm, page = await page_received(people[who], cast, "PG-")
    ref = re.search(r"PG-\d+", body(page)).group(0)  # type: ignore[union-attr]
    return ref, dm, page


def as_reply(event_id: str) -> dict[str, Any]:
    return {"m.relates_to": {"m.in_reply_to": {"event_id": event_id}}}


def bot_said(person: Person, room_id: str, cast: Cast, text: str) -> list[dict]:
    return [e for e in person.events(room_id, cast.bot.user_id) if text in body(e)]


@pytest.mark.synapse
async def test_a_room_someone_else_named_like_a_direct_room_never_carries_a_page(
    paging_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    partner, deputy = people["partner"], people["deputy"]
    decoy = await partner.create_room(invite=[cast.bot.user_id, deputy.user_id], name=DM)
    await partner.wait_for(decoy, bot_joined(cast.bot.user_id))
    await partner.client.room_leave(decoy)
    _, room = await activation_room(people, cast)
    await people["member"].send(room, "!icc page deputy Dyke breach at Visé --ack 60s")
    invited = deputy.client.invited_rooms
    while not (rooms := [r for r, i in invited.items() if r != decoy and i.name == DM]):
        await deputy.sync()
    await deputy.join(rooms[0])
    _, page = await page_received(deputy, cast, "PG-", dm=rooms[0])
    ref = re.search(r"PG-\d+", body(page)).group(0)  # type: ignore[union-attr]
    await deputy.join(decoy)
    await deputy.quiet_period(1)
    assert not bot_said(deputy, decoy, cast, ref)


@pytest.mark.synapse
async def test_only_the_bot_invites_into_a_direct_room_and_only_a_lead_into_an_activation_room(
    paging_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    _, room = await activation_room(people, cast)
    _, dm, _ = await paged(people, cast, room, "partner")
    assert await invite_power(people["partner"], dm) == 100
    assert await invite_power(people["member"], room) == 50
    refused = await people["partner"].client.room_invite(dm, cast.stranger.user_id)
    assert isinstance(refused, RoomInviteError)
    refused = await people["member"].client.room_invite(room, cast.stranger.user_id)
    assert isinstance(refused, RoomInviteError)


@pytest.mark.synapse
async def test_an_outsider_in_an_activation_room_silences_the_bot_there_and_the_lead_is_told(
    paging_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    lead, member, stranger = people["lead"], people["member"], people["stranger"]
    ref, room = await activation_room(people, cast)
    await lead.client.room_invite(room, stranger.user_id)
    await stranger.join(room)
    lead_dm = await lead.join_invited(DM)
    warning = await lead.wait_for(
        lead_dm, lambda e: stranger.user_id in body(e), sender=cast.bot.user_id
    )
    assert f"the room of {ref}" in body(warning)
    assert "Nothing more is sent there until they are gone" in body(warning)
    asked = await member.send(room, "!icc status")
    await member.quiet_period(3)
    assert not [e for e in member.events(room, cast.bot.user_id) if _replies(e) == asked]

    kicked = await lead.client.room_kick(room, stranger.user_id)
    assert isinstance(kicked, RoomKickResponse)
    await member.quiet_period(1)
    status = await member.ask(room, "!icc status", cast.bot.user_id)
    assert ref in body(status)


def _replies(event: dict) -> str | None:
    relation = event.get("content", {}).get("m.relates_to") or {}
    return (relation.get("m.in_reply_to") or {}).get("event_id")


# -- on the desk (the fast tier): what the bot answers, membership as the sync would tell it ------


async def paged_on_desk(desk: Desk, who: str) -> tuple[str, str, str, Recorded]:
    """An activation, and `member` paging `who` from it: (PG ref, the activation room, their DM
    room, the page)."""
    control = desk.room("lead", "member", "partner", "dg", "deputy")
    _, room, _ = await desk.open_activation("lead", control)
    await desk.say("member", room, f"!icc page {who} Dyke breach at Visé --ack 60s")
    dm = desk.dm_of(who)
    [page] = [r for r in desk.messenger.events(dm) if r.msgtype == "m.text" and "PG-" in r.body]
    ref = re.search(r"PG-\d+", page.body).group(0)  # type: ignore[union-attr]
    return ref, room, dm, page


async def test_activation_content_is_refused_in_a_room_where_a_stranger_sits(
    paging_desk: Desk,
) -> None:
    desk = paging_desk
    ref, _, _ = await desk.open_activation("lead", desk.room("lead", "member"))
    control = desk.room("lead", "member", "partner", "dg", "deputy", "stranger")
    for command in (f"!icc status {ref}", "!icc contacts", "!icc contact partner"):
        answer = await desk.ask("member", control, command)
        assert "Not here:" in answer.body, command
        assert desk.who("stranger") in answer.body
    helped = await desk.ask("member", control, "!icc help")
    assert "Not here" not in helped.body


async def test_a_reply_with_the_quoted_fallback_runs_the_command_it_carries(
    paging_desk: Desk,
) -> None:
    desk = paging_desk
    ref, _room, dm, page = await paged_on_desk(desk, "partner")
    assert page.event_id is not None
    quoted = f"> <{desk.settings.user_id}> PAGE {ref}\n> Dyke breach at Visé\n\n!icc ack {ref}"
    answer = await desk.ask("partner", dm, quoted, **as_reply(page.event_id))
    assert f"Accusé de réception de {ref} enregistré" in answer.body


@pytest.mark.parametrize("said", ["Received", "ok thanks", "Reçu, on s'en occupe"])
async def test_a_reply_that_opens_with_an_ack_word_acknowledges(
    paging_desk: Desk, said: str
) -> None:
    desk = paging_desk
    ref, room, dm, page = await paged_on_desk(desk, "partner")
    assert page.event_id is not None
    sent = await desk.say(
        "partner", dm, f"> <{desk.settings.user_id}> {ref}\n\n{said}", **as_reply(page.event_id)
    )
    assert any(f"Accusé de réception de {ref} enregistré" in r.body for r in sent)
    assert "1/1 acknowledged" in desk.board(room, ref)


async def test_a_reply_to_a_page_that_is_no_ack_is_answered_with_how_to_acknowledge(
    paging_desk: Desk,
) -> None:
    desk = paging_desk
    ref, room, dm, page = await paged_on_desk(desk, "partner")
    assert page.event_id is not None
    answer = await desk.ask("partner", dm, "C'est à quel sujet ?", **as_reply(page.event_id))
    assert f"aucun accusé de réception n’est donc enregistré pour {ref}" in answer.body  # French
    assert f"!icc ack {ref}" in answer.body
    assert "0/1 acknowledged" in desk.board(room, ref)


async def test_a_command_sent_as_a_reply_runs(paging_desk: Desk) -> None:
    desk = paging_desk
    control = desk.room("lead", "member", "partner", "dg", "deputy")
    help_id, _ = await desk.said("member", control, "!icc help")
    quoted = f"> <{desk.who('member')}> !icc help\n\n!icc help page"
    answer = await desk.ask("member", control, quoted, **as_reply(help_id))
    assert "!icc page" in answer.body


async def test_an_edited_command_is_not_run_again_and_the_sender_is_told(
    paging_desk: Desk,
) -> None:
    desk = paging_desk
    control = desk.room("lead", "member", "partner", "dg", "deputy")
    _, room, _ = await desk.open_activation("lead", control)
    original, _ = await desk.said("member", room, "!icc page partner Dyke breach at Visé")
    edit = {
        "m.new_content": {"msgtype": "m.text", "body": "!icc page partner Dyke breach at Huy"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": original},
    }
    edited, sent = await desk.send(
        "member",
        room,
        {"msgtype": "m.text", "body": "* !icc page partner Dyke breach at Huy", **edit},
    )
    [answer] = [r for r in sent if r.reply_to == edited]
    assert "an edit is never run" in answer.body
    assert len(sent) == 1
    await desk.fire_due()
    assert not [r for r in desk.messenger.recorded if "Huy" in r.body and r is not answer]


async def test_strangers_cannot_make_the_bot_post_without_limit(paging_desk: Desk) -> None:
    desk = paging_desk
    control = desk.room("lead", "member", "partner", "dg", "deputy", "stranger")
    answered = [await desk.say("stranger", control, f"!icc nonsense{n}") for n in range(8)]
    assert "Commands you can use" in (await desk.ask("lead", control, "!icc help")).body
    said = [r for sent in answered for r in sent if "There is no command `nonsense" in r.body]
    assert len(said) == 5
    assert [len(sent) for sent in answered] == [1] * 5 + [0] * 3


# -- through Synapse -------------------------------------------------------------------------------


@pytest.mark.synapse
async def test_the_undecryptable_notice_is_framed_like_its_activation_and_budgeted(
    paging_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    lead, member = people["lead"], people["member"]
    control = await shared_room(people, cast)
    _, room, _ = await open_activation(lead, control, cast, '!icc activate "Drill" --exercise')
    await member.wait_for_invite(room)
    await member.join(room)
    for _ in range(7):  # each with a session of its own, as a forger would
        await member.sync(timeout_ms=200)
        forged = {
            "algorithm": "m.megolm.v1.aes-sha2",
            "ciphertext": secrets.token_urlsafe(40),
            "device_id": "FORGED",
            "sender_key": secrets.token_urlsafe(32),
            "session_id": secrets.token_urlsafe(32),
        }
        await member.client.room_send(room, "m.room.encrypted", forged)
    notice = await member.wait_for(
        room, lambda e: "could not decrypt" in body(e), sender=cast.bot.user_id
    )
    assert framed_as_exercise(notice)
    await member.quiet_period(2)
    assert len(bot_said(member, room, cast, "could not decrypt")) == 5


@pytest.mark.synapse
async def test_rooms_made_before_invites_were_restricted_are_tightened_at_start(
    paging_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    _, room = await activation_room(people, cast)
    _, dm, _ = await paged(people, cast, room, "partner")
    assert paging_bot.app is not None
    assert paging_bot.app.services is not None
    messenger = paging_bot.app.services.messenger
    for loosened in (dm, room):  # as every room the bot made before this release
        await messenger._change_power_levels(loosened, lambda _content: {"invite": 0})
    assert await invite_power(people["partner"], dm) == 0
    await paging_bot.stop()
    await paging_bot.start()
    await people["member"].ask(room, "!icc status", cast.bot.user_id)
    assert await invite_power_becomes(people["partner"], dm, 100) == 100
    assert await invite_power_becomes(people["member"], room, 50) == 50


@pytest.mark.synapse
async def test_a_strangers_malformed_event_leaves_the_real_process_answering_across_a_restart(
    bot_env: dict[str, str], people: dict[str, Person], cast: Cast, tmp_path: Path
) -> None:
    """The outage as it was found: `icc-bot run` as a process, a stranger's
    `"m.relates_to": "boom"` and a partner's `{"m.in_reply_to": "x"}` in rooms the bot is in;
    it answers after them, is killed, and answers again after a restart."""
    bot = BotProcess(bot_env, tmp_path / "bot.log")
    await bot.start()
    try:
        room = await shared_room(people, cast, with_stranger=True)
        poison = (("stranger", "boom"), ("partner", {"m.in_reply_to": "x"}))
        for sender, relation in poison:
            await people[sender].send(room, "hello", **{"m.relates_to": relation})
        assert "Commands" in body(await people["member"].ask(room, "!icc help", cast.bot.user_id))
        bot.kill()
        for sender, relation in poison:  # and while it is down: the first sync after meets them
            await people[sender].send(room, "hello again", **{"m.relates_to": relation})
        bot.launch()
        answer = await people["member"].ask(room, "!icc help", cast.bot.user_id)
        assert "Commands" in body(answer)
        assert bot.process is not None
        assert bot.process.poll() is None
    finally:
        bot.stop()

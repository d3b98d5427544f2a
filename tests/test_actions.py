"""Actions (SPEC, "Actions and playbooks"): an action's owners are told by DM in their language,
reminded at three quarters of the time to the due time and chased at it, once each; done by an
owner or a member; reassigned; listed; and where it stands shows wherever the activation does."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest

from bot.storage import activation_store
from bot.storage.models import TimerKind
from bot.timeutil import format_local_utc, load_zone, utcnow
from tests.support.bots import RunningBot
from tests.support.cast import Cast
from tests.support.databases import BACKENDS
from tests.support.desk import Desk
from tests.support.matrix_people import Person, body
from tests.support.processes import BotProcess
from tests.support.reach import paged
from tests.support.rooms import activation_room, dm_text


async def opened(desk: Desk) -> str:
    """An activation with one page already out (the partner has a DM room); its room."""
    return await paged(desk, "dg", "Warm-up")


async def test_the_owner_is_told_by_dm_in_their_language_and_the_steps_are_armed(
    paging_desk: Desk,
) -> None:
    desk = paging_desk
    room = await opened(desk)
    reply = await desk.ask(
        "member", room, "!icc action Call the French consulate --owner partner --due 2h"
    )
    assert re.search(r"A-1 for Partner, due .*: Call the French consulate", reply.body)
    [told] = [t for t in desk.messenger.texts(desk.dm_of("partner")) if "A-1" in t]
    assert "ACTION A-1" in told
    assert "À faire avant" in told
    remind, chase = sorted(await desk.armed(TimerKind.ACTION_STEP), key=lambda t: t.due_at)
    assert (remind.payload["step"], chase.payload["step"]) == ("remind", "chase")
    third_quarter = (chase.due_at - remind.created_at) * 0.75
    assert abs((remind.due_at - remind.created_at - third_quarter).total_seconds()) < 2


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_the_reminder_and_the_chase_each_go_once(paging_desk: Desk) -> None:
    desk = paging_desk
    room = await opened(desk)
    await desk.say("member", room, "!icc action Call the consulate --owner partner --due 2h")
    dm = desk.dm_of("partner")
    await desk.fire(TimerKind.ACTION_STEP, key=":remind")
    await desk.fire(TimerKind.ACTION_STEP, key=":chase")
    await desk.fire(TimerKind.ACTION_STEP)  # nothing left to fire
    assert len([t for t in desk.messenger.texts(dm) if "RAPPEL — ACTION A-1" in t]) == 1
    assert len([t for t in desk.messenger.texts(dm) if "ÉCHÉANCE — ACTION A-1" in t]) == 1
    assert len([t for t in desk.messenger.texts(room) if "⏰ A-1 is due now" in t]) == 1


async def test_done_by_the_owner_ends_the_steps_and_is_logged(paging_desk: Desk) -> None:
    desk = paging_desk
    room = await opened(desk)
    await desk.say("member", room, "!icc action Call the consulate --owner partner --due 2h")
    reply = await desk.ask("partner", desk.dm_of("partner"), "!icc done A-1 called, all fine")
    assert "✅ A-1 done: Call the consulate" in reply.body
    assert not await desk.armed(TimerKind.ACTION_STEP)
    async with desk.services.db.session() as session:
        entries = await activation_store.log_entries(session, 1)
    assert [e.text for e in entries if e.kind == "system.action_done"] == [
        "A-1 done: called, all fine"
    ]


async def test_done_in_the_owners_direct_room_is_answered_framed_as_its_activation(
    paging_desk: Desk,
) -> None:
    """An exercise's action closed from a DM: the answer says EXERCISE and the TLP, as every
    message about the activation does, wherever it is read."""
    desk = paging_desk
    control = desk.room("lead", "member", "partner")
    _ref, room, _ = await desk.open_activation(
        "lead", control, '!icc activate "Meuse flooding" --exercise'
    )
    await desk.say("member", room, "!icc action Call the consulate --owner partner --due 2h")
    reply = await desk.ask("partner", desk.dm_of("partner"), "!icc done A-1")
    assert reply.body.startswith("EXERCISE EXERCISE EXERCISE\nTLP:AMBER · EX-ICC-2026-001")


async def test_a_lessons_improvement_action_due_days_ahead_is_shown_with_its_date(
    paging_desk: Desk,
) -> None:
    desk = paging_desk
    room = await opened(desk)
    reply = await desk.ask("lead", room, "!icc log ERCC number outdated --lesson --due 7d")
    due = utcnow() + timedelta(days=7)
    local = format_local_utc(due, load_zone("Europe/Brussels"), with_date=True)
    assert f"due {local[:10]}" in reply.body  # `Mon 14 Dec`, not only a time of day
    async with desk.services.db.session() as session:
        entries = await activation_store.log_entries(session, 1, kinds=["system.action"])
    assert f"by {local[:10]}" in entries[-1].text  # and so in the logbook


async def test_someone_else_may_not_mark_a_partners_action_done(paging_desk: Desk) -> None:
    desk = paging_desk
    room = await opened(desk)
    await desk.say("member", room, "!icc action Call the consulate --owner partner")
    refused = await desk.ask("dg", room, "!icc done A-1")
    assert "A-1 is Partner's; they or a member close it." in refused.body


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_a_reassigned_action_tells_the_new_owner_and_chases_them(paging_desk: Desk) -> None:
    desk = paging_desk
    room = await opened(desk)
    await desk.say("member", room, "!icc action Call the consulate --owner partner --due 2h")
    reply = await desk.ask("member", room, "!icc action reassign A-1 dg")
    assert "A-1 is now Dg’s (was Partner)" in reply.body
    assert any("AUFGABE A-1" in t for t in desk.messenger.texts(desk.dm_of("dg")))
    await desk.fire(TimerKind.ACTION_STEP, key=":chase")
    assert any("FÄLLIG — AUFGABE A-1" in t for t in desk.messenger.texts(desk.dm_of("dg")))
    assert not any("ÉCHÉANCE" in t for t in desk.messenger.texts(desk.dm_of("partner")))


async def test_actions_lists_open_mine_overdue_and_all(paging_desk: Desk) -> None:
    desk = paging_desk
    room = await opened(desk)
    await desk.say("member", room, "!icc action Call the consulate --owner partner --due 2h")
    await desk.say("member", room, "!icc action Brief the DG --owner dg")
    await desk.say("member", room, "!icc done A-2")
    listed = await desk.ask("member", room, "!icc actions")
    assert "A-1 Partner" in listed.body
    assert "A-2" not in listed.body
    everything = await desk.ask("member", room, "!icc actions all")
    assert "✓ A-2 Dg" in everything.body
    mine = await desk.ask("partner", room, "!icc actions")  # a partner sees their own
    assert "A-1" in mine.body
    overdue = await desk.ask("member", room, "!icc actions overdue")
    assert "None." in overdue.body


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_open_and_overdue_actions_show_in_status_handover_sitrep_and_the_record(
    paging_desk: Desk,
) -> None:
    desk = paging_desk
    room = await opened(desk)
    await desk.say("member", room, "!icc action Call the consulate --owner partner --due 2h")
    status = await desk.ask("member", room, "!icc status")
    assert "Actions: 1 open" in status.body
    assert "A-1 Partner" in status.body
    sitrep = await desk.ask("member", room, "!icc sitrep")
    assert "A-1 Partner" in sitrep.body
    handover = await desk.ask("lead", room, "!icc handover deputy")
    assert "A-1" in handover.body
    closing = await desk.ask("deputy", room, "!icc close Drill over")
    assert "Open actions: A-1" in closing.body
    record = json.loads(desk.file(room, "ICC-2026-001-record.json"))
    assert [a["ref"] for a in record["actions"]] == ["A-1"]


async def test_a_rounds_agenda_ends_with_the_open_actions(paging_desk: Desk) -> None:
    desk = paging_desk
    room = await opened(desk)
    await desk.say("member", room, "!icc action Call the consulate --owner partner")
    await desk.say("member", room, "!icc round now --with member,deputy --agenda Pumps")
    [prompt] = [r.body for r in await desk.fire("round.run") if "COORDINATION ROUND" in r.body]
    assert prompt.index("1. Pumps") < prompt.index("2. Open actions: A-1 Partner")


async def test_an_action_is_refused_outside_an_open_activation(paging_desk: Desk) -> None:
    desk = paging_desk
    refused = await desk.ask("member", desk.room("member"), "!icc action Call --owner partner")
    assert "activation" in refused.body.lower()


# -- through Synapse -------------------------------------------------------------------------------


@pytest.mark.synapse
async def test_an_actions_life_on_the_homeserver(
    paging_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    """Made, told by DM, reminded, chased (in the DM and the room) exactly once, overdue in
    status, done by its owner."""
    _ref, room = await activation_room(people, cast)
    member, partner = people["member"], people["partner"]
    await member.send(room, "!icc action Count Belgians at the border --owner partner --due 8s")
    dm, assigned = await dm_text(partner, cast, "ACTION A-")
    ref = re.search(r"A-\d+", assigned).group(0)  # type: ignore[union-attr]
    await dm_text(partner, cast, f"RAPPEL — ACTION {ref}", dm)
    await dm_text(partner, cast, f"ÉCHÉANCE — ACTION {ref}", dm)
    await member.wait_for(
        room, lambda e: f"⏰ {ref} is due now" in body(e), sender=cast.bot.user_id
    )
    status = await member.ask(room, "!icc status", cast.bot.user_id)
    assert f"{ref} Partner" in body(status)
    assert "OVERDUE" in body(status)
    done = await partner.ask(dm, f"!icc done {ref} 41 counted", cast.bot.user_id)
    assert f"✅ {ref} done, after its due time" in body(done)
    await partner.quiet_period(2)
    said = partner.events(dm, cast.bot.user_id)
    assert len([e for e in said if f"ÉCHÉANCE — ACTION {ref}" in body(e)]) == 1


@pytest.mark.synapse
async def test_the_chase_goes_once_across_a_kill_after_the_reminder(
    paging_env: dict[str, str], people: dict[str, Person], cast: Cast, tmp_path: Path
) -> None:
    bot = BotProcess(paging_env, tmp_path / "bot.log")
    await bot.start()
    try:
        _ref, room = await activation_room(people, cast)
        partner = people["partner"]
        await people["member"].send(room, "!icc action Call Paris --owner partner --due 10s")
        dm, assigned = await dm_text(partner, cast, "ACTION A-")
        ref = re.search(r"A-\d+", assigned).group(0)  # type: ignore[union-attr]
        await dm_text(partner, cast, f"RAPPEL — ACTION {ref}", dm)
        bot.kill()  # between the reminder and the chase
        bot.launch()
        await dm_text(partner, cast, f"ÉCHÉANCE — ACTION {ref}", dm)
        await partner.quiet_period(3)
        said = [body(e) for e in partner.events(dm, cast.bot.user_id)]
        assert len([b for b in said if f"RAPPEL — ACTION {ref}" in b]) == 1
        assert len([b for b in said if f"ÉCHÉANCE — ACTION {ref}" in b]) == 1
    finally:
        bot.stop()

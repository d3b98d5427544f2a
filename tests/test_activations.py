"""Activations end to end, as real users on the test homeserver: lifecycle, logbook, sitreps,
exports, the record bundle, exercises and `realworld`, refusals, the hash chain."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import AsyncIterator

import pytest

from tests.conftest import Cast, RunningBot, bot_running, run_cli
from tests.matrix_people import Person, body
from tests.support.reading import framed_as_exercise
from tests.support.rooms import bot_joined, open_activation, shared_room

pytestmark = pytest.mark.synapse


@pytest.fixture
async def dg_room(people: dict[str, Person], cast: Cast) -> str:
    """The DG platform room: made by the DG, with the bot and the lead in it."""
    room_id = await people["dg"].create_room(
        invite=[cast.bot.user_id, cast.lead.user_id], name="DG platform"
    )
    await people["lead"].join(room_id)
    return room_id


@pytest.fixture
async def icc_bot(
    bot_env: dict[str, str], dg_room: str, people: dict[str, Person], cast: Cast
) -> AsyncIterator[RunningBot]:
    async with bot_running(bot_env | {"ICC_DG_ROOM": dg_room}) as running:
        await people["dg"].wait_for(dg_room, bot_joined(cast.bot.user_id))
        yield running


def bot_messages(person: Person, room_id: str, cast: Cast) -> list[dict]:
    return [
        e for e in person.events(room_id, cast.bot.user_id) if e.get("type") == "m.room.message"
    ]


async def download(person: Person, event: dict) -> bytes:
    response = await person.client.download(mxc=event["content"]["url"])
    return response.body


async def test_lifecycle_with_logbook_sitreps_handover_and_close(
    icc_bot: RunningBot,
    people: dict[str, Person],
    cast: Cast,
    dg_room: str,
    bot_env: dict[str, str],
) -> None:
    lead, member, deputy, dg = people["lead"], people["member"], people["deputy"], people["dg"]
    control = await shared_room(people, cast)
    ref, room, reply = await open_activation(
        lead,
        control,
        cast,
        '!icc activate "Flooding in the Meuse valley" --level information-sharing',
    )
    assert reply["content"]["msgtype"] == "m.notice"
    assert body(reply).splitlines()[0] == f"TLP:AMBER · {ref}"
    # The ICC roster is invited to an invite-only room; partners and DGs are not.
    for person in (lead, member, deputy):
        await person.wait_for_invite(room)
        await person.join(room)
    assert room not in people["partner"].invites
    notice = await lead.wait_for(
        room, lambda e: "opened: Flooding in the Meuse valley" in body(e), sender=cast.bot.user_id
    )
    assert "Level: information-sharing · TLP:AMBER" in body(notice)
    await dg.wait_for(
        dg_room, lambda e: f"New ICC activation {ref}" in body(e), sender=cast.bot.user_id
    )

    logged = await member.ask(
        room, "!icc log ERCC confirms two pumping modules --at 00:00", cast.bot.user_id
    )
    assert re.search(r"Logged #2 \(info\), occurred 00:00 Brussels", body(logged))
    await member.ask(room, "!icc log Evacuate the riverside campsites --decision", cast.bot.user_id)
    await member.ask(room, "!icc log Ask NL-NCC for high-capacity pumps --action", cast.bot.user_id)
    refused = await member.ask(room, "!icc level full", cast.bot.user_id)
    assert "needs the icc-lead role" in body(refused)
    changed = await lead.ask(room, "!icc level full", cast.bot.user_id)
    assert "Level changed: information-sharing → full" in body(changed)
    await dg.wait_for(
        dg_room, lambda e: "level information-sharing → full" in body(e), sender=cast.bot.user_id
    )
    again = await lead.ask(room, "!icc level full", cast.bot.user_id)
    assert "already at level full" in body(again)

    first = await member.ask(room, "!icc sitrep", cast.bot.user_id)
    assert f"SITREP 1 — {ref}" in body(first)
    assert "ERCC confirms two pumping modules" in body(first)
    assert "Evacuate the riverside campsites" in body(first)
    assert "Ask NL-NCC for high-capacity pumps" in body(first)
    corrected = await member.ask(
        room, "!icc log correct #2 Three pumping modules, not two", cast.bot.user_id
    )
    assert "as a correction of #2" in body(corrected)
    second = await member.ask(room, "!icc sitrep", cast.bot.user_id)
    assert f"SITREP 2 — {ref}" in body(second)
    assert "Three pumping modules" in body(second)
    assert "ERCC confirms two" not in body(second)  # reported in sitrep 1's period

    refused = await lead.ask(room, "!icc handover member", cast.bot.user_id)
    assert "not icc-lead" in body(refused)
    handed = await lead.ask(room, f"!icc handover {cast.deputy.user_id}", cast.bot.user_id)
    assert "Deputy now leads" in body(handed)
    assert "Ask NL-NCC for high-capacity pumps" in body(handed)  # open action
    assert "Evacuate the riverside campsites" in body(handed)  # last decision
    status = await member.ask(room, "!icc status", cast.bot.user_id)
    assert "lead Deputy" in body(status)
    assert "Levels: information-sharing" in body(status)
    assert "Last sitrep: #2" in body(status)

    closed = await deputy.ask(
        room, "!icc close Water receding; municipalities stood down", cast.bot.user_id
    )
    assert f"{ref} closed by Deputy" in body(closed)
    assert "Levels: information-sharing → full" in body(closed)
    await dg.wait_for(
        dg_room,
        lambda e: f"{ref} (Flooding in the Meuse valley) closed" in body(e),
        sender=cast.bot.user_id,
    )
    files = {
        e["content"]["body"]: e
        for e in bot_messages(deputy, room, cast)
        if e["content"]["msgtype"] == "m.file"
    }
    assert set(files) == {f"{ref}-record.md", f"{ref}-record.json", f"{ref}-SHA256SUMS"}
    record_json = await download(deputy, files[f"{ref}-record.json"])
    record_md = await download(deputy, files[f"{ref}-record.md"])
    manifest = (await download(deputy, files[f"{ref}-SHA256SUMS"])).decode()
    assert f"{hashlib.sha256(record_json).hexdigest()}  {ref}-record.json" in manifest
    assert f"{hashlib.sha256(record_md).hexdigest()}  {ref}-record.md" in manifest
    document = json.loads(record_json)
    assert document["logbook_verification"] == {"entries": 10, "ok": True, "first_broken": None}
    kinds = [e["kind"] for e in document["logbook"]]
    assert kinds == [
        "system.activate",
        "info",
        "decision",
        "action",
        "system.level",
        "system.sitrep",
        "correction",
        "system.sitrep",
        "system.handover",
        "system.close",
    ]
    assert [e["seq"] for e in document["logbook"]] == list(range(1, 11))
    assert document["logbook"][6]["corrects"] == 2
    assert len(document["sitreps"]) == 2

    after = await member.ask(room, "!icc log one more thing", cast.bot.user_id)
    assert f"{ref} is closed; nothing was changed" in body(after)
    exported = await member.ask(room, "!icc log export csv", cast.bot.user_id)
    assert "10 entries, as csv" in body(exported)
    export_event = [
        e
        for e in bot_messages(member, room, cast)
        if e["content"].get("body") == f"{ref}-logbook.csv"
    ]
    rows = list(csv.DictReader(io.StringIO((await download(member, export_event[-1])).decode())))
    assert [r["seq"] for r in rows] == [str(n) for n in range(1, 11)]
    assert rows[2]["text"] == "Evacuate the riverside campsites"

    verified = run_cli(bot_env, "logbook", "verify", ref)
    assert verified.returncode == 0, verified.stderr
    assert "logbook intact, 10 entries" in verified.stdout


async def test_exercise_markers_on_every_message_and_realworld(
    icc_bot: RunningBot, people: dict[str, Person], cast: Cast, dg_room: str
) -> None:
    lead, member, dg = people["lead"], people["member"], people["dg"]
    control = await shared_room(people, cast)
    ref, room, reply = await open_activation(
        lead, control, cast, '!icc activate "Drill: dam breach" --exercise --tlp green'
    )
    assert ref.startswith("EX-ICC-")
    assert framed_as_exercise(reply)
    assert body(reply).splitlines()[1] == f"TLP:GREEN · {ref}"
    await member.wait_for_invite(room)
    await member.join(room)
    await member.sync()
    assert member.client.rooms[room].name == f"[ICC] [EX] {ref} Drill: dam breach"
    await member.ask(room, "!icc log Dam operator reports seepage", cast.bot.user_id)
    await member.ask(room, "!icc hlep", cast.bot.user_id)  # even an error answer is marked
    await member.ask(room, "!icc sitrep", cast.bot.user_id)
    dg_notice = await dg.wait_for(
        dg_room, lambda e: f"New ICC activation {ref}" in body(e), sender=cast.bot.user_id
    )
    assert framed_as_exercise(dg_notice)

    suspended = await lead.ask(control, "!icc realworld Real flooding in Liège", cast.bot.user_id)
    assert f"Suspended 1 exercise: {ref}" in body(suspended)
    banner = await member.wait_for(
        room, lambda e: "REAL-WORLD EVENT" in body(e), sender=cast.bot.user_id
    )
    assert "Real flooding in Liège" in body(banner)
    await dg.wait_for(dg_room, lambda e: "REAL-WORLD EVENT" in body(e), sender=cast.bot.user_id)
    refused = await member.ask(room, "!icc log after the banner", cast.bot.user_id)
    assert "suspended exercise" in body(refused)
    messages = [e for e in bot_messages(member, room, cast) if e["content"]["msgtype"] != "m.file"]
    assert len(messages) >= 6
    assert all(framed_as_exercise(e) for e in messages), [body(e) for e in messages]
    nothing = await lead.ask(control, "!icc realworld again", cast.bot.user_id)
    assert "No exercise was running" in body(nothing)


async def test_refusals_classification_tlp_and_rooms(
    icc_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    lead, member = people["lead"], people["member"]
    control = await shared_room(people, cast)
    refused = await member.ask(control, "!icc activate Something", cast.bot.user_id)
    assert "needs the icc-lead role" in body(refused)
    bad_tlp = await lead.ask(control, "!icc activate Something --tlp purple", cast.bot.user_id)
    assert "`purple` is not a TLP label" in body(bad_tlp)
    classified = await lead.ask(control, '!icc activate "Briefing RESTREINT UE"', cast.bot.user_id)
    assert "classification marking “RESTREINT UE”" in body(classified)
    elsewhere = await member.ask(control, "!icc log Not in an activation room", cast.bot.user_id)
    assert "not an activation room" in body(elsewhere)
    overview = await member.ask(control, "!icc status", cast.bot.user_id)
    assert "No activation is running." in body(overview)

    ref, room, _ = await open_activation(lead, control, cast, "!icc activate Storm --tlp red")
    await member.wait_for_invite(room)
    await member.join(room)
    classified = await member.ask(
        room, "!icc log Per the confidentiel défense note", cast.bot.user_id
    )
    assert "CONFIDENTIEL DÉFENSE" in body(classified)
    assert body(classified).splitlines()[0] == f"TLP:RED · {ref}"
    overview = await member.ask(control, "!icc status", cast.bot.user_id)
    assert f"• {ref} — Storm · monitoring · TLP:RED" in body(overview)
    status = await member.ask(control, f"!icc status {ref}", cast.bot.user_id)
    assert "Logbook: 1 entry, 0 decisions" in body(status)  # the refused text was never stored
    unknown = await member.ask(control, "!icc status ICC-1999-001", cast.bot.user_id)
    assert "There is no activation ICC-1999-001" in body(unknown)

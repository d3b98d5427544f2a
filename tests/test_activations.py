"""Activations on the desk (the fast tier: the real services, runner and database, Matrix
recorded; tests/support/desk.py): lifecycle, logbook, sitreps, exports, the record bundle,
exercises and `realworld`, refusals, the hash chain. The rooms and invites they make on a real
homeserver are exercised by the synapse tier's paging, input and round tests."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.desk import Desk, desk_env, desk_running
from tests.support.processes import run_cli
from tests.support.reading import framed_as_exercise
from tests.support.recording import Recorded

DG_ROOM = "!dg-platform:desk.test"


@pytest.fixture
async def icc_desk(tmp_path: Path, database_url: str) -> AsyncIterator[Desk]:
    """The desk with a DG platform room, the DG and the lead in it."""
    async with desk_running(tmp_path, database_url, env={"ICC_DG_ROOM": DG_ROOM}) as desk:
        desk.joins(DG_ROOM, "dg", "lead")
        yield desk


def control_room(desk: Desk) -> str:
    """A room of the lead's with everyone but the stranger, and the bot."""
    return desk.room("lead", "member", "partner", "dg", "deputy")


def exercise_framed(sent: Recorded) -> bool:
    return framed_as_exercise({"content": sent.content})


def messages(desk: Desk, room_id: str) -> list[Recorded]:
    return [r for r in desk.messenger.events(room_id) if r.kind == "message"]


def files(desk: Desk, room_id: str) -> dict[str, Recorded]:
    return {r.body: r for r in desk.messenger.events(room_id) if r.kind == "file"}


def created(desk: Desk, room_id: str) -> Recorded:
    [room] = [
        r for r in desk.messenger.recorded if r.kind == "create_room" and r.room_id == room_id
    ]
    return room


def posted(desk: Desk, room_id: str, text: str) -> Recorded:
    found = [r for r in messages(desk, room_id) if text in r.body]
    assert found, f"{text!r} not in {[r.body for r in messages(desk, room_id)]}"
    return found[-1]


async def test_status_shows_a_change_made_a_moment_before(icc_desk: Desk) -> None:
    """The activation of the room an answer is framed with is kept between commands
    (`RoomActivations`): a change forgets it, so the next answer shows the change."""
    desk = icc_desk
    _, room, _ = await desk.open_activation("lead", control_room(desk))
    assert "Status: open · level monitoring" in (await desk.ask("lead", room, "!icc status")).body
    await desk.ask("lead", room, "!icc level full")
    assert "Status: open · level full" in (await desk.ask("member", room, "!icc status")).body
    await desk.ask("lead", room, "!icc close Water back to normal")
    assert "Status: closed since" in (await desk.ask("member", room, "!icc status")).body


async def test_lifecycle_with_logbook_sitreps_handover_and_close(
    icc_desk: Desk, tmp_path: Path, database_url: str
) -> None:
    desk = icc_desk
    control = control_room(desk)
    ref, room, reply = await desk.open_activation(
        "lead",
        control,
        '!icc activate "Flooding in the Meuse valley" --level information-sharing',
    )
    assert reply.msgtype == "m.notice"
    assert reply.body.splitlines()[0] == f"TLP:AMBER · {ref}"
    # The ICC roster is invited to an invite-only room; partners and DGs are not.
    invited = set(created(desk, room).details["invite"])
    assert {desk.who(p) for p in ("lead", "member", "deputy")} <= invited
    assert not {desk.who(p) for p in ("partner", "dg")} & invited
    notice = posted(desk, room, "opened: Flooding in the Meuse valley")
    assert "Level: information-sharing · TLP:AMBER" in notice.body
    posted(desk, DG_ROOM, f"New ICC activation {ref}")

    logged = await desk.ask("member", room, "!icc log ERCC confirms two pumping modules --at 00:00")
    assert re.search(r"Logged #2 \(info\), occurred \w{3} \d\d? \w{3} 00:00 Brussels", logged.body)
    await desk.ask("member", room, "!icc log Evacuate the riverside campsites --decision")
    await desk.ask("member", room, "!icc log Ask NL-NCC for high-capacity pumps --action")
    refused = await desk.ask("member", room, "!icc level full")
    assert "needs the icc-lead role" in refused.body
    changed = await desk.ask("lead", room, "!icc level full")
    assert "Level changed: information-sharing → full" in changed.body
    posted(desk, DG_ROOM, "level information-sharing → full")
    again = await desk.ask("lead", room, "!icc level full")
    assert "already at level full" in again.body

    first = await desk.ask("member", room, "!icc sitrep")
    assert f"SITREP 1 — {ref}" in first.body
    assert "ERCC confirms two pumping modules" in first.body
    assert "Evacuate the riverside campsites" in first.body
    assert "Ask NL-NCC for high-capacity pumps" in first.body
    corrected = await desk.ask("member", room, "!icc log correct #2 Three pumping modules, not two")
    assert "as a correction of #2" in corrected.body
    second = await desk.ask("member", room, "!icc sitrep")
    assert f"SITREP 2 — {ref}" in second.body
    assert "Three pumping modules" in second.body
    assert "ERCC confirms two" not in second.body  # reported in sitrep 1's period

    refused = await desk.ask("lead", room, "!icc handover member")
    assert "not icc-lead" in refused.body
    handed = await desk.ask("lead", room, f"!icc handover {desk.who('deputy')}")
    assert "Deputy now leads" in handed.body
    assert "Ask NL-NCC for high-capacity pumps" in handed.body  # open action
    assert "Evacuate the riverside campsites" in handed.body  # last decision
    status = await desk.ask("member", room, "!icc status")
    assert "lead Deputy" in status.body
    assert "Levels: information-sharing" in status.body
    assert "Last sitrep: #2" in status.body

    closed = await desk.ask("deputy", room, "!icc close Water receding; municipalities stood down")
    assert f"{ref} closed by Deputy" in closed.body
    assert "Levels: information-sharing → full" in closed.body
    posted(desk, DG_ROOM, f"{ref} “Flooding in the Meuse valley” closed")
    bundle = files(desk, room)
    record_files = {name for name in bundle if not name.startswith(f"{ref}-review-v1")}
    assert record_files == {f"{ref}-record.md", f"{ref}-record.json", f"{ref}-SHA256SUMS"}
    record_json = bundle[f"{ref}-record.json"].data
    record_md = bundle[f"{ref}-record.md"].data
    manifest_data = bundle[f"{ref}-SHA256SUMS"].data
    assert record_json is not None
    assert record_md is not None
    assert manifest_data is not None
    manifest = manifest_data.decode()
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

    after = await desk.ask("member", room, "!icc log one more thing")
    assert f"{ref} is closed; nothing was changed" in after.body
    exported = await desk.ask("member", room, "!icc log export csv")
    assert "10 entries, as csv" in exported.body
    export = files(desk, room)[f"{ref}-logbook.csv"].data
    assert export is not None
    rows = list(csv.DictReader(io.StringIO(export.decode())))
    assert [r["seq"] for r in rows] == [str(n) for n in range(1, 11)]
    assert rows[2]["text"] == "Evacuate the riverside campsites"

    verified = run_cli(desk_env(tmp_path, database_url), "logbook", "verify", ref)
    assert verified.returncode == 0, verified.stderr
    assert "logbook intact, 10 entries" in verified.stdout


async def test_exercise_markers_on_every_message_and_realworld(icc_desk: Desk) -> None:
    desk = icc_desk
    control = control_room(desk)
    ref, room, reply = await desk.open_activation(
        "lead", control, '!icc activate "Drill: dam breach" --exercise --tlp green'
    )
    assert ref.startswith("EX-ICC-")
    assert exercise_framed(reply)
    assert reply.body.splitlines()[1] == f"TLP:GREEN · {ref}"
    assert created(desk, room).details["name"] == f"[ICC] [EX] {ref} Drill: dam breach"
    await desk.ask("member", room, "!icc log Dam operator reports seepage")
    await desk.ask("member", room, "!icc hlep")  # even an error answer is marked
    await desk.ask("member", room, "!icc sitrep")
    assert exercise_framed(posted(desk, DG_ROOM, f"New ICC activation {ref}"))

    suspended = await desk.ask("lead", control, "!icc realworld Real flooding in Liège")
    assert f"Suspended 1 exercise: {ref}" in suspended.body
    banner = posted(desk, room, "REAL-WORLD EVENT")
    assert "Real flooding in Liège" in banner.body
    posted(desk, DG_ROOM, "REAL-WORLD EVENT")
    refused = await desk.ask("member", room, "!icc log after the banner")
    assert "suspended exercise" in refused.body
    sent = messages(desk, room)
    assert len(sent) >= 6
    assert all(exercise_framed(e) for e in sent), [e.body for e in sent]
    nothing = await desk.ask("lead", control, "!icc realworld again")
    assert "No exercise was running" in nothing.body
    closed = await desk.ask("lead", room, "!icc close Exercise abandoned for the real event")
    assert f"{ref} closed" in closed.body  # a suspended exercise can still be closed
    assert exercise_framed(closed)


async def test_refusals_classification_tlp_and_rooms(icc_desk: Desk) -> None:
    desk = icc_desk
    control = control_room(desk)
    refused = await desk.ask("member", control, "!icc activate Something")
    assert "needs the icc-lead role" in refused.body
    bad_tlp = await desk.ask("lead", control, "!icc activate Something --tlp purple")
    assert "`purple` is not a TLP label" in bad_tlp.body
    classified = await desk.ask("lead", control, '!icc activate "Briefing RESTREINT UE"')
    assert "classification marking “RESTREINT UE”" in classified.body
    elsewhere = await desk.ask("member", control, "!icc log Not in an activation room")
    assert "not an activation room" in elsewhere.body
    overview = await desk.ask("member", control, "!icc status")
    assert "No activation is running." in overview.body

    ref, room, _ = await desk.open_activation("lead", control, "!icc activate Storm --tlp red")
    classified = await desk.ask("member", room, "!icc log Per the confidentiel défense note")
    assert "CONFIDENTIEL DÉFENSE" in classified.body
    assert classified.body.splitlines()[0] == f"TLP:RED · {ref}"
    overview = await desk.ask("member", control, "!icc status")
    assert f"• {ref} — Storm · monitoring · TLP:RED" in overview.body
    status = await desk.ask("member", control, f"!icc status {ref}")
    assert "Logbook: 1 entry, 0 decisions" in status.body  # the refused text was never stored
    unknown = await desk.ask("member", control, "!icc status ICC-1999-001")
    assert "There is no activation ICC-1999-001" in unknown.body


async def test_a_sitrep_stands_alone_every_decision_in_force_the_new_ones_marked(
    icc_desk: Desk,
) -> None:
    desk = icc_desk
    _, room, _ = await desk.open_activation("lead", control_room(desk), '!icc activate "Flood"')
    await desk.ask("member", room, "!icc log Close the E40 at Leuven --decision")
    first = await desk.ask("member", room, "!icc sitrep")
    assert re.search(r"• NEW #\d+ .* Close the E40 at Leuven", first.body)
    await desk.ask("member", room, "!icc log Open the Namur shelter --decision")
    await desk.ask("member", room, "!icc log Sandbags for Dinant --action")
    second = await desk.ask("member", room, "!icc sitrep")
    decisions = second.body.split("DECISIONS IN FORCE")[1].split("NEXT STEPS")[0]
    assert re.search(r"• #\d+ .* Close the E40 at Leuven", decisions)  # still in force
    assert re.search(r"• NEW #\d+ .* Open the Namur shelter", decisions)
    assert "Sandbags for Dinant" in second.body.split("NEXT STEPS")[1]
    assert "Level: monitoring — history: monitoring from" in second.body
    assert "((" not in second.body
    logged = await desk.ask("member", room, "!icc log Two pumps in Namur")
    seq = re.search(r"Logged #(\d+)", logged.body).group(1)  # type: ignore[union-attr]
    await desk.ask("member", room, f"!icc log correct #{seq} Three pumps in Namur")
    third = await desk.ask("member", room, "!icc sitrep")
    assert re.search(rf"#{seq} .* Two pumps in Namur \(corrected by #\d+\)", third.body)

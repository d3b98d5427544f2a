"""Who is on duty, as the cell uses it: `duty:<team>` targets resolved when a message goes out and
again when an escalation fires, `oncall` and its overrides, the shift-change brief — on the desk
(Matrix recorded, timers fired on demand). The rota files are read as in test_rota; here they
are written around the present moment, so that "now" is inside a chosen shift."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.storage import page_store
from bot.storage.models import TimerKind
from bot.timeutil import utcnow
from tests.support.bots import bot_running
from tests.support.cast import Cast, desk_cast, paging_directory
from tests.support.databases import BACKENDS
from tests.support.desk import Desk, desk_env, desk_running, pages_to
from tests.support.matrix_people import Person, body
from tests.support.processes import run_cli
from tests.support.reading import board_shows
from tests.support.recording import Recorded
from tests.support.rooms import activation_room, page_received


def minute(moment: datetime) -> str:
    """A rota's local date-time (the team's zone is UTC here), to the minute."""
    return moment.strftime("%Y-%m-%d %H:%M")


def write_rota(config: Path, team: str, rota: dict[str, Any]) -> None:
    folder = config / "rota"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{team}.yaml").write_text(yaml.safe_dump(rota, sort_keys=False))


ON_BOTH_DATABASES = pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
ROUND_THE_CLOCK = {"days": "daily", "from": "00:00", "to": "24:00", "who": "member"}


def utc_rota(
    *overrides: tuple[timedelta, timedelta, str], shifts: tuple[dict[str, str], ...] = ()
) -> dict[str, Any]:
    """A rota in UTC: `shifts`, and overrides (from, to — from now — and who)."""
    now = utcnow()
    dated = [
        {"from": minute(now + a), "to": minute(now + b), "who": who} for a, b, who in overrides
    ]
    return {"timezone": "UTC", "shifts": list(shifts), "overrides": dated}


def ercc_rota() -> dict[str, Any]:
    """Team `ercc`, round the clock: the member by default; the partner from an hour ago for two
    hours; then the member again; the deputy from tomorrow."""
    hour, day = timedelta(hours=1), timedelta(days=1)
    rota = utc_rota(
        (-hour, hour, "partner"), (day, day + 8 * hour, "deputy"), shifts=(ROUND_THE_CLOCK,)
    )
    return rota | {"coverage": "24/7"}


@pytest.fixture
async def duty_desk(tmp_path: Path, database_url: str) -> AsyncIterator[Desk]:
    """The paging directory (partner ← dg, deputy ← lead), and the `ercc` rota above."""
    write_rota(tmp_path / "config", "ercc", ercc_rota())
    contacts = paging_directory(desk_cast())
    async with desk_running(tmp_path, database_url, contacts=contacts) as running:
        yield running


async def open_room(desk: Desk) -> str:
    control = desk.room("lead", "member", "partner", "dg", "deputy")
    _ref, room, _ = await desk.open_activation("lead", control)
    return room


async def stand_in_after_the_deadline(desk: Desk, target: str, stand_in: str) -> Recorded:
    """`target` paged in a new activation and silent until the deadline: the page the stand-in
    then gets."""
    room = await open_room(desk)
    await desk.say("lead", room, f"!icc page {target} Levels at Visé? --ack 2m")
    await desk.fire(TimerKind.PAGE_STEP)
    [page] = pages_to(desk, desk.dm_of(stand_in), "Levels at Visé?")
    return page


@ON_BOTH_DATABASES
async def test_a_duty_target_pages_whoever_is_on_duty_now(duty_desk: Desk) -> None:
    desk = duty_desk
    room = await open_room(desk)
    await desk.say("lead", room, "!icc page duty:ercc Do you need Belgian experts? --ack 5m")
    [page] = pages_to(desk, desk.dm_of("partner"), "Do you need Belgian experts?")
    assert "APPEL PG-" in page.body
    async with desk.services.db.session() as session:
        pg = int(re.search(r"PG-(\d+)", page.body).group(1))  # type: ignore[union-attr]
        [row] = await page_store.targets(session, pg)
    assert (row.handle, row.duty_team) == ("partner", "ercc")


async def test_oncall_shows_who_is_on_duty_now_and_next_in_local_and_utc(
    duty_desk: Desk,
) -> None:
    room = duty_desk.room("lead", "member")
    answer = await duty_desk.ask("member", room, "!icc oncall")
    assert re.search(
        r"ercc: Partner until \w{3} \d\d? \w{3} \d\d:\d\d UTC \(\d\d:\d\dZ\)\n  next: Member from",
        answer.body,
    )


async def test_an_unknown_team_and_a_team_with_nobody_on_duty_are_refused(
    tmp_path: Path, database_url: str
) -> None:
    rota = utc_rota((timedelta(hours=2), timedelta(hours=3), "deputy"))
    write_rota(tmp_path / "config", "nl-ncc", rota)
    async with desk_running(tmp_path, database_url, contacts=paging_directory(desk_cast())) as desk:
        room = await open_room(desk)
        unknown = await desk.ask("lead", room, "!icc page duty:nlncc Status?")
        assert "No duty rota for team `nlncc` (teams: nl-ncc)" in unknown.body
        nobody = await desk.ask("lead", room, "!icc page duty:nl-ncc Status?")
        assert "Nobody is on duty in nl-ncc now; next: Deputy from" in nobody.body
        assert not [
            r for r in desk.messenger.recorded if r.kind == "create_room" and r.details["direct"]
        ]


@ON_BOTH_DATABASES
async def test_an_escalation_after_a_shift_change_pages_the_new_duty_officer(
    duty_desk: Desk,
) -> None:
    """The partner was on duty when paged; by the deadline the lead has put the deputy on duty:
    the stand-in is the deputy (on duty now), not the partner's backup in the directory (dg)."""
    desk = duty_desk
    room = await open_room(desk)
    await desk.say("lead", room, "!icc page duty:ercc Levels at Visé? --ack 2m")
    [page] = pages_to(desk, desk.dm_of("partner"), "Levels at Visé?")
    pg = re.search(r"PG-\d+", page.body).group(0)  # type: ignore[union-attr]
    answer = await desk.ask("lead", room, "!icc oncall override ercc deputy --until 3h")
    assert "Deputy is on duty for ercc until" in answer.body
    assert "instead of Partner" in answer.body
    [brief] = [r for r in desk.messenger.events(desk.dm_of("deputy")) if "dienst" in r.body]
    assert "U hebt dienst voor ercc tot" in brief.body  # in the deputy's language
    assert f"Oproepen zonder antwoord: {pg} Partner" in brief.body
    await desk.fire(TimerKind.PAGE_STEP)  # the deadline: repeat, and the stand-in
    [stand_in] = pages_to(desk, desk.dm_of("deputy"), pg)
    assert "als vervanger van Partner" in stand_in.body
    dms = [r for r in desk.messenger.recorded if r.kind == "create_room" and r.details["direct"]]
    assert desk.who("dg") not in [user for r in dms for user in r.details["invite"]]


async def test_the_backup_of_a_duty_officer_is_the_one_their_contact_names(
    duty_desk: Desk,
) -> None:
    stand_in = await stand_in_after_the_deadline(duty_desk, "duty:ercc", "dg")
    assert "Partner hat nicht geantwortet" in stand_in.body


async def test_a_duty_officer_without_a_named_backup_is_backed_by_the_next_on_the_rota(
    tmp_path: Path, database_url: str
) -> None:
    later = (timedelta(hours=4), timedelta(hours=6), "deputy")
    write_rota(tmp_path / "config", "icc", utc_rota(later, shifts=(ROUND_THE_CLOCK,)))
    async with desk_running(tmp_path, database_url, contacts=paging_directory(desk_cast())) as desk:
        stand_in = await stand_in_after_the_deadline(desk, "duty:icc", "deputy")
        assert "als vervanger van Member" in stand_in.body


@ON_BOTH_DATABASES
async def test_an_override_is_logged_outlives_a_restart_and_ends_by_itself(
    tmp_path: Path, database_url: str
) -> None:
    write_rota(tmp_path / "config", "ercc", ercc_rota())
    contacts = paging_directory(desk_cast())
    async with desk_running(tmp_path, database_url, contacts=contacts) as desk:
        control = desk.room("lead", "member", "partner", "dg", "deputy")
        ref, room, _ = await desk.open_activation("lead", control)
        await desk.ask("lead", room, "!icc oncall override ercc deputy --until 2h")
        await desk.ask("member", room, "!icc log export md")
        assert "Deputy on duty for ercc until" in desk.file(room, f"{ref}-logbook.md").decode()
    async with desk_running(tmp_path, database_url, contacts=contacts) as desk:  # a restart
        listed = await desk.ask("member", desk.room("member"), "!icc oncall ercc")
        assert "ercc: Deputy until" in listed.body
        assert "(put on by Lead)" in listed.body
        later = utcnow() + timedelta(hours=2, minutes=1)
        assert [on.contact.handle for on in desk.services.duty.on_duty("ercc", later)] == ["member"]


async def test_an_override_needs_a_lead_a_known_person_and_a_time(duty_desk: Desk) -> None:
    desk = duty_desk
    room = desk.room("lead", "member")
    refused = await desk.ask("member", room, "!icc oncall override ercc deputy --until 2h")
    assert "lead" in refused.body.lower()
    unknown = await desk.ask("lead", room, "!icc oncall override ercc depty --until 2h")
    assert "No contact `depty` (did you mean `deputy`?)" in unknown.body
    no_time = await desk.ask("lead", room, "!icc oncall override ercc deputy")
    assert "missing --until TIME" in no_time.body
    assert [on.contact.handle for on in desk.services.duty.on_duty("ercc")] == ["partner"]


async def test_a_rota_naming_an_unknown_person_is_refused_by_check_and_reload(
    duty_desk: Desk, tmp_path: Path, database_url: str
) -> None:
    rota = ercc_rota()
    rota["overrides"][0]["who"] = "partnr"
    write_rota(tmp_path / "config", "ercc", rota)
    written = (tmp_path / "config" / "rota" / "ercc.yaml").read_text().splitlines()
    line = next(n for n, text in enumerate(written, 1) if "partnr" in text)
    checked = run_cli(desk_env(tmp_path, database_url), "check")
    assert checked.returncode == 2
    assert (
        f"ercc.yaml: line {line}: overrides[0]: who: unknown person `partnr`; "
        "did you mean `partner`?"
    ) in checked.stderr
    assert not await duty_desk.services.keeper.reload()
    assert [on.contact.handle for on in duty_desk.services.duty.on_duty("ercc")] == ["partner"]


async def test_check_warns_of_a_gap_in_a_round_the_clock_team(
    tmp_path: Path, database_url: str
) -> None:
    rota = ercc_rota()
    rota["shifts"][0].update({"from": "07:00", "to": "19:00"})
    write_rota(tmp_path / "config", "ercc", rota)
    (tmp_path / "config" / "directory.yaml").write_text(
        yaml.safe_dump(paging_directory(desk_cast()))
    )
    checked = run_cli(desk_env(tmp_path, database_url), "check")
    assert checked.returncode == 0, checked.stderr
    assert "warning: " in checked.stderr
    assert "coverage: nobody on duty from" in checked.stderr
    assert "1 rotas (ercc)" in checked.stdout


@ON_BOTH_DATABASES
async def test_the_person_coming_on_duty_hears_what_is_open_once(duty_desk: Desk) -> None:
    desk = duty_desk
    room = await open_room(desk)
    await desk.say("lead", room, "!icc page dg Convoy at the border? --ack 30m")
    [change] = await desk.armed(TimerKind.SHIFT_CHANGE)
    assert change.key.startswith("shift:ercc:")  # the partner's override ends: the member's turn
    sent = await desk.fire(TimerKind.SHIFT_CHANGE)
    [brief] = briefs(desk, sent, "member")
    assert "You are on duty for ercc" in brief.body
    assert "Pages without an answer: PG-1 Dg" in brief.body
    await desk.services.duty.ensure_armed()  # as after a restart or a reload
    again = await desk.fire(TimerKind.SHIFT_CHANGE, key=change.key)
    assert not briefs(desk, again, "member")
    [following] = await desk.armed(TimerKind.SHIFT_CHANGE)
    assert following.due_at > change.due_at  # the change after it is armed


def briefs(desk: Desk, sent: list[Recorded], person: str) -> list[Recorded]:
    """The messages among `sent` in `person`'s direct-message room."""
    return [r for r in sent if r.kind == "message" and r.room_id == desk.dm_of(person)]


# -- through Synapse -------------------------------------------------------------------------------


@pytest.mark.synapse
async def test_a_duty_page_reaches_the_duty_officer_on_the_homeserver(
    paging_env: dict[str, str], people: dict[str, Person], cast: Cast
) -> None:
    write_rota(Path(paging_env["ICC_CONFIG_DIR"]), "ercc", ercc_rota())
    async with bot_running(paging_env):
        _ref, room = await activation_room(people, cast)
        member = people["member"]
        listed = await member.ask(room, "!icc oncall ercc", cast.bot.user_id)
        assert "ercc: Partner until" in body(listed)
        await member.send(room, "!icc page duty:ercc Are ERCC liaison officers needed? --ack 5m")
        _dm, page = await page_received(people["partner"], cast, "ERCC liaison officers")
        pg = re.search(r"PG-\d+", body(page)).group(0)  # type: ignore[union-attr]
        board = await board_shows(member, room, cast, pg, "0/1 acknowledged")
        assert "Partner" in board
        assert "Dg" not in board  # the partner's organisation (ERCC) is not paged whole

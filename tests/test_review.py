"""The after-action review (SPEC, "After-action review"; issue 24): on `close` and on `review`,
the review in Markdown, HTML and PDF with its figures and charts, in the record bundle with the
checksums; participants asked for `feedback` by DM, their answers added to a new version at most
once an hour; lessons (`log … --lesson`) become improvement actions that outlive the
activation."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from sqlmodel import select

from bot.devserver import DevServer
from bot.review import review as review_module
from bot.review.review import Reviews
from bot.settings import load_settings
from bot.storage import review_store
from bot.storage.models import Timer, TimerKind
from tests.support.bots import CrashPoint, RunningBot
from tests.support.cast import Cast
from tests.support.desk import Desk
from tests.support.matrix_people import Person, body
from tests.support.reach import paged
from tests.support.review import (
    FEEDBACK_ASKED,
    FEEDBACK_HEADER,
    REF,
    START,
    Played,
    asked_for_feedback,
    pdf_text,
    play,
)
from tests.support.review_scenario import Scripted, near, played_on_homeserver, seconds_read
from tests.support.rooms import activation_room, dm_text


async def opened(desk: Desk) -> str:
    """An activation with one page already out (the partner has a DM room); its room."""
    return await paged(desk, "dg", "Warm-up")


@pytest.fixture
async def played(paging_desk: Desk) -> Played:
    """The scripted activation (tests/support/review.py), closed."""
    return await play(paging_desk)


def group(figures: dict, kind: str, name: str) -> dict:
    [found] = [g for g in figures[kind] if g["group"] == name]
    return found


# -- the figures, against what the script did -----------------------------------------------------


async def test_the_time_from_activation_to_first_page(played: Played) -> None:
    assert played.figures["first_page_s"] == 90
    assert "Time from activation to first page: 1m30s" in played.markdown


async def test_ack_latency_per_organisation_median_and_slowest(played: Played) -> None:
    ercc = group(played.figures, "by_organisation", "ERCC")
    nccn = group(played.figures, "by_organisation", "NCCN")
    assert (ercc["paged"], ercc["acked"], ercc["median_s"], ercc["slowest_s"]) == (2, 2, 75, 120)
    assert ercc["slowest"] == "Partner"
    assert (nccn["paged"], nccn["acked"], nccn["median_s"], nccn["slowest"]) == (
        2,
        1,
        300,
        "Deputy",
    )
    assert "| ERCC | 2 | 2 | 1m15s | 2m (Partner) |" in played.markdown


async def test_ack_latency_per_channel(played: Played) -> None:
    matrix = group(played.figures, "by_channel", "matrix")
    assert (matrix["acked"], matrix["median_s"], matrix["slowest_s"]) == (3, 120, 300)


async def test_the_unreachable_person_and_the_channels_tried(played: Played) -> None:
    [ghost] = played.figures["unreached"]
    assert (ghost["name"], ghost["page"], ghost["state"]) == ("Ghost", "PG-1", "unreachable")
    assert ghost["channels"] == ["matrix: delivered"]


async def test_the_late_input_and_by_how_much(played: Played) -> None:
    [late] = played.figures["inputs"]
    assert (late["request"], late["name"], late["late_by_s"]) == ("RQ-1", "Dg", 300)
    assert "RQ-1 Dg (ERCC): answered 5m late" in played.markdown


async def test_the_late_action_and_the_open_one(played: Played) -> None:
    done_late, still_open = played.figures["actions"]
    assert (done_late["ref"], done_late["state"], done_late["late_by_s"]) == (
        "A-1",
        "done late",
        600,
    )
    assert (still_open["ref"], still_open["state"]) == ("A-2", "open")


async def test_round_attendance_per_run(played: Played) -> None:
    first, second = played.figures["rounds"]
    assert (first["reported"], first["expected"], first["missing"]) == (1, 2, ["Deputy"])
    assert (second["reported"], second["expected"], second["missing"]) == (2, 2, [])


async def test_the_level_history(played: Played) -> None:
    assert [level for _at, level, _by in played.figures["levels"]] == ["monitoring", "full"]


async def test_the_pdf_reads_back_with_the_same_figures(played: Played) -> None:
    text = played.pdf_text()
    assert re.search(r"Time from activation to first page\s+1m30s", text)
    assert re.search(r"ERCC\s+2\s+2\s+1m15s\s+2m \(Partner\)", text)
    assert re.search(r"NCCN\s+2\s+1\s+5m\s+5m \(Deputy\)", text)
    assert "Ghost (NCCN), PG-1: unreachable" in text
    assert re.search(r"RD-1 #1 .* 1 of 2\s+Deputy", text)


async def test_the_review_and_its_charts_are_in_the_bundle_with_their_checksums(
    paging_desk: Desk, played: Played
) -> None:
    manifest = paging_desk.file(played.room, f"{REF}-SHA256SUMS").decode()
    listed = dict(reversed(line.split("  ")) for line in manifest.splitlines())
    for suffix in (".md", ".html", ".pdf", "-figures.json", "-ack-latency.png", "-attendance.svg"):
        name = f"{REF}-review-v1{suffix}"
        assert listed[name] == hashlib.sha256(paging_desk.file(played.room, name)).hexdigest()


async def test_charts_are_png_in_markdown_and_svg_in_html(
    paging_desk: Desk, played: Played
) -> None:
    html = paging_desk.file(played.room, f"{REF}-review-v1.html").decode()
    assert f"({REF}-review-v1-ack-latency.png)" in played.markdown
    assert paging_desk.file(played.room, f"{REF}-review-v1-ack-latency.png")[:4] == b"\x89PNG"
    assert html.count("<svg") == 2  # latency and attendance, inline


# -- feedback -------------------------------------------------------------------------------------


async def test_every_participant_is_asked_for_feedback_in_their_language(played: Played) -> None:
    assert "6 participants asked for `feedback` by DM" in played.close


async def test_a_participant_is_asked_in_their_language(paging_desk: Desk, played: Played) -> None:
    [asked] = [
        t for t in paging_desk.messenger.texts(paging_desk.dm_of("deputy")) if "FEEDBACK" in t
    ]
    assert "Hoe heeft het ICC tijdens deze activering met u samengewerkt?" in asked


async def test_the_close_arms_one_request_per_participant_in_its_own_transaction(
    paging_desk: Desk,
) -> None:
    desk = paging_desk
    room = (await play(desk, close=False)).room
    await desk.say("lead", room, "!icc close Drill over")
    asks = await desk.armed(TimerKind.FEEDBACK_ASK)
    assert len(asks) == 6
    async with desk.services.db.session() as session:
        rows = await review_store.feedback_of(session, 1)
    assert {row.matrix_id for row in rows} == {t.payload["matrix_id"] for t in asks}
    assert all(row.asked_at is None for row in rows)  # the timers ask, not the close


async def test_a_request_run_again_after_a_crash_asks_nobody_twice(
    paging_desk: Desk, played: Played
) -> None:
    desk = paging_desk
    async with desk.services.db.session() as session:
        asks = list(
            (await session.exec(select(Timer).where(Timer.kind == TimerKind.FEEDBACK_ASK))).all()
        )
    mark = len(desk.messenger.recorded)
    assert await desk.services.reviews.on_asks(asks) == []
    assert not [r for r in desk.messenger.recorded[mark:] if "FEEDBACK" in r.body]


async def test_two_answers_make_a_new_version_anonymous_unless_signed(
    paging_desk: Desk, played: Played
) -> None:
    desk = paging_desk
    await desk.say("partner", desk.dm_of("partner"), "!icc feedback 4 Clear pages")
    await desk.say("dg", desk.dm_of("dg"), "!icc feedback 2 Too many DMs --signed")
    await desk.fire(TimerKind.REVIEW_REPOST)
    text = pdf_text(desk.file(played.room, f"{REF}-review-v2.pdf"))
    assert re.search(r"Feedback\s+2 of 6 asked, mean score 3.0 / 5", text)
    assert "4/5 — Clear pages (anonymous)" in text
    assert "2/5 — Too many DMs (Dg)" in text


async def test_the_thanks_for_feedback_are_framed_as_the_activation_in_the_direct_room(
    paging_desk: Desk, played: Played
) -> None:
    desk = paging_desk
    thanks = await desk.ask("partner", desk.dm_of("partner"), "!icc feedback 4 Clear pages")
    assert thanks.body.startswith(f"TLP:AMBER · {REF}\n")


async def test_feedback_reposts_the_review_at_most_once_an_hour(
    paging_desk: Desk, played: Played
) -> None:
    desk = paging_desk
    with time_machine.travel(START + timedelta(hours=1, minutes=5), tick=False):
        await desk.say("partner", desk.dm_of("partner"), "!icc feedback 4")
        await desk.say("dg", desk.dm_of("dg"), "!icc feedback 3")
    [timer] = await desk.armed(TimerKind.REVIEW_REPOST)
    async with desk.services.db.session() as session:
        [first] = await review_store.reviews(session, 1)
    assert timer.due_at == first.posted_at + timedelta(hours=1)


async def test_feedback_before_the_close_is_refused(paging_desk: Desk) -> None:
    desk = paging_desk
    await play(desk, close=False)
    refused = await desk.ask("partner", desk.dm_of("partner"), f"!icc feedback 4 --on {REF}")
    assert "not closed yet" in refused.body


async def test_a_score_outside_1_to_5_is_refused(paging_desk: Desk, played: Played) -> None:
    refused = await paging_desk.ask("partner", paging_desk.dm_of("partner"), "!icc feedback 7")
    assert "from 1 (poor) to 5 (excellent)" in refused.body


async def test_review_on_demand_posts_the_review_of_an_open_activation(
    paging_desk: Desk,
) -> None:
    desk = paging_desk
    room = await opened(desk)
    reply = await desk.ask("lead", room, "!icc review")
    assert f"{REF}-review-v1" in reply.body
    assert "Time from activation to first page" in desk.file(room, f"{REF}-review-v1.md").decode()


async def test_review_again_within_a_minute_is_refused_with_when_it_can_be_made(
    paging_desk: Desk,
) -> None:
    desk = paging_desk
    with time_machine.travel(START, tick=False) as clock:
        room = await opened(desk)
        await desk.ask("lead", room, "!icc review")
        clock.move_to(START + timedelta(seconds=20))
        refused = await desk.ask("lead", room, "!icc review")
    assert f"version 1: {REF}-review-v1.md" in refused.body
    assert "A fresh version can be made from 09:01 Brussels (08:01Z), in 40 s" in refused.body
    assert not [r for r in desk.messenger.events(room) if r.body == f"{REF}-review-v2.md"]


async def test_review_too_soon_is_told_in_the_leads_language(paging_desk: Desk) -> None:
    desk = paging_desk
    room = await opened(desk)
    await desk.ask("lead", room, "!icc review")
    refused = await desk.ask("deputy", room, "!icc review")
    assert "De evaluatie van ICC-2026-001 is zojuist gemaakt (versie 1" in refused.body


async def test_review_right_after_a_close_whose_review_failed_is_not_too_soon(
    paging_desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    desk = paging_desk
    room = await opened(desk)
    real = review_module.compose

    def fails_once(*args: Any) -> Any:
        monkeypatch.setattr(review_module, "compose", real)
        raise RuntimeError("no fonts")

    monkeypatch.setattr(review_module, "compose", fails_once)
    closed = await desk.ask("lead", room, "!icc close Drill over")
    assert "could not be built" in closed.body
    reply = await desk.ask("lead", room, "!icc review")
    assert f"{REF}-review-v1" in reply.body
    assert desk.file(room, f"{REF}-review-v1.pdf").startswith(b"%PDF")


async def test_review_a_minute_later_renders_a_fresh_version(paging_desk: Desk) -> None:
    desk = paging_desk
    with time_machine.travel(START, tick=False) as clock:
        room = await opened(desk)
        await desk.ask("lead", room, "!icc review")
        clock.move_to(START + timedelta(minutes=1))
        reply = await desk.ask("lead", room, "!icc review")
    assert f"{REF}-review-v2" in reply.body
    assert desk.file(room, f"{REF}-review-v2.pdf").startswith(b"%PDF")


# -- lessons and improvement actions ---------------------------------------------------------------


async def test_a_lesson_becomes_an_improvement_action_of_the_lead_due_in_14_days(
    paging_desk: Desk,
) -> None:
    desk = paging_desk
    room = await opened(desk)
    reply = await desk.ask("member", room, "!icc log The ERCC number was outdated --lesson")
    assert "Improvement action A-1 for Lead, due " in reply.body
    [_remind, chase] = sorted(await desk.armed(TimerKind.ACTION_STEP), key=lambda t: t.due_at)
    assert chase.key == "improve:A-1:chase"
    assert 13.9 < (chase.due_at - chase.created_at).total_seconds() / 86400 < 14.1


async def test_a_lessons_improvement_action_is_chased_after_the_close(paging_desk: Desk) -> None:
    desk = paging_desk
    room = await opened(desk)
    await desk.say(
        "member", room, "!icc log Update the ERCC number --lesson --owner partner --due 2h"
    )
    await desk.say("lead", room, "!icc close Drill over")
    await desk.fire(TimerKind.ACTION_STEP, key=":chase")
    dm = desk.dm_of("partner")
    assert len([t for t in desk.messenger.texts(dm) if "ÉCHÉANCE — ACTION A-1" in t]) == 1


async def test_an_ordinary_action_is_not_chased_after_the_close(paging_desk: Desk) -> None:
    desk = paging_desk
    room = await opened(desk)
    await desk.say("member", room, "!icc action Call Paris --owner partner --due 2h")
    await desk.say("lead", room, "!icc close Drill over")
    assert not await desk.armed(TimerKind.ACTION_STEP)


async def test_actions_improvement_lists_lessons_across_activations_even_closed(
    paging_desk: Desk,
) -> None:
    desk = paging_desk
    room = await opened(desk)
    await desk.say("member", room, "!icc log Update the ERCC number --lesson --owner partner")
    await desk.say("member", room, "!icc action Call Paris --owner partner --due 2h")
    await desk.say("lead", room, "!icc close Drill over")
    listed = await desk.ask("member", desk.room("member"), "!icc actions --improvement")
    assert "A-1 Partner · ICC-2026-001" in listed.body
    assert "A-2" not in listed.body


async def test_an_improvement_action_is_done_after_the_close(paging_desk: Desk) -> None:
    desk = paging_desk
    room = await opened(desk)
    await desk.say("member", room, "!icc log Update the ERCC number --lesson --owner partner")
    await desk.say("lead", room, "!icc close Drill over")
    done = await desk.ask("partner", desk.dm_of("partner"), "!icc done A-1 updated")
    assert "✅ A-1 done" in done.body
    assert not await desk.armed(TimerKind.ACTION_STEP)


@pytest.mark.parametrize("text", ["--owner partner", "--due 2h"])
async def test_owner_and_due_without_lesson_are_refused(paging_desk: Desk, text: str) -> None:
    desk = paging_desk
    room = await opened(desk)
    refused = await desk.ask("member", room, f"!icc log Pumps arrived {text}")
    assert "go with `--lesson`" in refused.body


# -- through Synapse -------------------------------------------------------------------------------


@pytest.mark.synapse
async def test_a_restart_between_the_close_and_the_asks_asks_everyone_once(
    paging_env: dict[str, str],
    people: dict[str, Person],
    cast: Cast,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bot stops as it asks the member for feedback (whoever came before asked, the rest
    not): after the restart every participant has been asked, once."""
    crash = CrashPoint(
        monkeypatch,
        Reviews,
        "_ask",
        lambda _reviews, _activation, matrix_id: matrix_id == cast.member.user_id,
    )
    running = RunningBot(load_settings(paging_env))
    await running.start()
    try:
        _ref, room = await activation_room(people, cast)
        await people["member"].send(room, "!icc page partner Pumps needed --ack 30m")
        partner_dm, _page = await dm_text(people["partner"], cast, "Pumps needed")
        closed = await people["lead"].ask(room, "!icc close Drill over", cast.bot.user_id)
        assert "4 participants asked for `feedback` by DM" in body(closed)
        await crash.wait()
        await running.stop()
        crash.restore()
        await running.start()
        asked = {
            "partner": await asked_for_feedback(people["partner"], cast, partner_dm),
            **{role: await asked_for_feedback(people[role], cast) for role in FEEDBACK_ASKED},
        }
        await people["member"].quiet_period(2)
        for role, dm in asked.items():
            await people[role].quiet_period(0.3)
            said = [body(e) for e in people[role].events(dm, cast.bot.user_id)]
            assert len([b for b in said if FEEDBACK_HEADER[role] in b]) == 1, (role, said)
    finally:
        await running.stop()


# -- the scripted activation, played once on the homeserver (tests/support/review_scenario.py) -----


@pytest.fixture(scope="module")
def scripted(synapse: DevServer, tmp_path_factory: pytest.TempPathFactory) -> Scripted:
    return played_on_homeserver(synapse, tmp_path_factory.mktemp("review-scripted"))


@pytest.mark.synapse
def test_on_the_homeserver_the_time_to_first_page_is_what_the_script_waited(
    scripted: Scripted,
) -> None:
    assert near(scripted.figures["first_page_s"], scripted.first_page_s, 1.0)


@pytest.mark.synapse
def test_on_the_homeserver_ack_latency_per_organisation_is_what_the_script_waited(
    scripted: Scripted,
) -> None:
    acked = scripted.ack_s
    ercc = group(scripted.figures, "by_organisation", "ERCC")
    nccn = group(scripted.figures, "by_organisation", "NCCN")
    assert (ercc["paged"], ercc["acked"], ercc["slowest"]) == (2, 2, "Partner")
    assert near(ercc["median_s"], (acked["dg"] + acked["partner"]) / 2)
    assert near(ercc["slowest_s"], acked["partner"])
    assert (nccn["paged"], nccn["acked"], nccn["slowest"]) == (2, 1, "Deputy")
    assert near(nccn["median_s"], acked["deputy"])


@pytest.mark.synapse
def test_on_the_homeserver_ack_latency_per_channel(scripted: Scripted) -> None:
    [matrix] = scripted.figures["by_channel"]
    assert (matrix["group"], matrix["acked"], matrix["slowest"]) == ("matrix", 3, "Deputy")
    assert near(matrix["median_s"], scripted.ack_s["partner"])


@pytest.mark.synapse
def test_on_the_homeserver_the_unreachable_person_is_named(scripted: Scripted) -> None:
    [silent] = scripted.figures["unreached"]
    assert (silent["name"], silent["page"], silent["state"]) == ("Silent", "PG-1", "unreachable")
    assert silent["channels"][0].startswith("matrix: delivered")


@pytest.mark.synapse
def test_on_the_homeserver_the_late_input_is_listed_with_how_late(scripted: Scripted) -> None:
    [late] = scripted.figures["inputs"]
    assert (late["request"], late["name"]) == ("RQ-1", "Dg")
    assert near(late["late_by_s"], scripted.input_late_s)


@pytest.mark.synapse
def test_on_the_homeserver_the_late_action_is_listed_with_how_late(scripted: Scripted) -> None:
    done_late, lesson = scripted.figures["actions"]
    assert (done_late["ref"], done_late["state"]) == ("A-1", "done late")
    assert near(done_late["late_by_s"], scripted.action_late_s)
    assert (lesson["ref"], lesson["state"], lesson["improvement"]) == (
        scripted.lesson,
        "open",
        True,
    )


@pytest.mark.synapse
def test_on_the_homeserver_round_attendance(scripted: Scripted) -> None:
    first, second = scripted.figures["rounds"]
    assert (first["reported"], first["expected"], first["missing"]) == (1, 2, ["Deputy"])
    assert (second["reported"], second["expected"], second["missing"]) == (2, 2, [])


@pytest.mark.synapse
def test_on_the_homeserver_the_level_history(scripted: Scripted) -> None:
    assert [level for _at, level, _by in scripted.figures["levels"]] == ["monitoring", "full"]


@pytest.mark.synapse
def test_on_the_homeserver_the_pdf_reads_back_what_the_script_did(scripted: Scripted) -> None:
    text, acked = scripted.pdf, scripted.ack_s
    [first] = seconds_read(r"Time from activation to first page\s+(\S+)", text)
    ercc_median, ercc_slowest = seconds_read(r"ERCC\s+2\s+2\s+(\S+)\s+(\S+) \(Partner\)", text)
    [nccn_median, _slowest] = seconds_read(r"NCCN\s+2\s+1\s+(\S+)\s+(\S+) \(Deputy\)", text)
    [input_late] = seconds_read(r"RQ-1 Dg \(ERCC\): answered (\S+) late", text)
    [action_late] = seconds_read(r"A-1 Partner: Call Paris — done (\S+) late", text)
    assert near(first, scripted.first_page_s, 1.5)
    assert near(ercc_median, (acked["dg"] + acked["partner"]) / 2, 1.5)
    assert near(ercc_slowest, acked["partner"], 1.5)
    assert near(nccn_median, acked["deputy"], 1.5)
    assert near(input_late, scripted.input_late_s, 1.5)
    assert near(action_late, scripted.action_late_s, 1.5)
    assert "Silent (NCCN), PG-1: unreachable" in text
    assert re.search(r"RD-1 #1 .* 1 of 2\s+Deputy", text)
    assert re.search(r"RD-2 #1 .* 2 of 2\s+—", text)


@pytest.mark.synapse
def test_on_the_homeserver_every_participant_is_asked_in_their_language(
    scripted: Scripted,
) -> None:
    assert "6 participants asked for `feedback` by DM" in scripted.close
    assert sorted(scripted.asked) == ["deputy", "dg", "lead", "member", "partner", "silent"]
    for who, request in scripted.asked.items():
        assert FEEDBACK_HEADER.get(who, FEEDBACK_HEADER["lead"]) in request, who


@pytest.mark.synapse
def test_on_the_homeserver_feedback_is_taken_signed_or_anonymous(scripted: Scripted) -> None:
    ref = scripted.ref
    assert (
        f"votre retour sur {ref} (4/5) est enregistré, signé de votre nom"
        in (scripted.thanks["partner"])
    )
    assert f"Ihre Rückmeldung zu {ref} (2/5) ist erfasst, anonym" in scripted.thanks["dg"]


@pytest.mark.synapse
def test_on_the_homeserver_the_reposted_review_has_the_feedback(scripted: Scripted) -> None:
    text = scripted.feedback_pdf
    assert re.search(r"Feedback\s+2 of 6 asked, mean score 3.0 / 5", text)
    assert "4/5 — Clear pages (Partner)" in text
    assert "2/5 — Too many DMs (anonymous)" in text


@pytest.mark.synapse
def test_on_the_homeserver_the_lessons_improvement_action_is_chased_after_the_close(
    scripted: Scripted,
) -> None:
    assert scripted.lesson != "A-1"
    assert f"ÉCHÉANCE — ACTION {scripted.lesson}" in scripted.chase

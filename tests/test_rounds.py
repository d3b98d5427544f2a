"""Coordination rounds: schedule parsing across daylight-saving changes, a round end to end on the
test homeserver (prompt, updates by command and thread reply, reminder, summary), and runs that
fall due while the bot is down (run once if recent, reported missed otherwise, never twice)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select

from bot.rounds.recurrence import next_run, to_cron
from bot.settings import load_settings
from bot.storage.db import Database
from bot.storage.models import Timer, TimerKind
from bot.timeutil import utcnow
from tests.support.bots import RunningBot, bot_running
from tests.support.cast import Cast
from tests.support.desk import Desk
from tests.support.matrix_people import Person, body
from tests.support.rooms import activation_room


@pytest.mark.parametrize(
    ("when", "cron"),
    [
        ("every 30m", "*/30 * * * *"),
        ("every 1h", "0 * * * *"),
        ("every 6h", "0 */6 * * *"),
        ("daily 09:00", "0 9 * * *"),
        ("Daily  7:05", "5 7 * * *"),
        ("weekdays 08:30", "30 8 * * 1-5"),
        ("0 9 * * 1-5", "0 9 * * 1-5"),
    ],
)
def test_schedule_forms(when: str, cron: str) -> None:
    assert to_cron(when) == cron


@pytest.mark.parametrize(
    ("when", "problem"),
    [
        ("every 7m", "divide the hour"),
        ("daily 25:00", "not a schedule"),
        ("hourly", "not a schedule"),
        ("61 * * * *", "not a valid cron"),
    ],
)
def test_bad_schedules_say_what_works(when: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        to_cron(when)


def test_daily_nine_stays_nine_in_brussels_across_both_changes() -> None:
    spring = next_run("0 9 * * *", "Europe/Brussels", datetime(2026, 3, 28, 12, tzinfo=UTC))
    autumn = next_run("0 9 * * *", "Europe/Brussels", datetime(2026, 10, 24, 12, tzinfo=UTC))
    assert spring == datetime(2026, 3, 29, 7, tzinfo=UTC)  # 09:00 CEST, the first summer day
    assert autumn == datetime(2026, 10, 25, 8, tzinfo=UTC)  # 09:00 CET, the first winter day
    assert next_run("0 9 * * *", "America/New_York", datetime(2026, 3, 8, 12, tzinfo=UTC)) == (
        datetime(2026, 3, 8, 13, tzinfo=UTC)  # 09:00 EDT, hours after New York's change
    )


def test_weekdays_skip_the_weekend_and_a_run_at_the_same_instant_is_not_repeated() -> None:
    friday_after = datetime(2026, 11, 27, 9, tzinfo=UTC)  # Fri 10:00 Brussels
    assert next_run("30 8 * * 1-5", "Europe/Brussels", friday_after) == datetime(
        2026, 11, 30, 7, 30, tzinfo=UTC
    )
    exactly = datetime(2026, 11, 30, 7, 30, tzinfo=UTC)
    assert next_run("30 8 * * 1-5", "Europe/Brussels", exactly) == datetime(
        2026, 12, 1, 7, 30, tzinfo=UTC
    )


pytest_synapse = pytest.mark.synapse


async def test_a_round_end_to_end(paging_desk: Desk) -> None:
    """On the desk: its reminder and its end fire when the test says, not after the window."""
    desk = paging_desk
    control = desk.room("lead", "member", "partner", "dg", "deputy")
    ref, room, _ = await desk.open_activation("lead", control)
    await desk.say(
        "member",
        room,
        '!icc round now --with member,deputy,lead --window 6s --agenda "Roads; Shelters"',
    )
    [prompt] = [r for r in await desk.fire("round.run") if "COORDINATION ROUND RD-" in r.body]
    rd = prompt.body.split("COORDINATION ROUND ")[1].split(" ")[0]
    assert prompt.msgtype == "m.text"
    assert set(prompt.mentions) == {desk.who(p) for p in ("member", "deputy", "lead")}
    assert "1. Roads" in prompt.body
    assert "2. Shelters" in prompt.body
    # Those it rings are pills in the formatted text: the names people see, linked to them.
    html = prompt.content["formatted_body"]
    assert f'<a href="https://matrix.to/#/{desk.who("deputy")}">Deputy</a>' in html
    recorded = await desk.ask("member", room, "!icc update Roads N4 and E411 closed near Namur")
    assert f"Recorded for {rd} #1" in recorded.body
    assert prompt.event_id is not None
    thread = {
        "rel_type": "m.thread",
        "event_id": prompt.event_id,
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": prompt.event_id},
    }
    reply, sent = await desk.said(
        "deputy", room, "Shelters: 340 people in Namur", relates_to=thread
    )
    assert [(r.kind, r.relation.get("event_id")) for r in sent] == [("reaction", reply)]
    [reminder] = await desk.fire("round.remind")
    assert "halfway" in reminder.body
    assert "still waiting for Lead" in reminder.body
    assert reminder.mentions == [desk.who("lead")]
    assert (
        f'<a href="https://matrix.to/#/{desk.who("lead")}">Lead</a>'
        in reminder.content["formatted_body"]
    )
    assert reminder.relation["event_id"] == prompt.event_id
    [summary] = [r for r in await desk.fire("round.close") if f"{rd} #1 closed" in r.body]
    assert "Member: Roads N4 and E411 closed near Namur" in summary.body
    assert "Deputy: Shelters: 340 people in Namur" in summary.body
    assert "No report from: Lead." in summary.body
    late = await desk.ask("lead", room, "!icc update too late")
    assert "No round is open in this room" in late.body
    status = await desk.ask("member", room, f"!icc status {ref}")
    assert ref in status.body


async def test_close_ends_a_running_round_with_its_summary_and_keeps_it_in_the_record(
    paging_desk: Desk,
) -> None:
    desk = paging_desk
    ref, room, _ = await desk.open_activation("lead", desk.room("lead", "member", "deputy"))
    await desk.say("member", room, "!icc round now --with member,deputy --agenda Pumps; roads")
    [prompt] = [r for r in await desk.fire("round.run") if "COORDINATION ROUND RD-" in r.body]
    rd = prompt.body.split("COORDINATION ROUND ")[1].split(" ")[0]
    await desk.ask("member", room, "!icc update Two pumps in Namur")
    closed = await desk.say("lead", room, "!icc close Water receding")
    summaries = [i for i, r in enumerate(closed) if f"{rd} #1 closed" in r.body]
    reports = [i for i, r in enumerate(closed) if "closed" in r.body and "Water receding" in r.body]
    assert summaries, [r.body for r in closed]
    assert summaries[0] < min(reports or [len(closed)])  # the summary first, then the close
    document = json.loads(desk.file(room, f"{ref}-record.json"))
    [run] = document["rounds"]
    assert run["round"] == rd
    assert run["agenda"] == "Pumps; roads"
    assert [u["text"] for u in run["updates"]] == ["Two pumps in Namur"]
    assert run["did_not_report"] == ["Deputy"]
    markdown = desk.file(room, f"{ref}-record.md").decode()
    assert "## Coordination rounds" in markdown
    assert "Two pumps in Namur" in markdown


async def test_close_ends_the_activations_schedules(paging_desk: Desk) -> None:
    desk = paging_desk
    _ref, room, _ = await desk.open_activation("lead", desk.room("lead", "member"))
    await desk.ask("lead", room, "!icc round schedule daily 09:00 --with member")
    assert "RD-1" in (await desk.ask("member", room, "!icc rounds")).body
    await desk.say("lead", room, "!icc close Water receding")
    listed = await desk.ask("member", desk.room("member"), "!icc rounds")
    assert "No round is scheduled." in listed.body


async def test_after_a_checks_window_its_silent_people_are_not_waiting(paging_desk: Desk) -> None:
    desk = paging_desk
    _ref, room, _ = await desk.open_activation("lead", desk.room("lead", "member"))
    await desk.ask("lead", room, "!icc commscheck dg --window 1m")
    assert "waiting: Dg" in (await desk.ask("member", room, "!icc status")).body
    await desk.fire("check.close")
    status = await desk.ask("member", room, "!icc status")
    assert "waiting" not in status.body
    assert "unreachable: Dg" in status.body


async def shift_round_timer(database_url: str, late: timedelta) -> None:
    """Pretend the next run fell due `late` ago, while the bot was down."""
    db = Database(database_url)
    try:
        async with db.session() as session:
            timer = (
                await session.exec(
                    select(Timer).where(
                        Timer.kind == "round.run", col(Timer.completed_at).is_(None)
                    )
                )
            ).one()
            due = utcnow() - late
            timer.due_at = due
            timer.payload = {**timer.payload, "slot": due.isoformat()}
            timer.key = timer.key.split("run:")[0] + f"run:{due.isoformat()}"
            session.add(timer)
    finally:
        await db.dispose()


@pytest_synapse
async def test_runs_due_while_down_run_once_or_are_reported_missed(
    paging_env: dict[str, str], people: dict[str, Person], cast: Cast
) -> None:
    running = RunningBot(load_settings(paging_env))
    await running.start()
    try:
        _ref, room = await activation_room(people, cast)
        member, lead = people["member"], people["lead"]
        scheduled = await lead.ask(
            room, "!icc round schedule daily 09:00 --with member --window 1m", cast.bot.user_id
        )
        rd = body(scheduled).split("scheduled")[0].split()[-1]
        assert "cron `0 9 * * *`" in body(scheduled)
        listing = await member.ask(room, "!icc rounds", cast.bot.user_id)
        assert f"• {rd} — daily 09:00 (Europe/Brussels)" in body(listing)
        status = await member.ask(room, "!icc status", cast.bot.user_id)
        assert f"Next rounds: {rd} daily 09:00 → " in body(status)
        assert "09:00 Brussels" in body(status)
        await running.stop()
        await shift_round_timer(paging_env["ICC_DATABASE_URL"], timedelta(seconds=20))  # < window
        await running.start()
        await member.wait_for(
            room, lambda e: f"COORDINATION ROUND {rd} #1" in body(e), sender=cast.bot.user_id
        )
        await running.stop()
        await running.start()  # a restart after the run does not run it again
        await member.quiet_period(1.5)
        prompts = [
            e
            for e in member.events(room, cast.bot.user_id)
            if f"COORDINATION ROUND {rd}" in body(e)
        ]
        assert len(prompts) == 1
        await running.stop()
        await shift_round_timer(paging_env["ICC_DATABASE_URL"], timedelta(minutes=5))  # > window
        await running.start()
        missed = await member.wait_for(
            room, lambda e: "was missed while the bot was down" in body(e), sender=cast.bot.user_id
        )
        assert f"{rd} #2" in body(missed)
        cancelled = await lead.ask(room, f"!icc round cancel {rd}", cast.bot.user_id)
        assert f"{rd} (daily 09:00) cancelled" in body(cancelled)
        listing = await member.ask(room, "!icc rounds", cast.bot.user_id)
        assert "No round is scheduled." in body(listing)
        refused = await lead.ask(room, "!icc round schedule every 7m", cast.bot.user_id)
        assert "divide the hour" in body(refused)
    finally:
        await running.stop()


@pytest_synapse
async def test_communication_check_with_one_partner_silent(
    paging_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    from tests.support.rooms import page_received, shared_room

    lead, member, partner = people["lead"], people["member"], people["partner"]
    control = await shared_room(people, cast)
    sent = await lead.ask(control, "!icc commscheck partner,dg --window 5s", cast.bot.user_id)
    assert "sent to 2 people" in body(sent)
    check = body(sent).split("Communication check ")[1].split(" ")[0]
    partner_dm, test_page = await page_received(partner, cast, check)
    assert "TEST DE COMMUNICATION" in body(test_page)
    await partner.ask(partner_dm, f"!ack {check}", cast.bot.user_id)
    result = await lead.wait_for(
        control, lambda e: f"Communication check {check}:" in body(e), sender=cast.bot.user_id
    )
    assert "1 of 2 answered" in body(result)
    assert "✅ Partner (ERCC) after" in body(result)
    assert "⚠ Dg (ERCC): no answer" in body(result)
    card = await member.ask(control, "!icc contact dg", cast.bot.user_id)
    assert "Last communication check: NO ANSWER" in body(card)
    card = await member.ask(control, "!icc contact partner", cast.bot.user_id)
    assert "Last communication check: answered after" in body(card)
    listing = await member.ask(control, "!icc contacts ercc", cast.bot.user_id)
    lines = {
        line.split(" — ")[0]: line for line in body(listing).splitlines() if line.startswith("•")
    }
    assert "last check unanswered" in lines["• dg"]
    assert "last check unanswered" not in lines["• partner"]


@pytest_synapse
async def test_dg_rounds_and_the_dg_digest(
    bot_env: dict[str, str], people: dict[str, Person], cast: Cast
) -> None:
    from tests.support.rooms import bot_joined, open_activation, shared_room

    dg, lead, member = people["dg"], people["lead"], people["member"]
    dg_room = await dg.create_room(invite=[cast.bot.user_id, cast.lead.user_id], name="DG platform")
    async with bot_running(
        bot_env | {"ICC_DG_ROOM": dg_room, "ICC_DG_DIGEST": "weekdays 07:45"}
    ) as running:
        await dg.wait_for(dg_room, bot_joined(cast.bot.user_id))
        assert running.app is not None
        db = running.app.services.db  # type: ignore[union-attr]
        async with db.session() as session:
            digests = (
                await session.exec(select(Timer).where(Timer.kind == TimerKind.DG_DIGEST))
            ).all()
        assert [t.payload["cron"] for t in digests] == ["45 7 * * 1-5"]

        control = await shared_room(people, cast)
        ref, _room, _ = await open_activation(lead, control, cast, "!icc activate Heatwave")
        await member.send(control, "!icc round now --room dg --with dg --window 4s")
        prompt = await dg.wait_for(
            dg_room, lambda e: "COORDINATION ROUND RD-" in body(e), sender=cast.bot.user_id
        )
        thread = {
            "rel_type": "m.thread",
            "event_id": prompt["event_id"],
            "is_falling_back": True,
            "m.in_reply_to": {"event_id": prompt["event_id"]},
        }
        await dg.send(dg_room, "NL: no cross-border effects expected", **{"m.relates_to": thread})
        summary = await dg.wait_for(
            dg_room, lambda e: "closed" in body(e) and "RD-" in body(e), sender=cast.bot.user_id
        )
        assert "Dg: NL: no cross-border effects expected" in body(summary)

        assert running.app.services is not None
        await running.app.services.digest.on_digest(digests[0])
        digest = await dg.wait_for(
            dg_room, lambda e: "ICC digest" in body(e), sender=cast.bot.user_id
        )
        assert f"• {ref} Heatwave · TLP:AMBER · level monitoring" in body(digest)
    async with bot_running(bot_env | {"ICC_DG_ROOM": dg_room, "ICC_DG_DIGEST": "off"}) as running:
        async with running.app.services.db.session() as session:  # type: ignore[union-attr]
            left = (
                await session.exec(
                    select(Timer).where(
                        Timer.kind == TimerKind.DG_DIGEST, col(Timer.cancelled_at).is_(None)
                    )
                )
            ).all()
        assert left == []


@pytest_synapse
async def test_a_scheduled_communication_check_runs_from_its_schedule(
    paging_env: dict[str, str], people: dict[str, Person], cast: Cast
) -> None:
    from tests.support.rooms import page_received, shared_room

    running = RunningBot(load_settings(paging_env))
    await running.start()
    try:
        lead, partner = people["lead"], people["partner"]
        control = await shared_room(people, cast)
        scheduled = await lead.ask(
            control,
            '!icc commscheck partner --window 6s --every "weekdays 10:00"',
            cast.bot.user_id,
        )
        assert "(communication check) scheduled: weekdays 10:00" in body(scheduled)
        listing = await lead.ask(control, "!icc rounds", cast.bot.user_id)
        assert "(communication check) — weekdays 10:00" in body(listing)
        await running.stop()
        await shift_round_timer(paging_env["ICC_DATABASE_URL"], timedelta(seconds=1))
        await running.start()
        partner_dm, test_page = await page_received(partner, cast, "TEST DE COMMUNICATION")
        check = body(test_page).split("TEST DE COMMUNICATION ")[1].split(" ")[0]
        await partner.react(partner_dm, test_page["event_id"], "👍")
        result = await lead.wait_for(
            control, lambda e: f"Communication check {check}:" in body(e), sender=cast.bot.user_id
        )
        assert "1 of 1 answered" in body(result)
    finally:
        await running.stop()

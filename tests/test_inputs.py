"""Input requests and the advice note: answers by command and by reply, revisions, late answers,
strangers, reminders and chases, the note and its files on the desk (the fast tier: Matrix
recorded, timers fired on demand; tests/support/desk.py); a request across a restart and a
crash, with its direct messages on the test homeserver."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from bot.inputs.requests import readable_in_room
from bot.matrix.send import fits_one_event
from bot.render import Message, Renderer, markdown_escape
from bot.settings import load_settings
from bot.storage import input_store
from bot.storage.models import InputRequestRow
from bot.timeutil import utcnow
from tests.support.bots import CrashPoint, RunningBot
from tests.support.cast import Cast
from tests.support.desk import Desk
from tests.support.matrix_people import Person, body, replies_to
from tests.support.reading import framed_as_exercise
from tests.support.recording import Recorded
from tests.support.rooms import DM, activation_room


def bot_texts(person: Person, room_id: str, cast: Cast) -> list[str]:
    return [
        body(e)
        for e in person.events(room_id, cast.bot.user_id)
        if e.get("type") == "m.room.message"
    ]


async def question(person: Person, cast: Cast, ref: str, dm: str | None = None) -> tuple[str, dict]:
    dm = dm or await person.join_invited(DM)
    event = await person.wait_for(
        dm,
        lambda e: f"{ref} ·" in body(e) and e["content"].get("msgtype") == "m.text",
        sender=cast.bot.user_id,
    )
    return dm, event


# -- on the desk (the fast tier) ------------------------------------------------------------------


def question_in(desk: Desk, dm: str, ref: str) -> Recorded:
    [asked] = [
        r for r in desk.messenger.events(dm) if f"{ref} ·" in r.body and r.msgtype == "m.text"
    ]
    return asked


async def deadline_passes(desk: Desk, ref: str) -> None:
    """As if the request's deadline were behind us (the desk does not move the clock)."""
    async with desk.services.db.session() as session:
        request = await session.get(InputRequestRow, int(ref.removeprefix("RQ-")))
        assert request is not None
        request.deadline = utcnow() - timedelta(seconds=1)
        session.add(request)


async def test_requests_answers_reminders_and_the_advice_note(paging_desk: Desk) -> None:
    desk = paging_desk
    control = desk.room("lead", "member", "partner", "dg", "deputy")
    ref, room, _ = await desk.open_activation("lead", control)
    sent = await desk.ask(
        "member",
        room,
        "!icc ask partner,dg,deputy Do you advise closing the Meuse to shipping? --by 8s",
    )
    assert "RQ-1 sent to 3 people" in sent.body

    partner_dm = desk.dm_of("partner")
    asked = question_in(desk, partner_dm, "RQ-1")
    assert "DEMANDE DE CONTRIBUTION RQ-1" in asked.body
    assert "Merci de répondre avant" in asked.body
    assert re.search(r"avant (lun|mar|mer|jeu|ven|sam|dim)\. \d\d? \w+\.? \d\d:\d\d ", asked.body)
    assert asked.body.splitlines()[0] == f"TLP:AMBER · {ref}"
    assert asked.mentions == [desk.who("partner")]
    recorded = await desk.ask(
        "partner", partner_dm, "!icc input RQ-1 Oui, <b>fermer</b> entre Namur et Liège"
    )
    assert "votre contribution à RQ-1 est enregistrée (version 1" in recorded.body
    dg_dm = desk.dm_of("dg")
    dg_question = question_in(desk, dg_dm, "RQ-1")
    assert dg_question.event_id is not None
    answered = await desk.say(
        "dg",
        dg_dm,
        "> <@bot> RQ-1\n\nJa, *sofort*: die Schifffahrt einstellen",
        relates_to={"m.in_reply_to": {"event_id": dg_question.event_id}},
    )
    assert any("Stellungnahme zu RQ-1 wurde um" in r.body for r in answered)
    assert any("erfasst (Version 1)" in r.body for r in answered)
    revised = await desk.ask(
        "partner", partner_dm, "!icc input RQ-1 Non : fermer seulement à Liège"
    )
    assert "(version 2" in revised.body

    deputy_dm = desk.dm_of("deputy")
    question_in(desk, deputy_dm, "RQ-1")
    reminders = await desk.fire("request.step", key=":remind")
    assert [r.room_id for r in reminders if "HERINNERING" in r.body] == [deputy_dm]
    assert not any("RAPPEL" in r.body for r in reminders)  # answered: no reminder
    chased = await desk.fire("request.step", key=":chase")
    assert [r.room_id for r in chased if "TERMIJN VERSTREKEN" in r.body] == [deputy_dm]
    await deadline_passes(desk, "RQ-1")
    status = await desk.ask("member", room, "!icc status")
    assert "Requests: 1, overdue: RQ-1 (Deputy)" in status.body
    late = await desk.ask("deputy", deputy_dm, "!icc input RQ-1 Wij volgen het advies van het NCC")
    assert "als laattijdig gemarkeerd" in late.body

    not_asked = await desk.ask("member", room, "!icc input RQ-1 I was not asked")
    assert "RQ-1 was not sent to you" in not_asked.body
    elsewhere = desk.room("lead", "member", "stranger")
    stranger = await desk.ask("stranger", elsewhere, "!icc input RQ-1 hello")
    assert "not in the ICC directory" in stranger.body

    await desk.ask("member", room, "!icc ask partner,lead Anything to add? --by 1h")
    posted = await desk.ask("member", room, "!icc advice")
    assert "Advice note draft v1" in posted.body
    assert "is above, with its files" in posted.body
    [note] = [r for r in desk.messenger.events(room) if "## Recommendation" in (r.body or "")]
    assert "Ja, *sofort*: die Schifffahrt einstellen" in note.body  # readable, not escaped
    assert "<h2>Partner input</h2>" in note.content["formatted_body"]
    assert note.body.splitlines()[0] == f"TLP:AMBER · {ref}"
    markdown = desk.file(room, f"{ref}-advice-v1.md").decode()
    html = desk.file(room, f"{ref}-advice-v1.html").decode()
    assert "## Recommendation" in markdown
    assert "_[To be written by the cell. The bot does not draft recommendations.]_" in markdown
    assert "Non : fermer seulement à Liège" in markdown  # the latest version counts
    assert "(version 2 of 2)" in markdown
    assert "Oui, \\<b\\>fermer\\</b\\>" not in markdown  # superseded by version 2
    assert "Ja, \\*sofort\\*: die Schifffahrt einstellen" in markdown
    assert "Wij volgen het advies van het NCC" in markdown
    assert "(late)" in markdown
    assert "Did not answer: Lead, Partner." in markdown
    assert "### RQ-1 — 3 of 3 answered" in markdown
    assert "<h2>Partner input</h2>" in html
    assert "Ja, *sofort*: die Schifffahrt einstellen" in html
    second = await desk.ask("member", room, "!icc advice RQ-1")
    assert "Advice note draft v2" in second.body
    one_request = desk.file(room, f"{ref}-advice-v2.md").decode()
    assert "RQ-2" not in one_request
    unknown = await desk.ask("member", room, "!icc advice RQ-99")
    assert "RQ-99 is not a request of" in unknown.body
    sitrep = await desk.ask("member", room, "!icc sitrep")
    assert "RQ-1: 3 of 3 answered" in sitrep.body


async def test_escaping_in_the_html_note(paging_desk: Desk) -> None:
    desk = paging_desk
    control = desk.room("lead", "member", "partner")
    ref, room, _ = await desk.open_activation("lead", control)
    await desk.ask("member", room, "!icc ask partner Position? --by 1h")
    partner_dm = desk.dm_of("partner")
    await desk.ask("partner", partner_dm, '!icc input RQ-1 <script>alert("x")</script> {{ 7*7 }}')
    await desk.ask("member", room, "!icc advice")
    html = desk.file(room, f"{ref}-advice-v1.html").decode()
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; {{ 7*7 }}" in html
    assert "<script>" not in html


# -- through Synapse: direct messages, restarts --------------------------------------------------


@pytest.mark.synapse
async def test_a_request_survives_a_restart(
    paging_env: dict[str, str],
    people: dict[str, Person],
    cast: Cast,
) -> None:
    running = RunningBot(load_settings(paging_env))
    await running.start()
    try:
        ref, room = await activation_room(people, cast)
        deputy = people["deputy"]
        await people["member"].ask(
            room, "!icc ask deputy Staff available tonight? --by 6s", cast.bot.user_id
        )
        deputy_dm, _ = await question(deputy, cast, "RQ-1")
        await running.stop()
        await running.start()
        await deputy.wait_for(
            deputy_dm, lambda e: "HERINNERING" in body(e), sender=cast.bot.user_id, timeout=20
        )
        await deputy.wait_for(
            deputy_dm,
            lambda e: "TERMIJN VERSTREKEN" in body(e),
            sender=cast.bot.user_id,
            timeout=20,
        )
        recorded = await deputy.ask(deputy_dm, "!icc input RQ-1 Twee mensen", cast.bot.user_id)
        assert "Dank u" in body(recorded)
        await deputy.quiet_period(1)
        texts = bot_texts(deputy, deputy_dm, cast)
        assert sum("HERINNERING" in t for t in texts) == 1
        assert sum("TERMIJN VERSTREKEN" in t for t in texts) == 1
        assert re.search(ref, texts[0])
    finally:
        await running.stop()


@pytest.mark.synapse
async def test_a_reply_to_a_request_sent_just_before_a_crash_counts(
    paging_env: dict[str, str],
    people: dict[str, Person],
    cast: Cast,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The request left, the bot died before recording its event, the partner replied to it
    while the bot was down: after the restart the reply is read side by side with the re-run
    that records the request, and must count as their input all the same."""
    crash = CrashPoint(
        monkeypatch,
        input_store,
        "mark_many",
        lambda _session, updates: any("event_id" in fields for fields in updates.values()),
    )
    running = RunningBot(load_settings(paging_env))
    await running.start()
    try:
        _ref, room = await activation_room(people, cast)
        partner = people["partner"]
        await people["member"].send(room, "!icc ask partner Pumps available? --by 10m")
        partner_dm, asked = await question(partner, cast, "RQ-1")
        await crash.wait()
        await running.stop()
        crash.restore()
        reply = await partner.send(
            partner_dm,
            "Trois pompes à Liège",
            **{"m.relates_to": {"m.in_reply_to": {"event_id": asked["event_id"]}}},
        )
        await running.start()
        answer = await partner.wait_for(
            partner_dm, lambda e: replies_to(e) == reply, sender=cast.bot.user_id, timeout=30
        )
        assert "votre contribution à RQ-1 est enregistrée (version 1" in body(answer)
    finally:
        await running.stop()


def test_a_note_longer_than_one_event_is_posted_in_part_with_where_the_rest_is() -> None:
    paragraphs = [f"### RQ-{n}\n\n" + "Pumps and sandbags in Namur. " * 40 for n in range(200)]
    note = Message("\n\n".join(paragraphs), "<p>long</p>")
    rest = Renderer().render("advice_rest", stem="ICC-2026-001-advice-v3")
    part = readable_in_room(note, rest)
    assert fits_one_event(part)
    assert part.body.startswith("### RQ-0")
    assert part.body.endswith(
        "… the rest is in ICC-2026-001-advice-v3.md and ICC-2026-001-advice-v3.html, posted with it."
    )
    name = markdown_escape("Pieter de Vries (NCC) *")
    assert name == "Pieter de Vries (NCC) \\*"
    assert readable_in_room(Message(name, "<p>x</p>"), rest).body == "Pieter de Vries (NCC) *"


async def test_after_close_status_reads_closed_and_late_input_is_answered_in_kind(
    paging_desk: Desk,
) -> None:
    desk = paging_desk
    control = desk.room("lead", "member", "deputy")
    _, room, _ = await desk.open_activation(
        "lead", control, '!icc activate "Dam breach drill" --exercise'
    )
    await desk.ask("member", room, "!icc ask deputy Pumps available? --by 1h")
    await desk.say("member", room, "!icc page deputy Stand by --ack 10m")
    await desk.ask("lead", room, "!icc close Drill over")
    status = await desk.ask("member", control, "!icc status EX-ICC-2026-001")
    assert "never acknowledged: Deputy (PG-1)" in status.body
    assert "waiting" not in status.body
    late = await desk.ask("deputy", desk.dm_of("deputy"), "!icc input RQ-1 Twee pompen")
    assert "uw bijdrage is niet geregistreerd" in late.body
    assert "werd afgesloten" in late.body
    assert framed_as_exercise({"content": late.content})


async def test_an_edited_input_is_a_new_version_and_both_are_kept(paging_desk: Desk) -> None:
    desk = paging_desk
    ref, room, _ = await desk.open_activation("lead", desk.room("lead", "member", "partner"))
    await desk.ask("member", room, "!icc ask partner Close the Meuse? --by 1h")
    dm = desk.dm_of("partner")
    original, _ = await desk.said("partner", dm, "!icc input RQ-1 Oui, fermer")
    edit = {
        "msgtype": "m.text",
        "body": "* !icc input RQ-1 Non : fermer seulement à Liège",
        "m.new_content": {
            "msgtype": "m.text",
            "body": "!icc input RQ-1 Non : fermer seulement à Liège",
        },
        "m.relates_to": {"rel_type": "m.replace", "event_id": original},
    }
    _, answered = await desk.send("partner", dm, edit)
    assert any("(version 2)" in r.body for r in answered), answered
    await desk.ask("member", room, "!icc advice")
    note = desk.file(room, f"{ref}-advice-v1.md").decode()
    assert "Non : fermer seulement à Liège" in note
    assert "(version 2 of 2)" in note


async def test_an_edited_reply_is_a_new_version_of_the_input_it_gave(paging_desk: Desk) -> None:
    desk = paging_desk
    ref, room, _ = await desk.open_activation("lead", desk.room("lead", "member", "partner"))
    await desk.ask("member", room, "!icc ask partner Close the Meuse? --by 1h")
    dm = desk.dm_of("partner")
    asked = question_in(desk, dm, "RQ-1")
    relates = {"m.in_reply_to": {"event_id": asked.event_id}}
    original, first = await desk.said("partner", dm, "Oui, fermer", relates_to=relates)
    assert any("(version 1)" in r.body for r in first)
    edit = {
        "msgtype": "m.text",
        "body": "* Non : fermer seulement à Liège",
        "m.new_content": {"msgtype": "m.text", "body": "Non : fermer seulement à Liège"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": original},
    }
    _, answered = await desk.send("partner", dm, edit)
    assert any("(version 2)" in r.body for r in answered), [r.body for r in answered]
    # An edit of something the bot never took is not for it.
    unrelated, _ = await desk.said("partner", dm, "just chatting")
    edit["m.relates_to"] = {"rel_type": "m.replace", "event_id": unrelated}
    _, nothing = await desk.send("partner", dm, edit)
    assert nothing == []
    await desk.ask("member", room, "!icc advice")
    note = desk.file(room, f"{ref}-advice-v1.md").decode()
    assert "Non : fermer seulement à Liège" in note
    assert "(version 2 of 2)" in note

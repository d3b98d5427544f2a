"""Input requests and the advice note, as real users on the test homeserver: answers by command
and by reply, revisions, late answers, strangers, reminders and chases, the note and its files."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from bot.settings import load_settings
from bot.storage import input_store
from tests.conftest import Cast, CrashPoint, RunningBot, bot_running
from tests.matrix_people import Person, body, replies_to
from tests.support.rooms import DM, activation_room, shared_room

pytestmark = pytest.mark.synapse


@pytest.fixture
async def input_bot(paging_env: dict[str, str]) -> AsyncIterator[RunningBot]:
    async with bot_running(paging_env) as running:
        yield running


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


async def download(person: Person, room_id: str, cast: Cast, name: str) -> str:
    event = await person.wait_for(
        room_id, lambda e: e["content"].get("body") == name, sender=cast.bot.user_id
    )
    return (await person.client.download(mxc=event["content"]["url"])).body.decode()


async def test_requests_answers_reminders_and_the_advice_note(
    input_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    ref, room = await activation_room(people, cast)
    member, partner, dg, deputy = (
        people["member"],
        people["partner"],
        people["dg"],
        people["deputy"],
    )
    sent = await member.ask(
        room,
        "!icc ask partner,dg,deputy Do you advise closing the Meuse to shipping? --by 8s",
        cast.bot.user_id,
    )
    assert "RQ-1 sent to 3 people" in body(sent)

    partner_dm, asked = await question(partner, cast, "RQ-1")
    assert "DEMANDE DE CONTRIBUTION RQ-1" in body(asked)
    assert "Merci de répondre avant" in body(asked)
    assert body(asked).splitlines()[0] == f"TLP:AMBER · {ref}"
    recorded = await partner.ask(
        partner_dm, "!icc input RQ-1 Oui, <b>fermer</b> entre Namur et Liège", cast.bot.user_id
    )
    assert "votre contribution à RQ-1 est enregistrée (version 1" in body(recorded)
    dg_dm, dg_question = await question(dg, cast, "RQ-1")
    await dg.send(
        dg_dm,
        "> <@bot> RQ-1\n\nJa, *sofort*: die Schifffahrt einstellen",
        **{"m.relates_to": {"m.in_reply_to": {"event_id": dg_question["event_id"]}}},
    )
    await dg.wait_for(
        dg_dm,
        lambda e: "Stellungnahme zu RQ-1 ist erfasst (Version 1" in body(e),
        sender=cast.bot.user_id,
    )
    revised = await partner.ask(
        partner_dm, "!icc input RQ-1 Non : fermer seulement à Liège", cast.bot.user_id
    )
    assert "(version 2" in body(revised)

    deputy_dm, _ = await question(deputy, cast, "RQ-1")
    await deputy.wait_for(deputy_dm, lambda e: "HERINNERING" in body(e), sender=cast.bot.user_id)
    await deputy.wait_for(
        deputy_dm, lambda e: "TERMIJN VERSTREKEN" in body(e), sender=cast.bot.user_id
    )
    await partner.quiet_period(0.5)
    assert not any(
        "RAPPEL" in t for t in bot_texts(partner, partner_dm, cast)
    )  # answered: no reminder
    status = await member.ask(room, "!icc status", cast.bot.user_id)
    assert "Requests: 1, overdue: RQ-1 (Deputy)" in body(status)
    late = await deputy.ask(
        deputy_dm, "!icc input RQ-1 Wij volgen het advies van het NCC", cast.bot.user_id
    )
    assert "als laattijdig gemarkeerd" in body(late)

    not_asked = await member.ask(room, "!icc input RQ-1 I was not asked", cast.bot.user_id)
    assert "RQ-1 was not sent to you" in body(not_asked)
    control = await shared_room(people, cast, with_stranger=True)
    stranger = await people["stranger"].ask(control, "!icc input RQ-1 hello", cast.bot.user_id)
    assert "not in the ICC directory" in body(stranger)

    await member.ask(room, "!icc ask partner,lead Anything to add? --by 1h", cast.bot.user_id)
    posted = await member.ask(room, "!icc advice", cast.bot.user_id)
    assert "Advice note draft v1" in body(posted)
    markdown = await download(member, room, cast, f"{ref}-advice-v1.md")
    html = await download(member, room, cast, f"{ref}-advice-v1.html")
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
    second = await member.ask(room, "!icc advice RQ-1", cast.bot.user_id)
    assert "Advice note draft v2" in body(second)
    one_request = await download(member, room, cast, f"{ref}-advice-v2.md")
    assert "RQ-2" not in one_request
    unknown = await member.ask(room, "!icc advice RQ-99", cast.bot.user_id)
    assert "RQ-99 is not a request of" in body(unknown)
    sitrep = await member.ask(room, "!icc sitrep", cast.bot.user_id)
    assert "RQ-1: 3 of 3 answered" in body(sitrep)


async def test_escaping_in_the_html_note(
    input_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    ref, room = await activation_room(people, cast)
    member, partner = people["member"], people["partner"]
    await member.ask(room, "!icc ask partner Position? --by 1h", cast.bot.user_id)
    partner_dm, _ = await question(partner, cast, "RQ-1")
    await partner.ask(
        partner_dm, '!icc input RQ-1 <script>alert("x")</script> {{ 7*7 }}', cast.bot.user_id
    )
    await member.ask(room, "!icc advice", cast.bot.user_id)
    html = await download(member, room, cast, f"{ref}-advice-v1.html")
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; {{ 7*7 }}" in html
    assert "<script>" not in html


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

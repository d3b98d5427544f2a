"""Paging on the real homeserver with second-scale deadlines: fan-out, the three ways to ack,
`unable`, escalation to the backup, the unreachable report, the board, restarts, failures."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from bot.chat import dispatch
from bot.matrix.send import NewRoom, fits_one_event
from bot.paging import send as send_module
from bot.paging.board import PersonLine, may_fit
from bot.reach.direct import CREATED_AT_ONCE
from bot.render import Message, Renderer
from bot.storage import activation_store
from bot.timeutil import utcnow
from tests.support.bots import RunningBot
from tests.support.cast import Cast, desk_cast, people_of, with_everyone
from tests.support.databases import BACKENDS
from tests.support.desk import Desk, desk_running, pages_to
from tests.support.invariants import problems
from tests.support.matrix_people import Person, body
from tests.support.processes import BotProcess
from tests.support.reading import board_shows
from tests.support.recording import SERVER
from tests.support.rooms import (
    activation_room,
    escalated_once,
    open_activation,
    page_received,
)


@pytest.mark.synapse
async def test_fan_out_and_the_three_ways_to_acknowledge(
    paging_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    ref, room = await activation_room(people, cast)
    member = people["member"]
    await member.send(
        room,
        "!icc page partner,dg,deputy Meuse at 5.2 m in Liège; confirm liaison officers --ack 60s",
    )
    partner_dm, partner_page = await page_received(people["partner"], cast, "PG-")
    pg = re.search(r"PG-\d+", body(partner_page)).group(0)  # type: ignore[union-attr]
    dg_dm, dg_page = await page_received(people["dg"], cast, pg)
    deputy_dm, deputy_page = await page_received(people["deputy"], cast, pg)
    for person, event in (
        (people["partner"], partner_page),
        (people["dg"], dg_page),
        (people["deputy"], deputy_page),
    ):
        assert event["content"]["msgtype"] == "m.text"  # rings, unlike a notice
        assert event["content"]["m.mentions"] == {"user_ids": [person.user_id]}
        assert body(event).splitlines()[0] == f"TLP:AMBER · {ref}"
        assert "Meuse at 5.2 m in Liège" in body(event)
    assert "Merci d’accuser réception avant" in body(partner_page)  # French first for partner
    assert "Bitte bestätigen Sie den Empfang bis" in body(dg_page)
    assert "Gelieve de ontvangst te bevestigen vóór" in body(deputy_page)
    await board_shows(member, room, cast, pg, "0/3 acknowledged")

    by_command = await people["partner"].ask(partner_dm, f"!ack {pg}", cast.bot.user_id)
    assert f"Accusé de réception de {pg} enregistré" in body(by_command)
    await people["dg"].react(dg_dm, dg_page["event_id"], "✅")
    await people["dg"].wait_for(
        dg_dm, lambda e: f"Empfang von {pg}" in body(e), sender=cast.bot.user_id
    )
    reply = {"m.relates_to": {"m.in_reply_to": {"event_id": deputy_page["event_id"]}}}
    await people["deputy"].send(deputy_dm, f"> <@bot> {pg}\n\nreçu", **reply)
    await people["deputy"].wait_for(
        deputy_dm, lambda e: f"Ontvangst van {pg} bevestigd" in body(e), sender=cast.bot.user_id
    )
    final = await board_shows(member, room, cast, pg, "3/3 acknowledged")
    metrics = paging_bot.app.metrics.render().decode()  # type: ignore[union-attr]
    for how in ("command", "reaction", "reply"):
        assert f'icc_acknowledgements_total{{channel="matrix",how="{how}"}} 1.0' in metrics
    assert 'icc_pages_sent_total{channel="matrix"} 3.0' in metrics
    assert 'icc_acknowledgement_latency_seconds_count{channel="matrix"} 3.0' in metrics
    assert "(command)" in final
    assert "(reaction)" in final
    assert "(reply)" in final

    status = await member.ask(room, "!icc status", cast.bot.user_id)
    assert "Pages: 1 page to 3 people, 3 acknowledged" in body(status)
    card = await member.ask(room, "!icc contact partner", cast.bot.user_id)
    assert "Last acknowledgement: after " in body(card)
    again = await people["partner"].ask(partner_dm, f"!ack {pg}", cast.bot.user_id)
    assert f"Vous avez déjà accusé réception de {pg}" in body(again)
    listing = await member.ask(room, "!icc pages", cast.bot.user_id)
    assert body(listing).count("✅") == 3
    # An "ok" to something that is not a page is not for the bot.
    await people["partner"].send(
        partner_dm,
        "ok",
        **{"m.relates_to": {"m.in_reply_to": {"event_id": by_command["event_id"]}}},
    )
    unknown = await people["partner"].ask(partner_dm, "!ack PG-99999", cast.bot.user_id)
    assert "There is no page PG-99999" in body(unknown)
    bad_target = await member.ask(room, "!icc page ercc,benelx hello", cast.bot.user_id)
    assert "Unknown target `benelx`" in body(bad_target)
    assert (
        len([e for e in people["partner"].events(partner_dm, cast.bot.user_id) if body(e) == "ok"])
        == 0
    )

    # A page of a closed activation cannot be acknowledged any more, and says why.
    await member.send(room, "!icc page partner Second page --ack 60s")
    _, second = await page_received(people["partner"], cast, "Second page", dm=partner_dm)
    pg2 = re.search(r"PG-\d+", body(second)).group(0)  # type: ignore[union-attr]
    await people["lead"].ask(room, "!icc close", cast.bot.user_id)
    closed = await people["partner"].ask(partner_dm, f"!ack {pg2}", cast.bot.user_id)
    assert f"relève de l’activation {ref}, clôturée le" in body(closed)  # in their language
    assert body(closed).splitlines()[0] == f"TLP:AMBER · {ref}"
    refused = await member.ask(room, "!icc page partner too late", cast.bot.user_id)
    assert "is closed; nothing was changed" in body(refused)
    record_event = next(
        e
        for e in member.events(room, cast.bot.user_id)
        if e["content"].get("body") == f"{ref}-record.json"
    )
    record = json.loads((await member.client.download(mxc=record_event["content"]["url"])).body)
    first_page = record["pages"][0]
    assert first_page["ref"] == pg
    assert {p["acknowledged_how"] for p in first_page["people"]} == {"command", "reaction", "reply"}
    assert all(p["ack_latency_s"] is not None for p in first_page["people"])
    assert record["pages"][1]["people"][0]["acknowledged_at"] is None


# -- on the desk (the fast tier: Matrix recorded, timers fired on demand) -------------------------


async def test_exercise_pages_are_marked_and_realworld_stops_their_escalation(
    paging_desk: Desk,
) -> None:
    desk = paging_desk
    control = desk.room("lead", "member", "partner", "dg", "deputy")
    _ref, room, _ = await desk.open_activation("lead", control, "!icc activate Drill --exercise")
    await desk.say("member", room, "!icc page partner Exercise inject 3 --ack 3s")
    partner_dm = desk.dm_of("partner")
    [exercise_page] = pages_to(desk, partner_dm, "Exercise inject 3")
    lines = exercise_page.body.splitlines()
    assert lines[0] == lines[-1] == "EXERCISE EXERCISE EXERCISE"
    await desk.ask("lead", control, "!icc realworld Real incident")
    assert await desk.armed("page.step") == []  # past the deadline: no reminder, no backup page
    await desk.fire_all()
    assert len(pages_to(desk, partner_dm, "PG-")) == 1
    assert not [
        r for r in desk.messenger.recorded if r.kind == "invite" and r.user_id == desk.who("dg")
    ]
    assert not [
        r
        for r in desk.messenger.recorded
        if r.kind == "create_room" and desk.who("dg") in r.details["invite"]
    ]


async def test_escalation_to_backup_unreachable_report_and_unable(paging_desk: Desk) -> None:
    desk = paging_desk
    control = desk.room("lead", "member", "partner", "dg", "deputy")
    _ref, room, _ = await desk.open_activation("lead", control)
    await desk.say("member", room, "!icc page partner Are your teams deployable? --ack 2s")
    partner_dm = desk.dm_of("partner")
    [first] = pages_to(desk, partner_dm, "Are your teams deployable?")
    pg = re.search(r"PG-\d+", first.body).group(0)  # type: ignore[union-attr]
    escalated = await desk.fire_all("page.step")
    [reminder] = [r for r in escalated if r.room_id == partner_dm and "RAPPEL" in r.body]
    # Says what happens next, in the person's language, and no deadline that has passed.
    assert "votre suppléant éventuel est appelé lui aussi" in reminder.body
    assert "`!icc ack PG-" in reminder.body
    dg_dm = desk.dm_of("dg")
    [backup_page] = pages_to(desk, dg_dm, pg)
    assert "Partner hat nicht geantwortet: Sie werden als Vertretung alarmiert" in backup_page.body
    [report] = [r for r in desk.messenger.events(room) if "could not reach Partner" in r.body]
    assert "nor their backup Dg" in report.body
    assert "⚠ Partner" in desk.board(room, pg)
    assert len(pages_to(desk, partner_dm, pg)) == 2  # the page and one reminder, no more
    assert len(pages_to(desk, dg_dm, pg)) == 1

    await desk.say("member", room, "!icc page deputy Brief the DG at 16:00 --ack 60s")
    deputy_dm = desk.dm_of("deputy")
    [deputy_page] = pages_to(desk, deputy_dm, "Brief the DG")
    pg2 = re.search(r"PG-\d+", deputy_page.body).group(0)  # type: ignore[union-attr]
    declined = await desk.ask(
        "deputy", deputy_dm, f"!icc unable {pg2} in the crisis cell of another ministry"
    )
    assert "Genoteerd" in declined.body
    assert "Uw vervanger Lead wordt opgeroepen" in declined.body  # named, since there is one
    await desk.fire_due()  # the backup is paged at once
    lead_dm = desk.dm_of("lead")
    [lead_page] = pages_to(desk, lead_dm, pg2)
    assert "as the backup of Deputy" in lead_page.body
    await desk.ask("lead", lead_dm, "!ack")
    final = desk.board(room, pg2)
    assert "1/1 acknowledged" in final
    assert "⛔ Deputy (NCCN) unable: in the crisis cell of another ministry" in final
    assert "↪ backup ✅ Lead" in final


async def test_an_answer_with_no_page_open_is_told_so_in_the_persons_language(
    paging_desk: Desk,
) -> None:
    desk = paging_desk
    control = desk.room("lead", "member", "partner", "dg", "deputy")
    await desk.open_activation("lead", control)
    partner_dm, dg_dm = desk.room("partner"), desk.room("dg")
    french = await desk.ask("partner", partner_dm, "!ack")
    assert "Vous n’avez aucun appel en attente de réponse" in french.body
    assert "`!icc ack PG-12`" in french.body
    german = await desk.ask("dg", dg_dm, "!icc unable Kein Personal")
    assert "keine offene Alarmierung" in german.body
    assert "`!icc unable PG-12 <Grund>`" in german.body  # the hint names the command typed
    english = await desk.ask("member", control, "!icc ack")
    assert "You have no open page to answer" in english.body


async def test_a_bare_ack_after_the_unreachable_report_is_recorded(paging_desk: Desk) -> None:
    desk = paging_desk
    _ref, room, _ = await desk.open_activation("lead", desk.room("lead", "member"))
    await desk.say("member", room, "!icc page partner Sandbags for Visé? --ack 1m")
    await desk.fire_all("page.step")  # reminder, backup, then the unreachable report
    assert [r for r in desk.messenger.events(room) if "could not reach Partner" in r.body]
    late = await desk.ask("partner", desk.dm_of("partner"), "!ack")
    assert "Accusé de réception de PG-1 enregistré" in late.body
    assert "✅ Partner" in desk.board(room, "PG-1")


async def test_a_board_a_crash_left_behind_is_put_right_at_start_up(
    paging_desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The board's edit is paced, after the ack is written: a crash between the two leaves the
    board behind; the next start compares it with what it should show and edits it."""
    desk = paging_desk
    _ref, room, _ = await desk.open_activation("lead", desk.room("lead", "member"))
    await desk.say("member", room, "!icc page partner Sandbags for Visé? --ack 1h")
    monkeypatch.setattr(desk.services.board.paced, "soon", lambda key, work: None)  # a crash
    await desk.ask("partner", desk.dm_of("partner"), "!ack")
    assert "0/1 acknowledged" in desk.board(room, "PG-1")
    await desk.services.board.reconcile()  # as `App` does at start-up
    assert "1/1 acknowledged" in desk.board(room, "PG-1")
    edits = len([r for r in desk.messenger.recorded if r.kind == "edit"])
    await desk.services.board.reconcile()  # a board that shows what it should: left alone
    assert len([r for r in desk.messenger.recorded if r.kind == "edit"]) == edits


async def test_answers_that_arrive_together_are_each_recorded_and_told(paging_desk: Desk) -> None:
    """A ✅, a reply and a command at once, with someone who has nothing to answer among them:
    written together (one group), each recorded once, told in their language, the logbook
    whole; the one refusal is theirs alone."""
    desk = paging_desk
    _ref, room, _ = await desk.open_activation("lead", desk.room("lead", "member"))
    await desk.say("member", room, "!icc page partner,dg,deputy Sandbags for Visé? --ack 1h")
    dms = {who: desk.dm_of(who) for who in ("partner", "dg", "deputy")}
    pages = {who: pages_to(desk, dm, "Sandbags")[0].event_id for who, dm in dms.items()}
    alone = desk.room("member")
    await asyncio.gather(
        desk.react("partner", dms["partner"], pages["partner"], "✅"),
        desk.reply("dg", dms["dg"], pages["dg"], "ok"),
        desk.say("deputy", dms["deputy"], "!icc ack"),
        desk.say("member", alone, "!icc ack"),
    )
    told = {who: desk.messenger.texts(dm)[-1] for who, dm in dms.items()}
    assert "Accusé de réception de PG-1 enregistré" in told["partner"]
    assert "Empfang von PG-1" in told["dg"], told["dg"]
    assert "Ontvangst van PG-1 bevestigd" in told["deputy"]
    assert "You have no open page to answer" in desk.messenger.texts(alone)[-1]
    assert "3/3 acknowledged" in desk.board(room, "PG-1")
    assert await problems(desk.services.db) == []
    async with desk.services.db.session() as session:
        acks = [e for e in await activation_store.log_entries(session, 1) if e.kind == "system.ack"]
    assert len(acks) == 3


async def test_answers_written_together_end_their_escalations_and_a_decline_escalates(
    paging_desk: Desk,
) -> None:
    """In one group: two acks end their people's escalations, a decline escalates at once, and
    a 👍 on a message that is no page of the reactor's is no answer."""
    desk = paging_desk
    _ref, room, _ = await desk.open_activation("lead", desk.room("lead", "member"))
    await desk.say("member", room, "!icc page partner,dg,deputy Sandbags for Visé? --ack 1h")
    dms = {who: desk.dm_of(who) for who in ("partner", "dg", "deputy")}
    pages = {who: pages_to(desk, dm, "Sandbags")[0].event_id for who, dm in dms.items()}
    assert len(await desk.armed("page.step")) == 3
    await asyncio.gather(
        desk.react("partner", dms["partner"], pages["partner"], "✅"),
        desk.reply("dg", dms["dg"], pages["dg"], "reçu"),
        desk.say("deputy", dms["deputy"], "!icc unable stuck in traffic"),
        desk.react("partner", dms["partner"], pages["dg"], "👍"),  # not theirs
    )
    [step] = await desk.armed("page.step")
    assert step.key.endswith(":deputy:escalate")
    assert step.due_at <= utcnow()  # at once, not at the deadline
    assert "2/3 acknowledged" in desk.board(room, "PG-1")
    assert await problems(desk.services.db) == []
    async with desk.services.db.session() as session:
        kinds = [e.kind for e in await activation_store.log_entries(session, 1)]
    assert kinds.count("system.ack") == 2
    assert kinds.count("system.unable") == 1


async def test_partners_answers_go_a_few_at_a_time_to_a_slow_homeserver_the_cells_at_once(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the homeserver is slow to take the bot's answers to partners' acks, no more than
    `PARTNER_SENDS` are on their way at once, and a `status` typed in the cell's room is
    answered meanwhile."""
    monkeypatch.setattr(dispatch, "PARTNER_SENDS", 2)
    cast = desk_cast()
    contacts = cast.directory()
    partners = [f"partner{n}" for n in range(4)]
    for handle in partners:
        contacts["contacts"].append(
            {"handle": handle, "matrix_id": f"@{handle}:{SERVER}", "organisation": "nccn"}
        )
    people = people_of(cast) | {handle: f"@{handle}:{SERVER}" for handle in partners}
    desk = await Desk.open(tmp_path, database_url, people, contacts)
    try:
        _ref, room, _ = await desk.open_activation("lead", desk.room("lead", "member"))
        await desk.say("member", room, f"!icc page {','.join(partners)} Sandbags? --ack 1h")
        dms = {desk.dm_of(handle): handle for handle in partners}
        homeserver_took_them = asyncio.Event()
        on_their_way: set[str] = set()
        most = 0
        send = desk.messenger.send

        async def slow_for_partners(room_id: str, content: dict[str, Any], **how: Any) -> str:
            nonlocal most
            if room_id in dms:
                on_their_way.add(room_id)
                most = max(most, len(on_their_way))
                await homeserver_took_them.wait()
                on_their_way.discard(room_id)
            return await send(room_id, content, **how)

        monkeypatch.setattr(desk.messenger, "send", slow_for_partners)
        acks = [asyncio.create_task(desk.say(handle, dm, "!icc ack")) for dm, handle in dms.items()]
        status = await asyncio.wait_for(desk.ask("lead", room, "!icc status"), 10)
        assert "PG-1" in status.body
        homeserver_took_them.set()
        await asyncio.gather(*acks)
        assert most == 2
        for dm in dms:
            assert "PG-1" in desk.messenger.texts(dm)[-1]
    finally:
        await desk.close()


# -- through Synapse -------------------------------------------------------------------------------


@pytest.mark.synapse
async def test_one_failing_delivery_does_not_stop_the_others(
    paging_bot: RunningBot, people: dict[str, Person], cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(send_module, "SEND_RETRIES", (0.1, 0.1))
    _ref, room = await activation_room(people, cast)
    member = people["member"]
    await member.send(room, "!icc page ghost,partner Roll call")
    await page_received(people["partner"], cast, "Roll call")
    failure = await member.wait_for(
        room, lambda e: "could not be delivered to Ghost" in body(e), sender=cast.bot.user_id
    )
    assert failure["content"]["msgtype"] == "m.notice"
    listing = await member.ask(room, "!icc pages", cast.bot.user_id)
    assert "❗ Ghost" in body(listing)


@pytest.mark.synapse
async def test_escalation_happens_once_and_on_time_across_a_kill(
    paging_env: dict[str, str], people: dict[str, Person], cast: Cast, tmp_path: Path
) -> None:
    bot = BotProcess(paging_env, tmp_path / "bot.log")
    await bot.start()
    try:
        _ref, room = await activation_room(people, cast)
        partner, dg = people["partner"], people["dg"]
        await people["member"].send(room, "!icc page partner Status of the pumps? --ack 6s")
        partner_dm, first = await page_received(partner, cast, "Status of the pumps?")
        pg = re.search(r"PG-\d+", body(first)).group(0)  # type: ignore[union-attr]
        bot.kill()  # between the send and the deadline
        bot.launch()
        await escalated_once(partner, partner_dm, dg, cast, pg)
    finally:
        bot.stop()


@pytest.mark.synapse
@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_an_encrypted_activation_page_and_acknowledgement(
    paging_env: dict[str, str],
    synapse,
    cast: Cast,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """With encryption on, the whole path is end-to-end encrypted: the activation room and the DM
    room the bot creates, the page the partner's client decrypts, the reply-ack it sends back."""
    from bot.settings import load_settings
    from tests.support.reading import raw_event_type
    from tests.support.rooms import bot_joined

    env = paging_env | {"ICC_E2EE": "true", "ICC_STORE_KEY": "test-store-key-0123456789"}
    running = RunningBot(load_settings(env))
    app = await running.start()
    people: list[Person] = []

    async def encrypting(account) -> Person:  # type: ignore[no-untyped-def]
        store = tmp_path / account.localpart
        store.mkdir()
        person = await Person.login(
            synapse.base_url, account.user_id, account.password, store_dir=str(store)
        )
        people.append(person)
        return person

    try:
        lead, partner = await encrypting(cast.lead), await encrypting(cast.partner)
        control = await lead.create_room(invite=[cast.bot.user_id], encrypted=True)
        await lead.wait_for(control, bot_joined(cast.bot.user_id))
        _ref, room, _ = await open_activation(lead, control, cast, '!icc activate "Sealed drill"')
        await lead.wait_for_invite(room)
        await lead.join(room)
        await lead.sync()
        assert lead.client.rooms[room].encrypted

        await lead.send(room, "!icc page partner Sealed page --ack 1h")
        dm, page = await page_received(partner, cast, "Sealed page", timeout=30)
        assert partner.client.rooms[dm].encrypted
        assert await raw_event_type(partner, dm, page["event_id"]) == "m.room.encrypted"
        pg = re.search(r"PG-\d+", body(page)).group(0)  # type: ignore[union-attr]
        reply = {"m.relates_to": {"m.in_reply_to": {"event_id": page["event_id"]}}}
        await partner.send(dm, "reçu", **reply)
        thanks = await partner.wait_for(
            dm,
            lambda e: f"Accusé de réception de {pg} enregistré" in body(e),
            sender=cast.bot.user_id,
        )
        assert await raw_event_type(partner, dm, thanks["event_id"]) == "m.room.encrypted"
        bot_client = app.services.messenger._client  # type: ignore[union-attr]
        assert bot_client.device_store[cast.partner.user_id][partner.client.device_id].verified
        await lead.wait_for(room, lambda e: pg in body(e), sender=cast.bot.user_id)  # the board
        for person, where in ((lead, room), (partner, dm)):
            said = person.events(where, cast.bot.user_id)
            assert [e for e in said if e["type"] == "m.room.message"], where
            # Everything the bot wrote since the invite is readable, its first words included.
            assert not [e for e in said if e["type"] == "m.room.encrypted"], where
    finally:
        for person in people:
            await person.close()
        await running.stop()


@pytest.mark.synapse
async def test_a_person_who_left_their_dm_room_is_invited_back_for_the_next_page(
    paging_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    _ref, room = await activation_room(people, cast)
    member, partner = people["member"], people["partner"]
    await member.send(room, "!icc page partner First call --ack 1h")
    dm, _ = await page_received(partner, cast, "First call")
    await partner.client.room_leave(dm)
    partner.invites.discard(dm)
    bot_client = paging_bot.app.services.messenger._client  # type: ignore[union-attr]
    deadline = asyncio.get_running_loop().time() + 15
    while cast.partner.user_id in bot_client.rooms[dm].users:  # the bot's sync sees the leave
        assert asyncio.get_running_loop().time() < deadline, "the bot never saw the leave"
        await asyncio.sleep(0.1)
    await member.send(room, "!icc page partner Second call --ack 1h")
    await partner.wait_for_invite(dm)
    await partner.join(dm)
    _, second = await page_received(partner, cast, "Second call", dm=dm)
    assert second["content"]["m.mentions"] == {"user_ids": [cast.partner.user_id]}


async def test_a_page_of_several_lines_reaches_its_reader_in_those_lines(paging_desk: Desk) -> None:
    desk = paging_desk
    _ref, room, _ = await desk.open_activation("lead", desk.room("lead", "member", "partner"))
    text = (
        "Meuse at **5.2 m** in Liège.\nConfirm liaison officers.\n<b>not bold</b> [x](javascript:y)"
    )
    await desk.say("member", room, f"!icc page partner {text} --ack 10m")
    [page] = pages_to(desk, desk.dm_of("partner"), "Meuse at **5.2 m**")
    assert text in page.body
    html = page.content["formatted_body"]
    assert "Meuse at <strong>5.2 m</strong> in Liège.<br />\nConfirm liaison officers." in html
    assert "&lt;b&gt;not bold&lt;/b&gt; [x](javascript:y)" in html  # typed HTML, no link


async def test_unable_without_a_backup_is_reported_as_untaken_not_unreachable(
    paging_desk: Desk,
) -> None:
    desk = paging_desk
    _ref, room, _ = await desk.open_activation("lead", desk.room("lead", "member", "dg"))
    await desk.say("member", room, "!icc page dg Brief the minister --ack 60s")
    dm = desk.dm_of("dg")
    [page] = pages_to(desk, dm, "Brief the minister")
    pg = re.search(r"PG-\d+", page.body).group(0)  # type: ignore[union-attr]
    declined = await desk.ask("dg", dm, f"!icc unable {pg} on a plane until 18:00")
    assert "keine Vertretung im Verzeichnis" in declined.body  # not "your backup is paged"
    await desk.fire_all("page.step")
    [report] = [
        r for r in desk.messenger.events(room) if r.body and "nobody has taken it" in r.body
    ]
    assert "is unable to act on it (on a plane until 18:00)" in report.body
    assert "has no backup in the directory" in report.body
    assert not [r for r in desk.messenger.events(room) if r.body and "could not reach" in r.body]


def test_a_board_is_rendered_only_when_its_list_of_people_could_fit_one_edit() -> None:
    """Before rendering a page's board with a list of people, the bot counts what those lines
    surely take (`may_fit`) and skips a list that cannot fit one edit; it may skip only such a
    list, never one that would have fitted (the board a reader sees is the same)."""
    renderer = Renderer(prefix="!icc")
    skipped = rendered = 0
    for people in range(20, 320, 20):
        lines = [
            PersonLine(
                symbol="⏳",
                name=f"Partner number {n} of the exercise",
                organisation="National Crisis Centre",
                state="until 14:28 Brussels (13:28Z)",
                delivered="14:20 Brussels (13:20Z)",
                seen=None,
                repaged=False,
                escalated=False,
                backup=None,
                channels=(),
            )
            for n in range(people)
        ]
        board = renderer.render(
            "page_board",
            ref="PG-1",
            text="Deployable?",
            acked=0,
            total=people,
            lines=lines,
            hidden=0,
            urgent=False,
        )
        fits = fits_one_event(Message(board.body * 2, board.html * 2))
        if may_fit(lines):
            rendered += 1
        else:
            skipped += 1
            assert not fits, f"{people} lines skipped, but they fit"
    assert skipped, "no list long enough to skip: the test tried too little"
    assert rendered, "every list skipped: the test tried too much"


async def test_a_page_to_many_sends_its_first_message_before_handing_over_the_rest(
    tmp_path: Path, database_url: str
) -> None:
    """A homeserver handed every page of a large page at once created even the first seconds
    late: the first goes alone, and the others once it is accepted (`first_ahead`)."""
    people = send_module.FIRST_AHEAD_FROM
    directory = with_everyone(desk_cast().directory(), people)
    async with desk_running(tmp_path, database_url, contacts=directory) as desk:
        send = desk.messenger.send
        log: list[str] = []

        async def taking_its_time(room_id: str, content: dict[str, Any], **kwargs: Any) -> str:
            paging = bool(content.get("m.mentions", {}).get("user_ids"))
            log.append("starts" if paging else "other")
            await asyncio.sleep(0.001)  # a homeserver's round trip
            event_id = await send(room_id, content, **kwargs)
            log.append("accepted" if paging else "other")
            return event_id

        _ref, room, _ = await desk.open_activation("lead", desk.room("lead"))
        await desk.say("lead", room, "!icc page everyone First page: makes their rooms")
        desk.messenger.send = taking_its_time  # type: ignore[method-assign]
        await desk.say("lead", room, "!icc page everyone Are your teams deployable?")
        pages = [entry for entry in log if entry != "other"]
        assert pages[:3] == ["starts", "accepted", "starts"]
        assert pages[3] == "starts", "the rest went one by one"
        assert pages.count("accepted") == people


async def test_a_first_page_to_many_makes_their_rooms_a_few_at_a_time_paging_each_as_it_is_made(
    tmp_path: Path, database_url: str
) -> None:
    """Forty people with no direct room yet: their rooms are made side by side, never more than
    `CREATED_AT_ONCE` at a time (a thousand at once stalled a homeserver), and each is paged
    as soon as their room is there, not once all of them are."""
    directory = with_everyone(desk_cast().directory(), 40)
    async with desk_running(tmp_path, database_url, contacts=directory) as desk:
        create_room = desk.messenger.create_room
        at_once = most = 0

        async def slowly(room: NewRoom) -> str:
            nonlocal at_once, most
            at_once += 1
            most = max(most, at_once)
            await asyncio.sleep(0.01)  # a homeserver takes its time
            try:
                return await create_room(room)
            finally:
                at_once -= 1

        desk.messenger.create_room = slowly  # type: ignore[method-assign]
        _ref, room, _ = await desk.open_activation("lead", desk.room("lead"))
        await desk.say("lead", room, "!icc page everyone Are your teams deployable?")
        assert 1 < most <= CREATED_AT_ONCE
        paged = [n for n in range(40) if pages_to(desk, desk.dm_of(f"@p{n:03d}:desk.test"), "")]
        assert len(paged) == 40
        done = [
            "page" if r.msgtype == "m.text" else r.kind
            for r in desk.messenger.recorded
            if r.kind == "create_room" or r.msgtype == "m.text"
        ]
        last_room = len(done) - 1 - done[::-1].index("create_room")
        assert "page" in done[:last_room], "no page left before the last room was made"

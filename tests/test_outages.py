"""The database going away under a running bot (a real PostgreSQL restart): the bot keeps running,
records what arrived once the database is back, and answers it — nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from bot.chat.registry import CommandContext, CommandFamily
from bot.directory.roles import Role
from bot.render import Message
from bot.storage.db import Database
from bot.storage.models import InboxEvent
from bot.timeutil import utcnow
from tests.support.bots import RunningBot, bot_running
from tests.support.cast import Cast
from tests.support.databases import BACKENDS
from tests.support.gateway import Gateway
from tests.support.matrix_people import Person, body, replies_to
from tests.support.rooms import shared_room

pytestmark = pytest.mark.synapse


def pg_cluster(action: str) -> None:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action],
        check=True,
        capture_output=True,
        timeout=60,
    )


async def wait_for_postgres() -> None:
    for _ in range(60):
        ready = await asyncio.to_thread(
            subprocess.run, ["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"], check=False
        )
        if ready.returncode == 0:
            return
        await asyncio.sleep(0.5)
    raise AssertionError("PostgreSQL did not come back")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_postgresql_restart_loses_nothing(
    bot_env: dict[str, str], people: dict[str, Person], cast: Cast
) -> None:
    async with bot_running(bot_env) as running:
        room_id = await shared_room(people, cast)
        lead = people["lead"]
        await lead.ask(room_id, "!icc help", cast.bot.user_id)
        await asyncio.to_thread(pg_cluster, "stop")
        try:
            during = await lead.send(room_id, "!icc help help")
            await asyncio.sleep(3)  # the bot sees the command while its database is down
        finally:
            await asyncio.to_thread(pg_cluster, "start")
            await wait_for_postgres()
        reply = await lead.wait_for_reply(room_id, during, cast.bot.user_id, timeout=30)
        assert "Example: !icc help page" in body(reply)
        after = await lead.ask(room_id, "!icc contacts", cast.bot.user_id)
        assert "Contacts:" in body(after)
        await lead.quiet_period(1)
        assert (
            len([e for e in lead.events(room_id, cast.bot.user_id) if replies_to(e) == during]) == 1
        )
        assert isinstance(running, RunningBot)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_the_database_going_away_mid_command_is_a_clear_try_again(
    bot_env: dict[str, str], people: dict[str, Person], cast: Cast
) -> None:
    """PostgreSQL stops while a command is half-way through its transaction: the person is told
    the database is away and to check and resend, the half-done write is not in the database,
    the command is marked finished (it will not run again at the next start), and the bot
    answers by itself once the database is back."""
    family = CommandFamily("test")

    @family.command("halfway", role=Role.MEMBER, summary="writes, loses the db", example="halfway")
    async def halfway(ctx: CommandContext) -> Message:
        async with ctx.services.db.session() as session:
            session.add(half_written_row())
            await session.flush()
            await asyncio.to_thread(pg_cluster, "stop")
        raise AssertionError("the commit above cannot succeed")

    async with bot_running(bot_env, family):
        room_id = await shared_room(people, cast)
        member = people["member"]
        try:
            event_id = await member.send(room_id, "!icc halfway")
            reply = await member.wait_for_reply(room_id, event_id, cast.bot.user_id, timeout=30)
        finally:
            await asyncio.to_thread(pg_cluster, "start")
            await wait_for_postgres()
        assert "database is unavailable for a moment" in body(reply)
        assert "send it again" in body(reply)
        again = await member.send(room_id, "!icc help help")
        after = await member.wait_for_reply(room_id, again, cast.bot.user_id, timeout=30)
        assert "Example: !icc help page" in body(after)
        await asyncio.sleep(3)  # the finishing mark is retried while the database comes back
        db = Database(bot_env["ICC_DATABASE_URL"])
        try:
            async with db.session() as session:
                assert await session.get(InboxEvent, HALF_WRITTEN) is None
                handled = await session.get(InboxEvent, event_id)
                assert handled is not None
                assert handled.status == "failed"
        finally:
            await db.dispose()


HALF_WRITTEN = "$half-written"


def half_written_row() -> InboxEvent:
    now = utcnow()
    return InboxEvent(
        event_id=HALF_WRITTEN,
        room_id="!x",
        sender="@x:x",
        origin_ts=now,
        received_at=now,
        content={},
    )


async def homeserver_down(server, seconds: float) -> None:  # type: ignore[no-untyped-def]
    """Stop the session's Synapse, wait, start it again on the same port and data."""
    await asyncio.to_thread(server.stop)
    await asyncio.sleep(seconds)
    await homeserver_back(server)


async def homeserver_back(server) -> None:  # type: ignore[no-untyped-def]
    from bot.devserver import start_synapse

    port = int(server.base_url.rsplit(":", 1)[1])
    again = await asyncio.to_thread(start_synapse, server.data_dir, port=port)
    server.process = again.process


async def test_homeserver_down_for_30s_during_an_escalation(
    paging_bot: RunningBot,
    people: dict[str, Person],
    cast: Cast,
    synapse,  # type: ignore[no-untyped-def]
) -> None:
    from tests.support.rooms import activation_room, page_received, pages_in

    _ref, room = await activation_room(people, cast)
    partner, dg, member = people["partner"], people["dg"], people["member"]
    await member.send(room, "!icc page partner Down-time drill --ack 4s")
    partner_dm, first = await page_received(partner, cast, "Down-time drill")
    pg = first and body(first).split("PG-")[1].split(" ")[0]
    await homeserver_down(synapse, 30)  # the reminder, the backup page and the report fall due
    await partner.wait_for(
        partner_dm, lambda e: "RAPPEL" in body(e), sender=cast.bot.user_id, timeout=60
    )
    dg_dm, _ = await page_received(dg, cast, f"PG-{pg}")
    await member.wait_for(
        room, lambda e: "could not reach Partner" in body(e), sender=cast.bot.user_id, timeout=60
    )
    await partner.quiet_period(2)
    await dg.quiet_period(0.5)
    await member.quiet_period(0.5)
    assert len(pages_in(partner, partner_dm, cast, f"PG-{pg}")) == 2
    assert len(pages_in(dg, dg_dm, cast, f"PG-{pg}")) == 1
    reports = [
        e for e in member.events(room, cast.bot.user_id) if "could not reach Partner" in body(e)
    ]
    assert len(reports) == 1
    after = await member.ask(room, "!icc pages", cast.bot.user_id)  # and the bot answers again
    assert f"PG-{pg}" in body(after)


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_homeserver_down_for_30s_in_the_middle_of_a_fan_out_and_a_round(
    paging_bot: RunningBot,
    people: dict[str, Person],
    cast: Cast,
    synapse,  # type: ignore[no-untyped-def]
) -> None:
    """The homeserver stops right after the first of three pages is out, while a round is open:
    its reminder and its close fall due during the outage. Once it is back, every page arrives
    once, the round is summed up once, and nothing is reported as failed; the reminder, which
    could only go out after the round's end, is left to the summary (never after the close)."""
    from tests.support.rooms import activation_room, page_received, pages_in

    _ref, room = await activation_room(people, cast)
    member = people["member"]
    await member.send(room, "!icc round now --with member,deputy --window 24s --agenda Roads")
    prompt = await member.wait_for(
        room, lambda e: "COORDINATION ROUND RD-" in body(e), sender=cast.bot.user_id
    )
    rd = body(prompt).split("COORDINATION ROUND ")[1].split(" ")[0]
    recorded = await member.ask(room, "!icc update Roads: N4 closed", cast.bot.user_id)
    assert f"Recorded for {rd}" in body(recorded)

    messenger = paging_bot.app.services.messenger  # type: ignore[union-attr]
    first_out, stopped = asyncio.Event(), asyncio.Event()
    original_ring = messenger.ring

    async def ring_then_stop_the_homeserver(*args, **kwargs):  # type: ignore[no-untyped-def]
        """The homeserver goes down right after the first page is stored, never before it."""
        if first_out.is_set():
            await stopped.wait()
            return await original_ring(*args, **kwargs)
        first_out.set()
        event_id = await original_ring(*args, **kwargs)
        await asyncio.to_thread(synapse.stop)
        stopped.set()
        return event_id

    messenger.ring = ring_then_stop_the_homeserver
    try:
        await member.send(room, "!icc page partner,dg,deputy Fan-out drill --ack 10m")
        await asyncio.wait_for(stopped.wait(), 30)
        await asyncio.sleep(30)
        await homeserver_back(synapse)
    finally:
        messenger.ring = original_ring

    for role in ("partner", "dg", "deputy"):
        dm, _page = await page_received(people[role], cast, "Fan-out drill")
        await people[role].quiet_period(1)
        assert len(pages_in(people[role], dm, cast, "Fan-out drill")) == 1, role
    summary = await member.wait_for(
        room, lambda e: f"{rd} #1 closed" in body(e), sender=cast.bot.user_id, timeout=60
    )
    assert "Member: Roads: N4 closed" in body(summary)
    await member.quiet_period(2)
    said = [body(e) for e in member.events(room, cast.bot.user_id)]
    assert not [t for t in said if "halfway" in t]
    assert len([t for t in said if f"{rd} #1 closed" in t]) == 1
    assert not [t for t in said if "could not be delivered" in t]
    after = await member.ask(room, "!icc pages", cast.bot.user_id)
    assert body(after).count("⏳") == 3
    assert body(after).count("delivered") == 3


async def test_a_gateway_answering_502_during_a_fan_out_delays_pages_but_loses_none(
    paging_env: dict[str, str],
    people: dict[str, Person],
    cast: Cast,
    synapse,  # type: ignore[no-untyped-def]
) -> None:
    """Behind a reverse proxy, a homeserver restart is a run of 502s, not a refused connection.
    For 15 s — longer than the bot's own retries of a refused send — every request of the bot gets
    502: the pages still all arrive once the gateway answers again, once each, none reported as
    failed."""
    from tests.support.rooms import activation_room, page_received, pages_in

    gateway = Gateway(synapse.base_url)
    await gateway.start()
    try:
        async with bot_running(paging_env | {"ICC_HOMESERVER": gateway.url}) as running:
            _ref, room = await activation_room(people, cast)
            messenger = running.app.services.messenger  # type: ignore[union-attr]
            original_ring = messenger.ring
            first_out = asyncio.Event()

            async def ring_then_break_the_gateway(*args, **kwargs):  # type: ignore[no-untyped-def]
                if first_out.is_set():
                    await asyncio.sleep(0.2)  # the others go out while the gateway answers 502
                    return await original_ring(*args, **kwargs)
                first_out.set()
                event_id = await original_ring(*args, **kwargs)
                gateway.down = True
                return event_id

            messenger.ring = ring_then_break_the_gateway
            try:
                await people["member"].send(room, "!icc page partner,dg,deputy Gateway drill")
                await asyncio.wait_for(first_out.wait(), 30)
                await asyncio.sleep(15)
                assert gateway.refused > 0
                gateway.down = False
            finally:
                messenger.ring = original_ring
            for role in ("partner", "dg", "deputy"):
                dm, _page = await page_received(people[role], cast, "Gateway drill", timeout=40)
                await people[role].quiet_period(1)
                assert len(pages_in(people[role], dm, cast, "Gateway drill")) == 1, role
            member = people["member"]
            await member.quiet_period(2)
            said = [body(e) for e in member.events(room, cast.bot.user_id)]
            assert not [t for t in said if "could not be delivered" in t]
            after = await member.ask(room, "!icc pages", cast.bot.user_id)
            assert body(after).count("delivered") == 3
    finally:
        await gateway.stop()

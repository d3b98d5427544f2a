"""The database going away under a running bot (a real PostgreSQL restart): the bot keeps running,
records what arrived once the database is back, and answers it — nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Cast, RunningBot, bot_running
from tests.matrix_people import Person, body, replies_to
from tests.test_bot_matrix import shared_room

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


async def homeserver_down(server, seconds: float) -> None:  # type: ignore[no-untyped-def]
    """Stop the session's Synapse, wait, start it again on the same port and data."""
    from bot.devserver import start_synapse

    port = int(server.base_url.rsplit(":", 1)[1])
    await asyncio.to_thread(server.stop)
    await asyncio.sleep(seconds)
    again = await asyncio.to_thread(start_synapse, server.data_dir, port=port)
    server.process = again.process


async def test_homeserver_down_for_30s_during_an_escalation(
    paging_bot: RunningBot,
    people: dict[str, Person],
    cast: Cast,
    synapse,  # type: ignore[no-untyped-def]
) -> None:
    from tests.test_paging import activation_room, page_received, pages_in

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

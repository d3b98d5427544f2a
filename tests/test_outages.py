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

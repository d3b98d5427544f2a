"""Active/standby on one PostgreSQL: exactly one instance active; when it dies, the standby takes
over within 10 s and carries on the pending escalation and the open round, sending nothing twice."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.runtime.leader import Leadership
from bot.storage.db import Database
from tests.support.cast import Cast
from tests.support.matrix_people import Person, body
from tests.support.processes import BotProcess, wait_for_log
from tests.support.rooms import activation_room, escalated_once, page_received

pytestmark = pytest.mark.synapse


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_standby_takes_over_and_carries_on_the_escalation_and_the_round(
    paging_env: dict[str, str], people: dict[str, Person], cast: Cast, tmp_path: Path
) -> None:
    env_a = paging_env
    env_b = paging_env | {"ICC_DATA_DIR": str(tmp_path / "data-b")}
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    active, standby = BotProcess(env_a, log_a), BotProcess(env_b, log_b)
    await active.start()
    standby.launch()
    try:
        await wait_for_log(log_b, "standby: another instance is active")
        _ref, room = await activation_room(people, cast)
        partner, dg = people["partner"], people["dg"]
        await people["member"].send(room, "!icc page partner Failover drill --ack 8s")
        partner_dm, first = await page_received(partner, cast, "Failover drill")
        pg = re.search(r"PG-\d+", body(first)).group(0)  # type: ignore[union-attr]
        member = people["member"]
        await member.send(room, "!icc round now --with member,lead --window 16s")
        prompt = await member.wait_for(
            room, lambda e: "COORDINATION ROUND RD-" in body(e), sender=cast.bot.user_id
        )
        rd = body(prompt).split("COORDINATION ROUND ")[1].split(" ")[0]
        await member.ask(room, "!icc update Liaison officer on site", cast.bot.user_id)
        assert "INFO bot.app: ready" not in log_b.read_text()  # only one instance is active

        killed_at = time.monotonic()
        active.kill()
        await wait_for_log(log_b, "INFO bot.app: ready", timeout=10)
        assert time.monotonic() - killed_at < 10
        await escalated_once(partner, partner_dm, dg, cast, pg)
        summary = await member.wait_for(
            room, lambda e: f"{rd} #1 closed" in body(e), sender=cast.bot.user_id, timeout=30
        )
        assert "Member: Liaison officer on site" in body(summary)
        await member.quiet_period(1)
        said = [body(e) for e in member.events(room, cast.bot.user_id)]
        for once in ("COORDINATION ROUND", "halfway", f"{rd} #1 closed"):
            assert len([t for t in said if once in t]) == 1, once
    finally:
        for bot in (active, standby):
            await asyncio.to_thread(bot.stop, 15)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_released_leader_lock_is_free_at_once_and_never_idle_in_a_transaction(
    database_url: str,
) -> None:
    """The lock's connection runs in autocommit (idle in a transaction, a server's
    `idle_in_transaction_session_timeout` would end it, and the lock with it) and is closed for
    good on release: given back to the pool, it kept the lock, as PostgreSQL ends a session
    lock with the session, not with a rollback, and a standby waited for it in vain."""
    first_db, second_db, observer = (Database(database_url) for _ in range(3))
    first = Leadership(first_db, "@bot:x", poll_seconds=0.1)
    second = Leadership(second_db, "@bot:x", poll_seconds=0.1)
    try:
        await first.acquire()
        async with observer.engine.connect() as conn:
            states = await conn.execute(
                text(
                    "SELECT a.state FROM pg_stat_activity a JOIN pg_locks l USING (pid) "
                    "WHERE l.locktype = 'advisory' AND l.granted "
                    "AND a.datname = current_database()"  # (a bench's bot on the same server)
                )
            )
            assert states.scalars().all() == ["idle"]
        standby = asyncio.create_task(second.acquire())
        await asyncio.sleep(0.5)
        assert not standby.done()  # one active instance at a time
        await first.release()
        await asyncio.wait_for(standby, 5)
    finally:
        await second.release()
        for db in (first_db, second_db, observer):
            await db.dispose()

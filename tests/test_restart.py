"""Restarts: nothing handled twice, nothing sent while down lost, history never run."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest

from bot.chat.registry import CommandContext, CommandFamily
from bot.commands import all_families
from bot.directory.roles import Role
from bot.render import Message
from bot.settings import load_settings
from tests.support.bots import FAST, RunningBot
from tests.support.cast import Cast
from tests.support.databases import BACKENDS
from tests.support.matrix_people import Person, body
from tests.support.processes import BotProcess
from tests.support.reading import answers_to
from tests.support.rooms import shared_room

pytestmark = pytest.mark.synapse


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_restart_runs_each_command_once_and_catches_up(
    bot_env: dict[str, str], people: dict[str, Person], cast: Cast
) -> None:
    running = RunningBot(load_settings(bot_env))
    await running.start()
    room_id = await shared_room(people, cast)
    lead = people["lead"]
    before = await lead.send(room_id, "!icc help")
    await lead.wait_for_reply(room_id, before, cast.bot.user_id)
    await running.stop()

    while_down = await lead.send(room_id, "!icc help help")
    await running.start()
    try:
        reply = await lead.wait_for_reply(room_id, while_down, cast.bot.user_id)
        assert "Example: !icc help page" in body(reply)
        await lead.quiet_period(1.5)
        assert len(answers_to(lead, room_id, before, cast.bot.user_id)) == 1
        assert len(answers_to(lead, room_id, while_down, cast.bot.user_id)) == 1
    finally:
        await running.stop()


async def test_command_older_than_max_age_is_answered_not_run(
    bot_env: dict[str, str], people: dict[str, Person], cast: Cast
) -> None:
    running = RunningBot(load_settings(bot_env | {"ICC_MAX_COMMAND_AGE": "2s"}))
    await running.start()
    room_id = await shared_room(people, cast)
    await running.stop()
    stale = await people["lead"].send(room_id, "!icc help")
    await asyncio.sleep(2.5)
    await running.start()
    try:
        reply = await people["lead"].wait_for_reply(room_id, stale, cast.bot.user_id)
        assert body(reply) == (
            "`help` arrived 1 minute late, not run — send it again if it still applies."
        )
    finally:
        await running.stop()


async def test_first_start_skips_room_history(
    bot_env: dict[str, str], people: dict[str, Person], cast: Cast, tmp_path: Path
) -> None:
    first = RunningBot(load_settings(bot_env))
    await first.start()
    room_id = await shared_room(people, cast)
    await first.stop()
    history = await people["lead"].send(room_id, "!icc help")
    # A brand-new bot installation (new data dir, new database) on the same account.
    fresh_env = bot_env | {
        "ICC_DATA_DIR": str(tmp_path / "fresh-data"),
        "ICC_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}",
    }
    fresh = RunningBot(load_settings(fresh_env))
    await fresh.start()
    try:
        marker = await people["lead"].send(room_id, "!icc help help")
        await people["lead"].wait_for_reply(room_id, marker, cast.bot.user_id)
        assert answers_to(people["lead"], room_id, history, cast.bot.user_id) == []
    finally:
        await fresh.stop()


async def test_command_interrupted_by_shutdown_runs_after_restart(
    bot_env: dict[str, str], people: dict[str, Person], cast: Cast
) -> None:
    started = asyncio.Event()
    stuck = CommandFamily("stuck")

    @stuck.command("work", role=Role.MEMBER, summary="never finishes", example="work")
    async def never_finishes(ctx: CommandContext) -> Message:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    done = CommandFamily("done")

    @done.command("work", role=Role.MEMBER, summary="finishes", example="work")
    async def finishes(ctx: CommandContext) -> Message:
        return ctx.render("user_error", text=f"work done for {ctx.sender}")

    settings = load_settings(bot_env)
    first = RunningBot(settings, families=[*all_families(), stuck])
    await first.start()
    room_id = await shared_room(people, cast)
    event_id = await people["member"].send(room_id, "!icc work")
    await asyncio.wait_for(started.wait(), 15)
    await first.stop()  # the handler is cancelled mid-way: the inbox row stays pending

    second = RunningBot(settings, families=[*all_families(), done])
    await second.start()
    try:
        reply = await people["member"].wait_for_reply(room_id, event_id, cast.bot.user_id)
        assert body(reply) == f"work done for {cast.member.user_id}"
        await people["member"].quiet_period(1.0)
        assert len(answers_to(people["member"], room_id, event_id, cast.bot.user_id)) == 1
    finally:
        await second.stop()


async def test_commands_hidden_by_a_limited_timeline_are_backfilled(
    bot_env: dict[str, str], people: dict[str, Person], cast: Cast
) -> None:
    running = RunningBot(load_settings(bot_env), tuning=replace(FAST, timeline_limit=5))
    await running.start()
    room_id = await shared_room(people, cast)
    await running.stop()
    lead = people["lead"]
    buried = await lead.send(room_id, "!icc help help")
    for n in range(30):  # far more than the sync's timeline shows
        await lead.send(room_id, f"situation update {n}")
    await running.start()
    try:
        reply = await lead.wait_for_reply(room_id, buried, cast.bot.user_id)
        assert "Example: !icc help page" in body(reply)
    finally:
        await running.stop()


async def test_sigkill_and_restart_of_the_real_process(
    bot_env: dict[str, str], people: dict[str, Person], cast: Cast, tmp_path: Path
) -> None:
    bot = BotProcess(bot_env, tmp_path / "bot.log")
    await bot.start()
    try:
        room_id = await shared_room(people, cast)
        lead = people["lead"]
        before = await lead.send(room_id, "!icc help")
        await lead.wait_for_reply(room_id, before, cast.bot.user_id)
        bot.kill()
        device = json.loads((Path(bot_env["ICC_DATA_DIR"]) / "credentials.json").read_text())
        while_down = await lead.send(room_id, "!icc help help")

        bot.launch()
        reply = await lead.wait_for_reply(room_id, while_down, cast.bot.user_id, timeout=30)
        assert "Example: !icc help page" in body(reply)
        await lead.quiet_period(1.5)
        assert len(answers_to(lead, room_id, before, cast.bot.user_id)) == 1
        assert len(answers_to(lead, room_id, while_down, cast.bot.user_id)) == 1
        again = json.loads((Path(bot_env["ICC_DATA_DIR"]) / "credentials.json").read_text())
        assert again["device_id"] == device["device_id"]
        assert cast.bot.password not in bot.log_path.read_text()
        assert device["access_token"] not in bot.log_path.read_text()
    finally:
        assert bot.stop() == 0

"""What the bot answers to people's commands — help, refusals by role, unknown commands, usage
errors, its own failures, threads, template overrides, rate limits — on the desk (the fast tier:
the real command runner, services and database, Matrix recorded; tests/support/desk.py). What
needs the homeserver (the round trip, invites, encryption, the sync) is in test_bot_matrix."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.chat.registry import CommandContext, CommandFamily
from bot.directory.roles import Role
from bot.render import Message
from tests.support.desk import Desk, desk_running


async def test_slash_prefix_and_help_for_one_command(desk: Desk) -> None:
    room_id = desk.room("lead", "member")
    reply = await desk.ask("member", room_id, "/icc help help")
    assert "Example: !icc help page" in reply.body


async def test_stranger_gets_help_only(desk: Desk) -> None:
    room_id = desk.room("lead", "member", "stranger")
    reply = await desk.ask("stranger", room_id, "!icc help")
    assert "not in the ICC directory" in reply.body
    assert "• !icc help" in reply.body


async def test_role_check_before_the_handler(tmp_path: Path, database_url: str) -> None:
    ran: list[str] = []
    family = CommandFamily("test")

    @family.command("secret", role=Role.LEAD, summary="lead only", example="secret")
    async def secret(ctx: CommandContext) -> Message:
        ran.append(ctx.sender)
        return ctx.render("user_error", text="ran")

    async with desk_running(tmp_path, database_url, families=(family,)) as desk:
        room_id = desk.room("lead", "member", "partner", "stranger")
        for role in ("stranger", "partner", "member"):
            reply = await desk.ask(role, room_id, "!icc secret")
            assert "nothing was done" in reply.body or "not in the ICC directory" in reply.body
        reply = await desk.ask("lead", room_id, "!icc secret")
        assert reply.body == "ran"
        assert ran == [desk.who("lead")]


async def test_unknown_command_and_usage_errors(desk: Desk) -> None:
    room_id = desk.room("lead", "member")
    reply = await desk.ask("lead", room_id, "!icc hlep")
    assert "There is no command `hlep`" in reply.body
    assert "Did you mean `help`?" in reply.body
    reply = await desk.ask("lead", room_id, "!icc contacts --page 0")
    assert "`0` is not a whole number from 1 up" in reply.body
    assert "Usage: !icc contacts [<query>] [--page N]" in reply.body


async def test_unexpected_error_is_an_apology_with_a_reference(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    family = CommandFamily("test")

    @family.command("boom", role=Role.STRANGER, summary="fails", example="boom")
    async def boom(ctx: CommandContext) -> Message:
        raise RuntimeError("database password is hunter2")

    async with desk_running(tmp_path, database_url, families=(family,)) as desk:
        room_id = desk.room("lead", "member")
        event_id, sent = await desk.said("member", room_id, "!icc boom")
        [reply] = [r for r in sent if r.reply_to == event_id]
        assert "Something went wrong" in reply.body
        assert "hunter2" not in reply.body
        assert "Traceback" not in reply.body
        ref = reply.body.split("(ref ")[1].split(")")[0]
        assert any(ref in r.getMessage() and event_id in r.getMessage() for r in caplog.records)
        # The bot keeps answering after the failure.
        assert "Commands you can use" in (await desk.ask("member", room_id, "!icc help")).body


async def test_answers_inside_the_thread_it_was_asked_in(desk: Desk) -> None:
    room_id = desk.room("lead", "member")
    root = "$root-of-a-thread"  # "Flooding in Liège: coordination thread", typed earlier
    thread = {
        "rel_type": "m.thread",
        "event_id": root,
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": root},
    }
    reply = await desk.ask("lead", room_id, "!icc help", relates_to=thread)
    assert reply.relation["rel_type"] == "m.thread"
    assert reply.relation["event_id"] == root
    assert reply.thread_root == root


async def test_templates_are_overridable_from_the_config_dir(
    tmp_path: Path, database_url: str
) -> None:
    templates = tmp_path / "config" / "templates"
    templates.mkdir(parents=True)
    (templates / "unknown_command.txt.j2").write_text("Onbekend commando: {{ typed }}")
    (templates / "unknown_command.html.j2").write_text("<p>Onbekend commando: {{ typed }}</p>")
    async with desk_running(tmp_path, database_url) as desk:
        room_id = desk.room("lead", "member")
        reply = await desk.ask("lead", room_id, "!icc <b>x</b>")
        assert reply.body == "Onbekend commando: <b>x</b>"
        assert reply.html == "<p>Onbekend commando: &lt;b&gt;x&lt;/b&gt;</p>"


async def test_rate_limit_and_silence_towards_strangers_reactions(
    tmp_path: Path, database_url: str
) -> None:
    async with desk_running(tmp_path, database_url, env={"ICC_RATE_LIMIT": "3/1m"}) as desk:
        room_id = desk.room("lead", "member", "stranger")
        for _ in range(3):
            reply = await desk.ask("member", room_id, "!icc help")
            assert "Commands you can use" in reply.body
        limited = await desk.ask("member", room_id, "!icc help")
        assert "Slow down: more than 3 commands from you within 1m" in limited.body
        other = await desk.ask("lead", room_id, "!icc help")  # per sender
        assert "Commands you can use" in other.body
        assert other.event_id is not None
        assert await desk.react("stranger", room_id, other.event_id, "✅") == []
        assert await desk.reply("stranger", room_id, other.event_id, "ok") == []

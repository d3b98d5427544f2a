"""`log`, `log correct`, `log export`, `sitrep`: the activation's written record."""

from __future__ import annotations

from bot.activations.exports import EXPORT_FORMATS
from bot.chat.args import Choice, Flag, Option, Text, Word
from bot.chat.registry import CommandContext, CommandFamily
from bot.directory.roles import Role
from bot.errors import UserError
from bot.render import Message

commands = CommandFamily("logbook")


@commands.command(
    "log",
    role=Role.MEMBER,
    summary="add an entry to the activation's logbook (when it happened and when it was written)",
    example="log ERCC confirms two pumping modules en route --at 14:05",
    params=[Text("text", help="the entry, as it should stand in the record")],
    options=[
        Flag("decision", help="record it as a decision"),
        Flag("action", help="record it as an action to follow up"),
        Option("at", Word("at", metavar="HH:MM"), help="when it happened (default: now)"),
    ],
)
async def log_entry(
    ctx: CommandContext, *, text: str, decision: bool, action: bool, at: str | None
) -> Message:
    if decision and action:
        raise UserError("An entry is a decision or an action, not both.")
    kind = "decision" if decision else "action" if action else "info"
    return await ctx.services.logbook.add(ctx.room_id, text, kind=kind, at=at, by=ctx.sender)


@commands.command(
    "log correct",
    role=Role.MEMBER,
    summary="correct an entry: a new entry pointing at the old one; nothing is edited",
    example="log correct #12 Two pumping modules, not three",
    params=[Word("entry", metavar="#n"), Text("text", help="the corrected text")],
)
async def log_correct(ctx: CommandContext, *, entry: str, text: str) -> Message:
    return await ctx.services.logbook.correct(ctx.room_id, entry, text, by=ctx.sender)


@commands.command(
    "log export",
    role=Role.MEMBER,
    summary="the logbook as a file: Markdown, CSV or HTML",
    example="log export csv",
    params=[Choice("format", choices=EXPORT_FORMATS, required=False)],
    confidential=True,
)
async def log_export(ctx: CommandContext, *, format: str | None) -> Message:
    return await ctx.services.logbook.export(ctx.room_id, format or "md", event_id=ctx.event_id)


@commands.command(
    "sitrep",
    role=Role.MEMBER,
    summary="the next numbered situation report, covering the time since the last one",
    example="sitrep",
    confidential=True,
)
async def sitrep(ctx: CommandContext) -> Message:
    name = ctx.contact.name if ctx.contact else ctx.sender
    return await ctx.services.logbook.sitrep(ctx.room_id, by=ctx.sender, by_name=name)

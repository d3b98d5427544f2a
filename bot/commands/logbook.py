"""`log`, `log correct`, `log export`, `sitrep`: the activation's written record."""

from __future__ import annotations

from datetime import timedelta

from bot.activations.exports import EXPORT_FORMATS
from bot.chat.args import Choice, Flag, Option, Targets, Text, Word
from bot.chat.registry import CommandContext, CommandFamily
from bot.commands.paging import resolve_people
from bot.directory.roles import Role
from bot.errors import UserError
from bot.render import Message
from bot.timeutil import parse_future_time, utcnow

commands = CommandFamily("logbook")

LESSON_DUE = timedelta(days=14)  # a lesson's improvement action, when `--due` is not given


@commands.command(
    "log",
    role=Role.MEMBER,
    summary="add an entry to the activation's logbook (when it happened and when it was written)",
    example="log ERCC confirms two pumping modules en route --at 14:05",
    params=[Text("text", help="the entry, as it should stand in the record")],
    options=[
        Flag("decision", help="record it as a decision"),
        Flag("action", help="record it as an action to follow up"),
        Flag("lesson", help="a lesson: becomes an improvement action that outlives the activation"),
        Option("at", Word("at", metavar="HH:MM"), help="when it happened (default: now)"),
        Option(
            "owner",
            Targets("owner", metavar="TARGETS"),
            help="with --lesson: who makes the improvement (default: the lead)",
        ),
        Option(
            "due",
            Word("due", metavar="TIME"),
            help="with --lesson: by when (default: in 14 days)",
        ),
    ],
)
async def log_entry(
    ctx: CommandContext,
    *,
    text: str,
    decision: bool,
    action: bool,
    lesson: bool,
    at: str | None,
    owner: list[str] | None,
    due: str | None,
) -> Message:
    if decision + action + lesson > 1:
        raise UserError("An entry is one of a decision, an action or a lesson.")
    if lesson:
        return await _lesson(ctx, text, owner, due)
    if owner is not None or due is not None:
        raise UserError("`--owner` and `--due` go with `--lesson`; for an action, use `action`.")
    kind = "decision" if decision else "action" if action else "info"
    return await ctx.services.logbook.add(ctx.room_id, text, kind=kind, at=at, by=ctx.sender)


async def _lesson(
    ctx: CommandContext, text: str, owner: list[str] | None, due: str | None
) -> Message:
    """`log … --lesson`: logged as a lesson, and an improvement action made of it."""
    activation = await ctx.services.activations.open_in_room(ctx.room_id)
    if owner is None:
        lead = ctx.services.directory.contact_for(activation.lead)
        if lead is None:
            raise UserError("The lead is not in the directory: say who with `--owner`.")
        people = [lead]
    else:
        people = resolve_people(ctx, owner)
    now = utcnow()
    when = now + LESSON_DUE
    if due is not None:
        try:
            when = parse_future_time(due, ctx.services.settings.timezone, now)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    made, missed = await ctx.services.actions.create(
        activation,
        text=text,
        people=people,
        due=when,
        by=ctx.sender,
        event_id=ctx.event_id,
        lesson=text,
    )
    return ctx.render(
        "lesson_recorded", action=made, missed=missed, **ctx.services.actions.view(made)
    )


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

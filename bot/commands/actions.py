"""`action`, `action reassign`, `done`, `actions`: who does what by when in an activation."""

from __future__ import annotations

from bot.chat.args import Choice, Flag, Option, Targets, Text, Word
from bot.chat.registry import CommandContext, CommandFamily, Reply
from bot.commands.paging import resolve_people
from bot.directory.roles import Role
from bot.errors import UserError
from bot.render import Message
from bot.timeutil import parse_future_time, utcnow

commands = CommandFamily("actions")

OWNERS = Targets("owner", metavar="TARGETS", help="who does it: handles, organisations, groups")


@commands.command(
    "action",
    role=Role.MEMBER,
    summary="an action with owners and a due time: they are told by DM, reminded, chased",
    example="action Draft the consular advice for the zone --owner amertens --due 16:00",
    params=[Text("text", help="what must be done")],
    options=[
        Option("owner", OWNERS, required=True, help="who does it (targets, comma-separated)"),
        Option(
            "due",
            Word("due", metavar="TIME"),
            help="HH:MM, ISO 8601 or a duration (2h); none: no reminder or chase",
        ),
    ],
)
async def action(ctx: CommandContext, *, text: str, owner: list[str], due: str | None) -> Message:
    activation = await ctx.services.activations.open_in_room(ctx.room_id)
    people = resolve_people(ctx, owner)
    when = None
    if due is not None:
        try:
            when = parse_future_time(due, ctx.services.settings.timezone, utcnow())
        except ValueError as exc:
            raise UserError(str(exc)) from None
    made, missed = await ctx.services.actions.create(
        activation, text=text, people=people, due=when, by=ctx.sender, event_id=ctx.event_id
    )
    return ctx.render(
        "action_created", action=made, missed=missed, **ctx.services.actions.view(made)
    )


@commands.command(
    "action reassign",
    role=Role.MEMBER,
    summary="give an action to other owners (told by DM; reminders and the chase go to them)",
    example="action reassign A-3 pdevries",
    params=[Word("ref", metavar="A-n"), Targets("targets", help="the new owners")],
)
async def action_reassign(ctx: CommandContext, *, ref: str, targets: list[str]) -> Message:
    people = resolve_people(ctx, targets)
    return await ctx.services.actions.reassign(ref, people, by=ctx.sender, event_id=ctx.event_id)


@commands.command(
    "done",
    role=Role.PARTNER,
    summary="mark an action done, with a note if you like (its owner, or a member)",
    example="done A-3 advice sent to Foreign Affairs",
    params=[Word("ref", metavar="A-n"), Text("note", required=False, help="what was done")],
)
async def done(ctx: CommandContext, *, ref: str, note: str | None) -> Reply:
    told, activation = await ctx.services.actions.done(ref, by=ctx.sender, role=ctx.role, note=note)
    return Reply(told, activation)  # framed as its activation, also in the owner's DM


@commands.command(
    "actions",
    role=Role.PARTNER,
    summary="the activation's actions: open (default), mine, overdue or all",
    example="actions overdue",
    params=[Choice("which", required=False, choices=("open", "mine", "overdue", "all"))],
    options=[
        Flag("improvement", help="the lessons' improvement actions, of every activation"),
    ],
    reads_only=True,
)
async def actions(ctx: CommandContext, *, which: str | None, improvement: bool) -> Message:
    if improvement:
        return await ctx.services.actions.improvements(
            which or "open", sender=ctx.sender, role=ctx.role
        )
    return await ctx.services.actions.listing(
        ctx.room_id, which or "open", sender=ctx.sender, role=ctx.role
    )

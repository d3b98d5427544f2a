"""`round schedule`, `round now`, `update`, `rounds`, `round cancel`: the cell's rhythm."""

from __future__ import annotations

import re
from datetime import timedelta

from bot.activations.asked import Asked
from bot.chat.args import Choice, Duration, Option, Targets, Text, Word
from bot.chat.registry import CommandContext, CommandFamily
from bot.commands.paging import resolve_people
from bot.directory.roles import Role
from bot.errors import UserError
from bot.render import Message
from bot.rounds.runs import DEFAULT_WINDOW

commands = CommandFamily("rounds")
ROUND_REF = re.compile(r"^RD-(\d+)$", re.IGNORECASE)

_WITH = Option(
    "with",
    Targets("with", metavar="targets"),
    help="participants (default: the ICC roster; in the DG room, the DGs)",
)
_WINDOW = Option("window", Duration("window", metavar="30m"), help="how long it runs (default 30m)")
_AGENDA = Option(
    "agenda",
    Text("agenda", metavar="text"),
    help='items separated by ";", to the next option: --agenda Roads; Shelters',
)
_ROOM = Option(
    "room",
    Choice("room", choices=("here", "dg"), metavar="here|dg"),
    default="here",
    help="here (default) or the DG platform room",
)


@commands.command(
    "round schedule",
    role=Role.LEAD,
    summary="schedule a coordination round: every 30m, daily 09:00, weekdays 08:30, or cron",
    example="round schedule weekdays 08:30 --with benelux --agenda Roads; Shelters",
    params=[Text("when", help="every 30m · daily 09:00 · weekdays 08:30 · 0 9 * * 1-5")],
    options=[
        _WITH,
        _ROOM,
        _AGENDA,
        _WINDOW,
        Option("tz", Word("tz", metavar="zone"), help="IANA time zone (default ICC_TIMEZONE)"),
    ],
)
async def round_schedule(
    ctx: CommandContext,
    *,
    when: str,
    with_: list[str] | None,
    room: str,
    agenda: str | None,
    window: timedelta | None,
    tz: str | None,
) -> Message:
    asked = _asked(ctx, with_, window or DEFAULT_WINDOW, agenda)
    return await ctx.services.rounds.schedule(asked, room=room, when=when, tz=tz)


@commands.command(
    "round now",
    role=Role.MEMBER,
    summary="start a coordination round at once",
    example="round now --with icc --window 15m",
    options=[_WITH, _ROOM, _AGENDA, _WINDOW],
)
async def round_now(
    ctx: CommandContext,
    *,
    with_: list[str] | None,
    room: str,
    agenda: str | None,
    window: timedelta | None,
) -> None:
    await ctx.services.rounds.start_now(
        _asked(ctx, with_, window or DEFAULT_WINDOW, agenda), room=room
    )
    return None  # the round's prompt is the answer


@commands.command(
    "update",
    role=Role.PARTNER,
    summary="report in the room's current round (or reply in the round's thread)",
    example="update Two shelters open in Namur, 340 people housed",
    params=[Text("text", help="your report")],
    any_age=True,
    revised_by_edit=True,
)
async def update(ctx: CommandContext, *, text: str) -> Message | None:
    said = ctx.said(text, ctx.via.value)  # a command, or an edit of one: a new version
    view = await ctx.services.rounds.report(said, room_id=ctx.room_id, thread_root=ctx.thread_root)
    return ctx.render("round_update_recorded", ref=view.series.ref, number=view.run.number)


@commands.command(
    "rounds",
    role=Role.MEMBER,
    summary="scheduled rounds and their next run (local and UTC)",
    example="rounds",
    confidential=True,
    reads_only=True,
)
async def rounds(ctx: CommandContext) -> Message:
    return await ctx.services.rounds.listing()


@commands.command(
    "round cancel",
    role=Role.LEAD,
    summary="cancel a scheduled round",
    example="round cancel RD-5",
    params=[Word("round", metavar="RD-n")],
)
async def round_cancel(ctx: CommandContext, *, round: str) -> Message:
    found = ROUND_REF.match(round)
    if not found:
        raise UserError(f"`{round}` is not a round reference such as RD-5.")
    series = await ctx.services.rounds.cancel(int(found.group(1)), ctx.sender)
    return ctx.render("round_cancelled", ref=series.ref, when=series.when_text)


@commands.command(
    "commscheck",
    role=Role.LEAD,
    summary="a communication check: a test page; who answered, how fast, who did not",
    example="commscheck benelux,ercc --window 10m",
    params=[Targets("targets", required=False, help="default: every partner and DG")],
    options=[
        Option("window", Duration("window", metavar="15m"), help="time to answer (default 15m)"),
        Option(
            "every",
            Text("every", metavar="when"),
            help="repeat on a schedule: --every weekdays 10:00 (see round schedule)",
        ),
    ],
)
async def commscheck(
    ctx: CommandContext, *, targets: list[str] | None, window: timedelta | None, every: str | None
) -> Message:
    named = resolve_people(ctx, targets) if targets else None
    activation, people = await ctx.services.commchecks.audience(ctx.room_id, named)
    asked = Asked(ctx.room_id, people, window or timedelta(minutes=15), ctx.sender, ctx.event_id)
    if every:
        return await ctx.services.rounds.schedule_series(
            "check", activation, asked, when=every, tz=None
        )
    return await ctx.services.commchecks.start(activation, asked)


def _asked(
    ctx: CommandContext, with_: list[str] | None, window: timedelta, agenda: str | None
) -> Asked:
    """A round as typed: its participants if named (else the room's default), window, agenda."""
    people = resolve_people(ctx, with_) if with_ else None
    return Asked(ctx.room_id, people, window, ctx.sender, ctx.event_id, agenda)

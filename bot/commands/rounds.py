"""`round schedule`, `round now`, `update`, `rounds`, `round cancel`: the cell's rhythm."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from bot.chat.args import Choice, Duration, Option, Targets, Text, Word
from bot.chat.registry import CommandContext, CommandFamily
from bot.commands.paging import resolve_people
from bot.directory.model import Contact
from bot.directory.roles import Role
from bot.errors import UserError
from bot.render import Message
from bot.rounds.schedules import to_cron
from bot.storage.models import ActivationRow, ActivationStatus
from bot.timeutil import format_local_utc, load_zone

commands = CommandFamily("rounds")
ROUND_REF = re.compile(r"^RD-(\d+)$", re.IGNORECASE)
DEFAULT_WINDOW = timedelta(minutes=30)

_WITH = Option("with", Targets("with", metavar="targets"), help="participants (default: see help)")
_WINDOW = Option("window", Duration("window", metavar="30m"), help="how long it runs (default 30m)")
_AGENDA = Option(
    "agenda",
    Word("agenda", metavar="text"),
    help='items separated by ";" — quote it: --agenda "Roads; Shelters"',
)
_ROOM = Option(
    "room",
    Choice("room", choices=("here", "dg")),
    default="here",
    help="here (default) or the DG platform room",
)


@dataclass(frozen=True)
class Setup:
    """The options `round schedule` and `round now` share."""

    with_: list[str] | None
    room: str
    agenda: str | None
    window: timedelta | None


async def _create(
    ctx: CommandContext, setup: Setup, *, when: str, cron: str | None, timezone: str
) -> tuple:
    room_id, activation, default = await ctx.services.rounds.place(setup.room, ctx.room_id)
    people = resolve_people(ctx, setup.with_) if setup.with_ else default
    people = [p for p in people if p.matrix_id != ctx.services.settings.user_id]
    if not people:
        raise UserError("Nobody to take part; name them with --with.")
    return await ctx.services.rounds.create(
        activation=activation,
        room_id=room_id,
        when=when,
        cron=cron,
        timezone=timezone,
        window=setup.window or DEFAULT_WINDOW,
        agenda=setup.agenda,
        participants=people,
        created_by=ctx.sender,
        event_id=ctx.event_id,
    )


@commands.command(
    "round schedule",
    role=Role.LEAD,
    summary="schedule a coordination round: every 30m, daily 09:00, weekdays 08:30, or cron",
    example='round schedule weekdays 08:30 --with benelux --agenda "Roads; Shelters"',
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
    when = " ".join(when.split())
    try:
        cron = to_cron(when)
        zone = load_zone(tz) if tz else ctx.services.settings.timezone
    except ValueError as exc:
        raise UserError(str(exc)) from None
    setup = Setup(with_, room, agenda, window)
    series, first = await _create(ctx, setup, when=when, cron=cron, timezone=str(zone.key))
    return ctx.render(
        "round_scheduled",
        ref=series.ref,
        when=when,
        zone=zone.key,
        cron=cron,
        first=format_local_utc(first, zone, with_date=True),
        people=len(series.participants),
    )


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
    setup = Setup(with_, room, agenda, window)
    await _create(
        ctx, setup, when="now", cron=None, timezone=str(ctx.services.settings.timezone.key)
    )
    return None  # the round's prompt is the answer


@commands.command(
    "update",
    role=Role.PARTNER,
    summary="report in the room's current round (or reply in the round's thread)",
    example="update Two shelters open in Namur, 340 people housed",
    params=[Text("text", help="your report")],
    any_age=True,
)
async def update(ctx: CommandContext, *, text: str) -> Message | None:
    view = await ctx.services.rounds.report(
        room_id=ctx.room_id,
        thread_root=ctx.thread_root,
        sender=ctx.sender,
        text=text,
        via="command",
        event_id=ctx.event_id,
        at=ctx.sent_at,
    )
    return ctx.render("round_update_recorded", ref=view.series.ref, number=view.run.number)


@commands.command(
    "rounds",
    role=Role.MEMBER,
    summary="scheduled rounds and their next run (local and UTC)",
    example="rounds",
    confidential=True,
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
            Word("every", metavar="when"),
            help='repeat on a schedule, quoted: --every "weekdays 10:00" (see round schedule)',
        ),
    ],
)
async def commscheck(
    ctx: CommandContext, *, targets: list[str] | None, window: timedelta | None, every: str | None
) -> Message:
    activation = await ctx.services.activations.for_room(ctx.room_id)
    if activation is not None and activation.status != ActivationStatus.OPEN:
        raise UserError(f"{activation.ref} is {activation.status}; run the check elsewhere.")
    if targets:
        people = resolve_people(ctx, targets)
    else:
        people = [
            c for c in ctx.services.directory.contacts.values() if c.role in (Role.PARTNER, Role.DG)
        ]
    if not people:
        raise UserError("Nobody to check; name them: commscheck <targets>.")
    window = window or timedelta(minutes=15)
    if every:
        return await _schedule_check(ctx, activation, people, window, every)
    check = await ctx.services.commchecks.create(
        activation=activation,
        room_id=ctx.room_id,
        sender=ctx.sender,
        people=people,
        window=window,
        event_id=ctx.event_id,
    )
    await ctx.services.pager.deliver(check, activation, reply_to=ctx.event_id)
    return ctx.render(
        "commscheck_sent",
        ref=check.ref,
        count=len(people),
        until=ctx.services.activations.local(check.created_at + window),
    )


async def _schedule_check(
    ctx: CommandContext,
    activation: ActivationRow | None,
    people: list[Contact],
    window: timedelta,
    every: str,
) -> Message:
    when = " ".join(every.split())
    try:
        cron = to_cron(when)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    zone = ctx.services.settings.timezone
    series, first = await ctx.services.rounds.create(
        activation=activation,
        room_id=ctx.room_id,
        when=when,
        cron=cron,
        timezone=str(zone.key),
        window=window,
        agenda=None,
        participants=people,
        created_by=ctx.sender,
        event_id=ctx.event_id,
        kind="check",
    )
    return ctx.render(
        "round_scheduled",
        ref=series.ref,
        when=when,
        zone=zone.key,
        cron=cron,
        first=format_local_utc(first, zone, with_date=True),
        people=len(series.participants),
        kind="communication check",
    )

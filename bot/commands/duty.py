"""`oncall`, `oncall override`: who is on duty, per team, and a lead's change to it."""

from __future__ import annotations

from bot.chat.args import Option, Word
from bot.chat.registry import CommandContext, CommandFamily
from bot.directory.roles import Role
from bot.errors import UserError
from bot.render import Message
from bot.timeutil import parse_future_time, utcnow

commands = CommandFamily("duty")


@commands.command(
    "oncall",
    role=Role.MEMBER,
    summary="who is on duty now and next, per team (local and UTC)",
    example="oncall icc",
    params=[Word("team", required=False, help="default: every team with a rota")],
    reads_only=True,
)
async def oncall(ctx: CommandContext, *, team: str | None) -> Message:
    return ctx.services.duty.listing(team.lower() if team else None)


@commands.command(
    "oncall override",
    role=Role.LEAD,
    summary="put someone on duty in a team until a time; logged, ends by itself",
    example="oncall override icc mrenard --until 19:00",
    params=[Word("team"), Word("handle")],
    options=[
        Option(
            "until",
            Word("until", metavar="TIME"),
            help="HH:MM, ISO 8601 or a duration (8h)",
            required=True,
        )
    ],
)
async def oncall_override(ctx: CommandContext, *, team: str, handle: str, until: str) -> Message:
    duty = ctx.services.duty
    rota = duty.rota(team.lower())
    try:
        ends = parse_future_time(until, rota.zone, utcnow())
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return await duty.override(
        team.lower(),
        handle.lower(),
        until=ends,
        by=ctx.sender,
        event_id=ctx.event_id,
        room_id=ctx.room_id,
    )

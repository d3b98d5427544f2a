"""`activate`, `status`, `level`, `handover`, `close`, `realworld`: an activation's life."""

from __future__ import annotations

from bot.activations.activation import LEVELS, parse_tlp
from bot.activations.lifecycle import matrix_link
from bot.chat.args import Choice, Flag, Option, Text, Word
from bot.chat.registry import CommandContext, CommandFamily, Reply
from bot.directory.roles import Role
from bot.render import Message
from bot.timeutil import format_duration, utcnow

commands = CommandFamily("activation")


@commands.command(
    "activate",
    role=Role.LEAD,
    summary="open an activation: its own encrypted room, the ICC roster invited, the DG told",
    example='activate "Flooding in the Meuse valley" --level information-sharing',
    params=[Text("title", help="what the activation is about")],
    options=[
        Option(
            "level",
            Choice("level", choices=LEVELS, metavar="L"),
            help="monitoring (default, or the playbook's), information-sharing or full",
        ),
        Flag("exercise", help="an exercise: every message marked, refs start EX-"),
        Option(
            "tlp",
            Word("tlp", metavar="T"),
            help="CLEAR, GREEN, AMBER (default, or the playbook's), AMBER+STRICT or RED",
        ),
        Option(
            "playbook",
            Word("playbook", metavar="key"),
            help="open it as this playbook says and apply it (`playbooks` lists them)",
        ),
    ],
)
async def activate(
    ctx: CommandContext,
    *,
    title: str,
    level: str | None,
    exercise: bool,
    tlp: str | None,
    playbook: str | None,
) -> Reply:
    chosen = ctx.services.playbooks.get(playbook) if playbook else None
    message, activation = await ctx.services.lifecycle.open(
        title=title,
        level=level or (chosen.level if chosen else "monitoring"),
        exercise=exercise or bool(chosen and chosen.exercise),
        tlp=parse_tlp(tlp or (chosen.tlp if chosen else "TLP:AMBER")),
        lead=ctx.sender,
        event_id=ctx.event_id,
    )
    if chosen is not None:
        applied = await ctx.services.playbooks.apply(
            activation, chosen.key, by=ctx.sender, event_id=ctx.event_id
        )
        message = Message(f"{message.body}\n\n{applied.body}", message.html + applied.html)
    return Reply(message, activation)


@commands.command(
    "status",
    role=Role.MEMBER,
    summary="level, lead, age, logbook and last sitrep of an activation",
    example="status ICC-2026-007",
    params=[Word("ref", required=False, help="the activation; in its room it may be left out")],
    confidential=True,
    reads_only=True,
)
async def status(ctx: CommandContext, *, ref: str | None) -> Message | Reply:
    activations = ctx.services.activations
    # Looked up once: each lookup is a database session of its own (bench/, command latency).
    here = None if ref else await activations.for_room(ctx.room_id)
    if ref is None and here is None:
        return await _overview(ctx)
    activation = here or await activations.resolve(ctx.room_id, ref)
    situation = await ctx.services.situation(activation)
    tally = situation.tally
    lead = ctx.services.directory.contact_for(activation.lead)
    return Reply(
        ctx.render(
            "status",
            activation=activation,
            lead=lead.name if lead else activation.lead,
            opened=activations.local(activation.opened_at, with_date=True),
            age=format_duration((activation.closed_at or utcnow()) - activation.opened_at),
            history=[(activations.local(h.at), h.level) for h in situation.history],
            entries=tally.entries,
            decisions=tally.decisions,
            last_sitrep=(
                (tally.last_sitrep, activations.local(tally.last_sitrep_at))
                if tally.last_sitrep_at
                else None
            ),
            closed=(
                activations.local(activation.closed_at, with_date=True)
                if activation.closed_at
                else None
            ),
            pages=situation.pages,
            requests=situation.requests,
            next_rounds=situation.next_rounds,
            actions=situation.actions,
        ),
        activation,
    )


async def _overview(ctx: CommandContext) -> Message:
    rows = [
        (a.ref, a.title, a.level, a.tlp, a.status, a.room_id and matrix_link(a.room_id))
        for a in await ctx.services.lifecycle.overview()
    ]
    return ctx.render("status_overview", rows=rows, prefix=ctx.services.settings.command_prefix)


@commands.command(
    "level",
    role=Role.LEAD,
    summary="change the activation's level; announced here and in the DG platform room",
    example="level full",
    params=[Choice("level", choices=LEVELS, help="monitoring, information-sharing or full")],
)
async def level(ctx: CommandContext, *, level: str) -> Message:
    return await ctx.services.lifecycle.change_level_in(ctx.room_id, level, ctx.sender)


@commands.command(
    "handover",
    role=Role.LEAD,
    summary="hand the lead to another ICC lead, with a handover summary",
    example="handover @jdupont:crisis.example",
    params=[Word("lead", metavar="@user", help="the new lead: Matrix ID or directory handle")],
    confidential=True,
)
async def handover(ctx: CommandContext, *, lead: str) -> Message:
    handed = await ctx.services.lifecycle.hand_over_in(ctx.room_id, lead, ctx.sender)
    situation = await ctx.services.situation(handed.activation)
    return ctx.render(
        "handover",
        activation=handed.activation,
        previous=handed.previous,
        successor=handed.successor,
        summary=handed.summary,
        pages=situation.pages,
        requests=situation.requests,
        next_rounds=situation.next_rounds,
        actions=situation.actions,
        local=ctx.services.activations.local,
    )


@commands.command(
    "close",
    role=Role.LEAD,
    summary="close: pending steps end, the closing report and the record bundle are posted",
    example="close Water levels back to normal; municipalities stood down",
    params=[Text("summary", required=False, help="one or two lines for the closing report")],
    confidential=True,
)
async def close(ctx: CommandContext, *, summary: str | None) -> Message:
    return await ctx.services.lifecycle.close_in(ctx.room_id, summary, ctx.sender)


@commands.command(
    "realworld",
    role=Role.LEAD,
    summary="suspend every running exercise at once and post a real-world banner",
    example="realworld Explosion at the port of Antwerp, all staff to the real event",
    params=[Text("reason", help="why the exercises stop")],
)
async def realworld(ctx: CommandContext, *, reason: str) -> Message:
    return await ctx.services.lifecycle.real_world(reason, ctx.sender)

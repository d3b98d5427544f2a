"""`activate`, `status`, `level`, `handover`, `close`, `realworld`: an activation's life."""

from __future__ import annotations

from bot.activations import exports
from bot.activations.activation import LEVELS, Activations, ensure_open, level_history, parse_tlp
from bot.chat.args import Choice, Flag, Option, Text, Word
from bot.chat.registry import CommandContext, CommandFamily, Reply
from bot.chat.render import Message
from bot.directory.roles import Role
from bot.errors import UserError
from bot.storage import activation_store as store
from bot.storage.models import RUNNING
from bot.timeutil import format_duration, utcnow

commands = CommandFamily("activation")


def matrix_link(room_id: str) -> str:
    return f"https://matrix.to/#/{room_id}"


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
            default="monitoring",
            help="monitoring (default), information-sharing or full",
        ),
        Flag("exercise", help="an exercise: every message marked, refs start EX-"),
        Option(
            "tlp",
            Word("tlp", metavar="T"),
            default="TLP:AMBER",
            help="CLEAR, GREEN, AMBER (default), AMBER+STRICT or RED",
        ),
    ],
)
async def activate(
    ctx: CommandContext, *, title: str, level: str, exercise: bool, tlp: str
) -> Reply:
    activations = ctx.services.activations
    title = " ".join(title.split())
    if len(title) > 200:
        raise UserError("The title is longer than 200 characters; keep it to one line.")
    activation, created = await activations.open(
        title=title,
        level=level,
        exercise=exercise,
        tlp=parse_tlp(tlp),
        lead=ctx.sender,
        event_id=ctx.event_id,
    )
    lead = ctx.services.directory.contact_for(activation.lead)
    facts = {
        "activation": activation,
        "lead": lead.name if lead else activation.lead,
        "opened": activations.local(activation.opened_at, with_date=True),
        "link": matrix_link(activation.room_id or ""),
    }
    if created:
        assert activation.room_id is not None
        notice = activations.frame(ctx.render("activation_opened", **facts), activation)
        await ctx.services.messenger.notice(
            activation.room_id, notice, txn_id=f"open-{activation.ref}"
        )
        problem = await activations.announce_dg(ctx.render("dg_activation", **facts), activation)
        if problem:
            await ctx.services.messenger.notice(
                activation.room_id,
                activations.frame(ctx.render("user_error", text=problem), activation),
            )
    return Reply(ctx.render("activation_reply", **facts), activation)


@commands.command(
    "status",
    role=Role.MEMBER,
    summary="level, lead, age, logbook and last sitrep of an activation",
    example="status ICC-2026-007",
    params=[Word("ref", required=False, help="the activation; in its room it may be left out")],
    confidential=True,
)
async def status(ctx: CommandContext, *, ref: str | None) -> Message | Reply:
    activations = ctx.services.activations
    # Looked up once: each lookup is a database session of its own (bench/, command latency).
    here = None if ref else await activations.for_room(ctx.room_id)
    if ref is None and here is None:
        return await _overview(ctx, activations)
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
            closed=activations.local(activation.closed_at) if activation.closed_at else None,
            pages=situation.pages,
            requests=situation.requests,
            next_rounds=situation.next_rounds,
        ),
        activation,
    )


async def _overview(ctx: CommandContext, activations: Activations) -> Message:
    async with ctx.services.db.session() as session:
        running = await store.by_status(session, RUNNING)
    rows = [
        (a.ref, a.title, a.level, a.tlp, a.status, a.room_id and matrix_link(a.room_id))
        for a in running
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
    activations = ctx.services.activations
    activation = await activations.open_in_room(ctx.room_id)
    previous = await activations.change_level(activation, level, ctx.sender)
    facts = {
        "activation": activation,
        "previous": previous,
        "by": _name(ctx, ctx.sender),
        "at": activations.local(utcnow()),
    }
    problem = await activations.announce_dg(ctx.render("dg_level", **facts), activation)
    return ctx.render("level_changed", problem=problem, **facts)


@commands.command(
    "handover",
    role=Role.LEAD,
    summary="hand the lead to another ICC lead, with a handover summary",
    example="handover @jdupont:crisis.example",
    params=[Word("lead", metavar="@user", help="the new lead: Matrix ID or directory handle")],
    confidential=True,
)
async def handover(ctx: CommandContext, *, lead: str) -> Message:
    activations = ctx.services.activations
    activation = await activations.open_in_room(ctx.room_id)
    successor = ctx.services.directory.find(lead)
    if successor is None:
        raise UserError(f"`{lead}` is not in the directory.")
    if successor.role is not Role.LEAD:
        raise UserError(f"{successor.name} is {successor.role.value}, not icc-lead; pick a lead.")
    previous = await activations.hand_over(activation, successor.matrix_id, ctx.sender)
    assert activation.room_id is not None
    await ctx.services.messenger.invite(activation.room_id, successor.matrix_id)
    await ctx.services.messenger.set_power(activation.room_id, successor.matrix_id, 100)
    async with ctx.services.db.session() as session:
        summary = await exports.handover_summary(session, activation)
    situation = await ctx.services.situation(activation)
    return ctx.render(
        "handover",
        activation=activation,
        previous=_name(ctx, previous),
        successor=successor.name,
        summary=summary,
        pages=situation.pages,
        requests=situation.requests,
        next_rounds=situation.next_rounds,
        local=activations.local,
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
    activations = ctx.services.activations
    activation = await activations.resolve(ctx.room_id, None)
    ensure_open(activation)
    cancelled = await activations.close(activation, summary, ctx.sender)
    assert activation.room_id is not None
    async with ctx.services.db.session() as session:
        bundle = await exports.build_bundle(session, activation)
        history = await level_history(session, activation)
    for name, data, mimetype in bundle.files():
        await ctx.services.messenger.send_file(
            activation.room_id,
            data,
            filename=name,
            mimetype=mimetype,
            txn_id=f"bundle-{activation.ref}-{name}",
        )
    facts = {
        "activation": activation,
        "by": _name(ctx, ctx.sender),
        "cancelled": cancelled,
        "duration": format_duration(activation.closed_at - activation.opened_at),  # type: ignore[operator]
        "closed": activations.local(activation.closed_at, with_date=True),  # type: ignore[arg-type]
        "history": [h.level for h in history],
        "bundle": bundle,
    }
    problem = await activations.announce_dg(ctx.render("dg_closed", **facts), activation)
    return ctx.render("close_report", problem=problem, **facts)


@commands.command(
    "realworld",
    role=Role.LEAD,
    summary="suspend every running exercise at once and post a real-world banner",
    example="realworld Explosion at the port of Antwerp, all staff to the real event",
    params=[Text("reason", help="why the exercises stop")],
)
async def realworld(ctx: CommandContext, *, reason: str) -> Message:
    activations = ctx.services.activations
    suspended = await activations.suspend_exercises(reason, ctx.sender)
    for activation in suspended:
        banner = ctx.render(
            "realworld_banner",
            activation=activation,
            reason=reason,
            by=_name(ctx, ctx.sender),
            at=activations.local(utcnow()),
        )
        if activation.room_id:
            await ctx.services.messenger.notice(
                activation.room_id, activations.frame(banner, activation)
            )
        await activations.announce_dg(banner, activation)
    return ctx.render("realworld_reply", suspended=[a.ref for a in suspended])


def _name(ctx: CommandContext, matrix_id: str) -> str:
    contact = ctx.services.directory.contact_for(matrix_id)
    return contact.name if contact else matrix_id

"""`log`, `log correct`, `log export`, `sitrep`: the activation's written record."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.activations import exports
from bot.activations.activation import level_history
from bot.chat.args import Choice, Flag, Option, Text, Word
from bot.chat.registry import CommandContext, CommandFamily
from bot.chat.render import Message
from bot.directory.roles import Role
from bot.errors import UserError
from bot.paging.pages import page_summary
from bot.storage import activation_store as store
from bot.storage.models import LogEntryRow, SitrepRow
from bot.timeutil import parse_past_time, utcnow

commands = CommandFamily("logbook")
SITREP_LIST = 20  # entries per list in a sitrep; older ones are in `log export`


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
    activations = ctx.services.activations
    activation = await activations.open_in_room(ctx.room_id)
    occurred = None
    if at:
        try:
            occurred = parse_past_time(at, ctx.services.settings.timezone, utcnow())
        except ValueError as exc:
            raise UserError(str(exc)) from None
    async with ctx.services.db.session() as session:
        entry = await activations.record(
            session, activation, kind, text, ctx.sender, occurred_at=occurred
        )
    return ctx.render(
        "log_added",
        entry=entry,
        occurred=activations.local(entry.occurred_at),
        late=occurred is not None,
    )


@commands.command(
    "log correct",
    role=Role.MEMBER,
    summary="correct an entry: a new entry pointing at the old one; nothing is edited",
    example="log correct #12 Two pumping modules, not three",
    params=[Word("entry", metavar="#n"), Text("text", help="the corrected text")],
)
async def log_correct(ctx: CommandContext, *, entry: str, text: str) -> Message:
    match = re.fullmatch(r"#?(\d+)", entry)
    if not match:
        raise UserError(f"`{entry}` is not a logbook entry number such as #12.")
    activations = ctx.services.activations
    activation = await activations.open_in_room(ctx.room_id)
    seq = int(match.group(1))
    async with ctx.services.db.session() as session:
        original = await store.log_entry(session, activation.id, seq)
        if original is None:
            raise UserError(f"{activation.ref} has no logbook entry #{seq}.")
        correction = await activations.record(
            session,
            activation,
            "correction",
            text,
            ctx.sender,
            occurred_at=original.occurred_at,
            corrects_seq=seq,
        )
    return ctx.render("log_corrected", entry=correction, original=original)


@commands.command(
    "log export",
    role=Role.MEMBER,
    summary="the logbook as a file: Markdown, CSV or HTML",
    example="log export csv",
    params=[Choice("format", choices=exports.EXPORT_FORMATS, required=False)],
    confidential=True,
)
async def log_export(ctx: CommandContext, *, format: str | None) -> Message | None:
    activations = ctx.services.activations
    activation = await activations.resolve(ctx.room_id, None)
    fmt = format or "md"
    async with ctx.services.db.session() as session:
        entries = await store.log_entries(session, activation.id)
    data = exports.export_logbook(activation, entries, fmt)
    mimetype = {"md": "text/markdown", "csv": "text/csv", "html": "text/html"}[fmt]
    await ctx.services.messenger.send_file(
        ctx.room_id,
        data,
        filename=f"{activation.ref}-logbook.{fmt}",
        mimetype=mimetype,
        txn_id=f"export-{ctx.event_id}",
    )
    return ctx.render("log_exported", activation=activation, count=len(entries), fmt=fmt)


@commands.command(
    "sitrep",
    role=Role.MEMBER,
    summary="the next numbered situation report, covering the time since the last one",
    example="sitrep",
    confidential=True,
)
async def sitrep(ctx: CommandContext) -> Message:
    activations = ctx.services.activations
    activation = await activations.open_in_room(ctx.room_id)
    now = utcnow()
    async with ctx.services.db.session() as session:
        await store.lock_activation(session, activation.id)
        previous = await store.sitreps(session, activation.id)
        start = previous[-1].period_end if previous else activation.opened_at
        key_points = await _listed(session, activation.id, ["info", "correction"], start)
        decisions = await _listed(session, activation.id, ["decision"], start)
        next_steps = await _listed(session, activation.id, ["action"], None)
        history = await level_history(session, activation)
        pages = await page_summary(session, activation.id)
        requests = await ctx.services.inputs.summary(session, activation.id)
        number = len(previous) + 1
        message = ctx.render(
            "sitrep",
            activation=activation,
            number=number,
            period=(
                activations.local(start, with_date=True),
                activations.local(now, with_date=True),
            ),
            prepared_by=_name(ctx),
            at=activations.local(now, with_date=True),
            key_points=key_points,
            decisions=decisions,
            history=[(activations.local(h.at), h.level) for h in history],
            next_steps=next_steps,
            pages=pages,
            requests=requests,
            local=activations.local,
        )
        session.add(
            SitrepRow(
                activation_id=activation.id,
                number=number,
                period_start=start,
                period_end=now,
                prepared_by=ctx.sender,
                body=message.body,
                created_at=now,
            )
        )
        await activations.record(
            session,
            activation,
            "system.sitrep",
            f"Sitrep {number} issued",
            ctx.sender,
            data={"number": number},
        )
    return message


@dataclass(frozen=True)
class Listed:
    """The newest entries of one kind that a sitrep shows, and how many older ones it leaves to
    the logbook: a Matrix event holds at most 64 KiB, and a sitrep listing 1,000 entries was
    refused by the homeserver (bench/, storage growth)."""

    entries: list[LogEntryRow]
    omitted: int


async def _listed(
    session: AsyncSession, activation_id: int, kinds: list[str], since: datetime | None
) -> Listed:
    total = await store.count_log_entries(session, activation_id, kinds=kinds, since=since)
    shown = await store.latest_log_entries(
        session, activation_id, SITREP_LIST, kinds=kinds, since=since
    )
    return Listed(shown, total - len(shown))


def _name(ctx: CommandContext) -> str:
    return ctx.contact.name if ctx.contact else ctx.sender

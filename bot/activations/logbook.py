"""What members write in an activation — `log`, `log correct`, `log export`, `sitrep` — on top of
the hash-chained entries of `bot.activations.chain`.

A sitrep covers the time since the previous one, and is numbered and stored in the transaction
that logs its issue, under the activation's lock: two people asking at once get sitreps 4 and 5,
never two 4s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.actions.actions import action_view, open_actions
from bot.activations import exports
from bot.activations.activation import Activations, level_history
from bot.errors import UserError
from bot.inputs.requests import Inputs
from bot.paging.board import page_summary
from bot.render import Message
from bot.storage import activation_store as store
from bot.storage.models import LogEntryRow, SitrepRow
from bot.timeutil import parse_past_time, utcnow

if TYPE_CHECKING:
    from bot.directory.keeper import DirectoryKeeper
    from bot.matrix.send import Messenger
    from bot.render import Renderer
    from bot.settings import Settings
    from bot.storage.db import Database

SITREP_LIST = 20  # entries per list in a sitrep; older ones are in `log export`
MIMETYPES = {"md": "text/markdown", "csv": "text/csv", "html": "text/html"}


@dataclass(frozen=True)
class Listed:
    """The newest entries of one kind that a sitrep shows, and how many older ones it leaves to
    the logbook: a Matrix event holds at most 64 KiB, and a sitrep listing 1,000 entries was
    refused by the homeserver (bench/, storage growth)."""

    entries: list[LogEntryRow]
    omitted: int


@dataclass(frozen=True, kw_only=True)
class Logbook:
    settings: Settings
    db: Database
    keeper: DirectoryKeeper
    renderer: Renderer
    messenger: Messenger
    activations: Activations
    inputs: Inputs

    async def add(self, room_id: str, text: str, *, kind: str, at: str | None, by: str) -> Message:
        """`log`: an entry of `kind`, which happened `at` (HH:MM, local) or now."""
        activation = await self.activations.open_in_room(room_id)
        occurred = None
        if at:
            try:
                occurred = parse_past_time(at, self.settings.timezone, utcnow())
            except ValueError as exc:
                raise UserError(str(exc)) from None
        async with self.db.session() as session:
            entry = await self.activations.add_entry(
                session, activation, kind, text, by, occurred_at=occurred
            )
        return self.renderer.render(
            "log_added",
            entry=entry,
            # Dated: `--at 23:50` typed at 00:10 is yesterday, and the answer says so.
            occurred=self.activations.local(entry.occurred_at, with_date=True),
            late=occurred is not None,
        )

    async def correct(self, room_id: str, number: str, text: str, *, by: str) -> Message:
        """`log correct #n`: a new entry pointing at entry n; nothing is edited."""
        match = re.fullmatch(r"#?(\d+)", number)
        if not match:
            raise UserError(f"`{number}` is not a logbook entry number such as #12.")
        activation = await self.activations.open_in_room(room_id)
        seq = int(match.group(1))
        async with self.db.session() as session:
            original = await store.log_entry(session, activation.id, seq)
            if original is None:
                raise UserError(f"{activation.ref} has no logbook entry #{seq}.")
            correction = await self.activations.add_entry(
                session,
                activation,
                "correction",
                text,
                by,
                occurred_at=original.occurred_at,
                corrects_seq=seq,
            )
        return self.renderer.render("log_corrected", entry=correction, original=original)

    async def export(self, room_id: str, fmt: str, *, event_id: str) -> Message:
        """`log export`: the whole logbook as a file in the room, then a line saying so."""
        activation = await self.activations.resolve(room_id, None)
        async with self.db.session() as session:
            entries = await store.log_entries(session, activation.id)
        await self.messenger.send_file(
            room_id,
            exports.export_logbook(activation, entries, fmt),
            filename=f"{activation.ref}-logbook.{fmt}",
            mimetype=MIMETYPES[fmt],
            txn_id=f"export-{event_id}",
        )
        return self.renderer.render(
            "log_exported", activation=activation, count=len(entries), fmt=fmt
        )

    async def sitrep(self, room_id: str, *, by: str, by_name: str) -> Message:
        """`sitrep`: the next numbered situation report, stored and logged."""
        activation = await self.activations.open_in_room(room_id)
        local = self.activations.local
        now = utcnow()
        async with self.db.session() as session:
            await store.lock_activation(session, activation.id)
            previous = await store.sitreps(session, activation.id)
            start = previous[-1].period_end if previous else activation.opened_at
            history = await level_history(session, activation)
            number = len(previous) + 1
            key_points = await _listed(session, activation.id, ["info", "correction"], start)
            message = self.renderer.render(
                "sitrep",
                activation=activation,
                number=number,
                period=(local(start, with_date=True), local(now, with_date=True)),
                prepared_by=by_name,
                at=local(now, with_date=True),
                key_points=key_points,
                corrected_by={e.corrects_seq: e.seq for e in key_points.entries if e.corrects_seq},
                decisions=await _listed(session, activation.id, ["decision"], None),
                since=start,
                history=[(local(h.at), h.level) for h in history],
                actions=[
                    action_view(a, self.keeper.current, self.settings.timezone)
                    for a in (await open_actions(session, activation.id)).open
                ],
                next_steps=await _listed(session, activation.id, ["action"], None),
                pages=await page_summary(session, activation.id),
                requests=await self.inputs.summary(session, activation.id),
                local=local,
            )
            session.add(
                SitrepRow(
                    activation_id=activation.id,
                    number=number,
                    period_start=start,
                    period_end=now,
                    prepared_by=by,
                    body=message.body,
                    created_at=now,
                )
            )
            await self.activations.add_entry(
                session,
                activation,
                "system.sitrep",
                f"Sitrep {number} issued",
                by,
                data={"number": number},
            )
        return message


async def _listed(
    session: AsyncSession, activation_id: int, kinds: list[str], since: datetime | None
) -> Listed:
    total = await store.count_log_entries(session, activation_id, kinds=kinds, since=since)
    shown = await store.latest_log_entries(
        session, activation_id, SITREP_LIST, kinds=kinds, since=since
    )
    return Listed(shown, total - len(shown))

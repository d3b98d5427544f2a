"""Data access for activations, their logbook and sitreps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage import bulk
from bot.storage.db import WRITES_NOTHING, dialect_of
from bot.storage.models import (
    ActivationRow,
    InputRequestRow,
    LogEntryRow,
    PageRow,
    RoundSeriesRow,
    SitrepRow,
)
from bot.storage.round_store import IN_FORCE
from bot.storage.types import could_be_id

NUMBERING_LOCK = 0x1CC0_0001  # PostgreSQL advisory lock: who numbers an activation


async def next_number(session: AsyncSession, *, exercise: bool, year: int) -> int:
    """The year's next activation number (exercises count apart), held until the transaction
    ends: two activations opened in the same second must not both take it (the second would
    fail on the unique number). PostgreSQL: an advisory lock on the numbering; SQLite: its
    write lock, taken now by a write that changes nothing (see lock_activation)."""
    if dialect_of(session) == "sqlite":
        statement = update(ActivationRow).where(col(ActivationRow.id).is_(None))
        await session.exec(statement.values(id=ActivationRow.id))
    else:
        await session.exec(select(func.pg_advisory_xact_lock(NUMBERING_LOCK)))
    result = await session.exec(
        select(func.max(ActivationRow.number)).where(
            ActivationRow.exercise == exercise, ActivationRow.year == year
        )
    )
    return (result.one() or 0) + 1


async def by_opening_event(session: AsyncSession, event_id: str) -> ActivationRow | None:
    rows = await session.exec(
        select(ActivationRow).where(ActivationRow.opened_by_event == event_id)
    )
    return rows.first()


async def by_id(session: AsyncSession, activation_id: int) -> ActivationRow | None:
    return await session.get(ActivationRow, activation_id)


async def by_ids(session: AsyncSession, ids: list[int]) -> dict[int, ActivationRow]:
    if not ids:
        return {}
    rows = await session.exec(select(ActivationRow).where(col(ActivationRow.id).in_(set(ids))))
    return {row.id: row for row in rows.all()}


async def by_ref(session: AsyncSession, ref: str) -> ActivationRow | None:
    rows = await session.exec(select(ActivationRow).where(ActivationRow.ref == ref.upper()))
    return rows.first()


async def by_room(session: AsyncSession, room_id: str) -> ActivationRow | None:
    rows = await session.exec(select(ActivationRow).where(ActivationRow.room_id == room_id))
    return rows.first()


async def by_status(session: AsyncSession, statuses: Sequence[str]) -> list[ActivationRow]:
    rows = await session.exec(
        select(ActivationRow)
        .where(col(ActivationRow.status).in_(list(statuses)))
        .order_by(col(ActivationRow.opened_at))
    )
    return list(rows.all())


async def lock_activation(session: AsyncSession, activation_id: int) -> None:
    """Serialise writers of one activation, from here to the end of the transaction.

    PostgreSQL: a row lock. SQLite has none, and its transaction takes the database's write lock
    only at its first write: two sessions whose first statements read the last logbook entry
    would both chain onto it. A write that changes nothing takes that lock now.
    """
    if dialect_of(session) == "sqlite":
        statement = update(ActivationRow).where(col(ActivationRow.id) == activation_id)
        locking = statement.values(id=ActivationRow.id).execution_options(**{WRITES_NOTHING: True})
        await session.exec(locking)
        return
    await session.exec(
        select(ActivationRow.id).where(ActivationRow.id == activation_id).with_for_update()
    )


async def set_fields(session: AsyncSession, activation_id: int, **fields: object) -> None:
    await session.exec(
        update(ActivationRow).where(col(ActivationRow.id) == activation_id).values(**fields)
    )


async def last_log_entry(session: AsyncSession, activation_id: int) -> tuple[int, str] | None:
    """The seq and hash of the activation's last entry: what the next one chains onto."""
    rows = await session.exec(
        select(LogEntryRow.seq, LogEntryRow.hash)
        .where(LogEntryRow.activation_id == activation_id)
        .order_by(col(LogEntryRow.seq).desc())
        .limit(1)
    )
    last = rows.first()
    return (last[0], last[1]) if last else None


async def add_log_entries(session: AsyncSession, entries: list[LogEntryRow]) -> None:
    """Many entries in one statement (the ORM's flush would send one INSERT each on SQLite)."""
    rows = [entry.model_dump(exclude={"id"}) for entry in entries]
    await bulk.insert_rows(session, LogEntryRow, rows)


async def log_entries(
    session: AsyncSession,
    activation_id: int,
    *,
    kinds: Sequence[str] | None = None,
    since: datetime | None = None,
) -> list[LogEntryRow]:
    query = select(LogEntryRow).where(*_log_filters(activation_id, kinds, since))
    rows = await session.exec(query.order_by(col(LogEntryRow.seq)))
    return list(rows.all())


def _log_filters(
    activation_id: int, kinds: Sequence[str] | None, since: datetime | None
) -> list[Any]:
    filters: list[Any] = [LogEntryRow.activation_id == activation_id]
    if kinds is not None:
        filters.append(col(LogEntryRow.kind).in_(list(kinds)))
    if since is not None:
        filters.append(col(LogEntryRow.recorded_at) > since)
    return filters


async def count_log_entries(
    session: AsyncSession,
    activation_id: int,
    *,
    kinds: Sequence[str] | None = None,
    since: datetime | None = None,
) -> int:
    """Counted in the database: `status` must not load a 100,000-entry logbook to say its size."""
    query = select(func.count()).where(*_log_filters(activation_id, kinds, since))
    return (await session.exec(query)).one()


@dataclass(frozen=True)
class Tally:
    """How much an activation holds, counted in one query: what `status` shows, and which of
    its lists are worth a query of their own. On SQLite every query is four hops to
    aiosqlite's thread, about 0.6 ms; status asks often and a quiet activation has few lists."""

    entries: int
    decisions: int
    last_sitrep: int | None
    last_sitrep_at: datetime | None
    pages: int
    requests: int
    scheduled_rounds: int


async def tally(session: AsyncSession, activation_id: int) -> Tally:
    def count(model: Any, *where: Any) -> Any:
        return select(func.count()).select_from(model).where(*where).scalar_subquery()

    sitreps = select(SitrepRow.number, SitrepRow.created_at)
    newest = (
        sitreps.where(SitrepRow.activation_id == activation_id)
        .order_by(col(SitrepRow.number).desc())
        .limit(1)
        .subquery()
    )
    row = (
        await session.exec(
            # sqlmodel types select() for at most four columns; this one reads seven
            select(  # type: ignore[call-overload]
                count(LogEntryRow, *_log_filters(activation_id, None, None)),
                count(LogEntryRow, *_log_filters(activation_id, ["decision"], None)),
                select(newest.c.number).scalar_subquery(),
                select(newest.c.created_at).scalar_subquery(),
                count(PageRow, PageRow.activation_id == activation_id),
                count(InputRequestRow, InputRequestRow.activation_id == activation_id),
                count(RoundSeriesRow, *IN_FORCE, RoundSeriesRow.activation_id == activation_id),
            )
        )
    ).one()
    return Tally(*row)


async def latest_log_entries(
    session: AsyncSession,
    activation_id: int,
    limit: int,
    *,
    kinds: Sequence[str] | None = None,
    since: datetime | None = None,
) -> list[LogEntryRow]:
    """The newest `limit` matching entries, oldest first: what a message has room for."""
    query = select(LogEntryRow).where(*_log_filters(activation_id, kinds, since))
    newest = await session.exec(query.order_by(col(LogEntryRow.seq).desc()).limit(limit))
    return list(newest.all())[::-1]


async def log_entry(session: AsyncSession, activation_id: int, seq: int) -> LogEntryRow | None:
    if not could_be_id(seq):
        return None
    rows = await session.exec(
        select(LogEntryRow).where(
            LogEntryRow.activation_id == activation_id, LogEntryRow.seq == seq
        )
    )
    return rows.first()


async def sitreps(session: AsyncSession, activation_id: int) -> list[SitrepRow]:
    rows = await session.exec(
        select(SitrepRow)
        .where(SitrepRow.activation_id == activation_id)
        .order_by(col(SitrepRow.number))
    )
    return list(rows.all())

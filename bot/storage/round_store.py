"""Data access for coordination rounds: series, runs and reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.models import RoundReportRow, RoundRunRow, RoundSeriesRow, RunStatus
from bot.storage.types import could_be_id


async def series_by_event(session: AsyncSession, event_id: str) -> RoundSeriesRow | None:
    rows = await session.exec(
        select(RoundSeriesRow).where(RoundSeriesRow.opened_by_event == event_id)
    )
    return rows.first()


async def series(session: AsyncSession, series_id: int) -> RoundSeriesRow | None:
    return await session.get(RoundSeriesRow, series_id) if could_be_id(series_id) else None


IN_FORCE = (col(RoundSeriesRow.cron).is_not(None), col(RoundSeriesRow.cancelled_at).is_(None))


async def scheduled(session: AsyncSession, *where: Any) -> list[RoundSeriesRow]:
    """Every schedule still in force (that also meets `where`)."""
    rows = await session.exec(
        select(RoundSeriesRow).where(*IN_FORCE, *where).order_by(col(RoundSeriesRow.id))
    )
    return list(rows.all())


async def scheduled_for_activation(
    session: AsyncSession, activation_id: int
) -> list[RoundSeriesRow]:
    return await scheduled(session, RoundSeriesRow.activation_id == activation_id)


async def cancel_series(session: AsyncSession, series_id: int, at: datetime) -> None:
    await session.exec(
        update(RoundSeriesRow).where(col(RoundSeriesRow.id) == series_id).values(cancelled_at=at)
    )


async def end_schedules(session: AsyncSession, activation_id: int, at: datetime) -> None:
    """Every schedule of an activation ends with it (its timers are cancelled with the rest)."""
    await session.exec(
        update(RoundSeriesRow)
        .where(col(RoundSeriesRow.activation_id) == activation_id, *IN_FORCE)
        .values(cancelled_at=at)
    )


async def run_for_slot(session: AsyncSession, series_id: int, slot: datetime) -> RoundRunRow | None:
    rows = await session.exec(
        select(RoundRunRow).where(
            RoundRunRow.series_id == series_id, RoundRunRow.scheduled_for == slot
        )
    )
    return rows.first()


async def run(session: AsyncSession, run_id: int) -> RoundRunRow | None:
    return await session.get(RoundRunRow, run_id)


async def next_run_number(session: AsyncSession, series_id: int) -> int:
    result = await session.exec(
        select(func.max(RoundRunRow.number)).where(RoundRunRow.series_id == series_id)
    )
    return (result.one() or 0) + 1


async def open_run_in_room(
    session: AsyncSession, room_id: str
) -> tuple[RoundRunRow, RoundSeriesRow] | None:
    """The newest open run whose round posts in `room_id`."""
    rows = await session.exec(
        select(RoundRunRow, RoundSeriesRow)
        .join(RoundSeriesRow, col(RoundSeriesRow.id) == col(RoundRunRow.series_id))
        .where(RoundSeriesRow.room_id == room_id, RoundRunRow.status == RunStatus.OPEN)
        .order_by(col(RoundRunRow.id).desc())
    )
    found = rows.first()
    return (found[0], found[1]) if found else None


async def run_by_prompt(session: AsyncSession, event_id: str) -> RoundRunRow | None:
    rows = await session.exec(select(RoundRunRow).where(RoundRunRow.prompt_event_id == event_id))
    return rows.first()


async def set_run(session: AsyncSession, run_id: int, **fields: object) -> None:
    await session.exec(update(RoundRunRow).where(col(RoundRunRow.id) == run_id).values(**fields))


async def reports(session: AsyncSession, run_id: int) -> list[RoundReportRow]:
    rows = await session.exec(
        select(RoundReportRow)
        .where(RoundReportRow.run_id == run_id)
        .order_by(col(RoundReportRow.reported_at))
    )
    return list(rows.all())


async def report_by_event(session: AsyncSession, event_id: str) -> RoundReportRow | None:
    rows = await session.exec(select(RoundReportRow).where(RoundReportRow.event_id == event_id))
    return rows.first()


async def open_run_without_prompt(session: AsyncSession, room_id: str) -> bool:
    """Whether a run of a round posting in `room_id` is open with no prompt recorded: it is
    starting, or a crash cut its start short (it starts again at the next start-up)."""
    rows = await session.exec(
        select(RoundRunRow.id)
        .join(RoundSeriesRow, col(RoundSeriesRow.id) == col(RoundRunRow.series_id))
        .where(
            RoundSeriesRow.room_id == room_id,
            RoundRunRow.status == RunStatus.OPEN,
            col(RoundRunRow.prompt_event_id).is_(None),
        )
        .limit(1)
    )
    return rows.first() is not None


async def runs_of_activation(
    session: AsyncSession, activation_id: int
) -> list[tuple[RoundSeriesRow, RoundRunRow, list[RoundReportRow]]]:
    """Every run of the activation's rounds, in order, each with its reports (oldest first)."""
    rows = await session.exec(
        select(RoundSeriesRow, RoundRunRow)
        .join(RoundRunRow, col(RoundRunRow.series_id) == RoundSeriesRow.id)
        .where(RoundSeriesRow.activation_id == activation_id)
        .order_by(col(RoundRunRow.scheduled_for), col(RoundRunRow.id))
    )
    found = list(rows.all())
    return [(series, run, await reports(session, run.id)) for series, run in found]

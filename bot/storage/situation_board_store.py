"""Data access for the live situation board: the epoch of an activation's board links, and what
the board reads that no other store reads the same way."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.models import PageRow, PageTargetRow, SitrepRow, SituationBoardRow


async def epoch(session: AsyncSession, activation_id: int) -> int:
    """The epoch links to the activation's board are signed with now (0 until a revocation)."""
    row = await session.get(SituationBoardRow, activation_id)
    return row.epoch if row else 0


async def revoke(session: AsyncSession, activation_id: int, by: str, at: datetime) -> int:
    """Move the epoch on (every link given so far stops working); the new epoch. Callers hold
    the activation's lock (`activation_store.lock_activation`), so two revocations count two."""
    row = await session.get(SituationBoardRow, activation_id)
    if row is None:
        row = SituationBoardRow(activation_id=activation_id)
    row.epoch += 1
    row.revoked_at, row.revoked_by = at, by
    session.add(row)
    await session.flush()
    return row.epoch


async def last_sitrep(session: AsyncSession, activation_id: int) -> SitrepRow | None:
    rows = await session.exec(
        select(SitrepRow)
        .where(SitrepRow.activation_id == activation_id)
        .order_by(col(SitrepRow.number).desc())
        .limit(1)
    )
    return rows.first()


async def newest_pages(session: AsyncSession, activation_id: int, limit: int) -> list[PageRow]:
    """The activation's newest `limit` pages, newest first."""
    rows = await session.exec(
        select(PageRow)
        .where(PageRow.activation_id == activation_id)
        .order_by(col(PageRow.id).desc())
        .limit(limit)
    )
    return list(rows.all())


async def count_pages(session: AsyncSession, activation_id: int) -> int:
    query = select(func.count()).select_from(PageRow).where(PageRow.activation_id == activation_id)
    return (await session.exec(query)).one()


async def targets_of(session: AsyncSession, page_ids: list[int]) -> dict[int, list[PageTargetRow]]:
    """The people of these pages, per page, in the order they were paged."""
    by_page: dict[int, list[PageTargetRow]] = {page_id: [] for page_id in page_ids}
    if not page_ids:
        return by_page
    rows = await session.exec(
        select(PageTargetRow)
        .where(col(PageTargetRow.page_id).in_(page_ids))
        .order_by(col(PageTargetRow.id))
    )
    for row in rows.all():
        by_page[row.page_id].append(row)
    return by_page


async def ack_times(
    session: AsyncSession, activation_id: int
) -> list[tuple[str, datetime | None, datetime | None]]:
    """(organisation, delivered, acknowledged) of everyone paged in the activation: the latency
    chart's numbers, read as three columns (no row objects for a page to hundreds)."""
    rows = await session.exec(
        select(PageTargetRow.organisation, PageTargetRow.delivered_at, PageTargetRow.acked_at)
        .join(PageRow, col(PageRow.id) == col(PageTargetRow.page_id))
        .where(PageRow.activation_id == activation_id)
    )
    return [(org, delivered, acked) for org, delivered, acked in rows.all()]

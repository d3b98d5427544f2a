"""Data access for the live situation board: the epoch of an activation's board links."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.models import SitrepRow, SituationBoardRow


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

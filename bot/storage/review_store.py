"""Data access for the after-action review: participants' feedback and the review's versions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.models import FeedbackRow, ReviewRow


async def feedback_of(session: AsyncSession, activation_id: int) -> list[FeedbackRow]:
    """Everyone asked for (or giving) feedback on the activation, in the order they were added."""
    rows = await session.exec(
        select(FeedbackRow)
        .where(FeedbackRow.activation_id == activation_id)
        .order_by(col(FeedbackRow.id))
    )
    return list(rows.all())


async def feedback_for(
    session: AsyncSession, activation_id: int, matrix_id: str
) -> FeedbackRow | None:
    rows = await session.exec(
        select(FeedbackRow).where(
            FeedbackRow.activation_id == activation_id, FeedbackRow.matrix_id == matrix_id
        )
    )
    return rows.first()


async def mark_asked(session: AsyncSession, feedback_id: int, at: datetime) -> None:
    """Record that the person was asked (the first time only: a re-run keeps the moment)."""
    await session.exec(
        update(FeedbackRow)
        .where(col(FeedbackRow.id) == feedback_id, col(FeedbackRow.asked_at).is_(None))
        .values(asked_at=at)
    )


async def last_asked(session: AsyncSession, matrix_id: str) -> FeedbackRow | None:
    """The activation this person was asked about last (their `feedback` is about it)."""
    rows = await session.exec(
        select(FeedbackRow)
        .where(FeedbackRow.matrix_id == matrix_id, col(FeedbackRow.asked_at).is_not(None))
        .order_by(col(FeedbackRow.asked_at).desc(), col(FeedbackRow.id).desc())
        .limit(1)
    )
    return rows.first()


async def reviews(session: AsyncSession, activation_id: int) -> list[ReviewRow]:
    """The review's versions as posted, oldest first."""
    rows = await session.exec(
        select(ReviewRow)
        .where(ReviewRow.activation_id == activation_id)
        .order_by(col(ReviewRow.version))
    )
    return list(rows.all())


async def forget(session: AsyncSession, activation_id: int, version: int) -> None:
    """A version reserved and never made (its rendering failed): its number is free again."""
    await session.exec(
        delete(ReviewRow).where(
            col(ReviewRow.activation_id) == activation_id, col(ReviewRow.version) == version
        )
    )

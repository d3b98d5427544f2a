"""Rows of the duty capability: the overrides leads set with `oncall override`."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.models import DutyOverrideRow


async def override_by_event(session: AsyncSession, event_id: str) -> DutyOverrideRow | None:
    found = await session.exec(
        select(DutyOverrideRow).where(DutyOverrideRow.opened_by_event == event_id)
    )
    return found.first()


async def overrides_in_force(session: AsyncSession, at: datetime) -> list[DutyOverrideRow]:
    """Overrides not yet ended at `at`, oldest first."""
    found = await session.exec(
        select(DutyOverrideRow)
        .where(col(DutyOverrideRow.until) > at)
        .order_by(col(DutyOverrideRow.id))
    )
    return list(found.all())

"""Data access for actions (`A-n`)."""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.models import ActionRow, ActionStatus
from bot.storage.types import could_be_id


async def by_event(session: AsyncSession, event_id: str) -> ActionRow | None:
    rows = await session.exec(select(ActionRow).where(ActionRow.opened_by_event == event_id))
    return rows.first()


async def action(session: AsyncSession, action_id: int) -> ActionRow | None:
    return await session.get(ActionRow, action_id) if could_be_id(action_id) else None


async def of_activation(
    session: AsyncSession, activation_id: int, *, open_only: bool = False
) -> list[ActionRow]:
    """The activation's actions in the order they were made (the open ones only, if asked)."""
    query = select(ActionRow).where(ActionRow.activation_id == activation_id)
    if open_only:
        query = query.where(ActionRow.status == ActionStatus.OPEN)
    rows = await session.exec(query.order_by(col(ActionRow.id)))
    return list(rows.all())


async def open_in(session: AsyncSession, activation_ids: list[int]) -> list[ActionRow]:
    """The open actions of these activations, in the order they were made."""
    if not activation_ids:
        return []
    rows = await session.exec(
        select(ActionRow)
        .where(
            col(ActionRow.activation_id).in_(activation_ids),
            ActionRow.status == ActionStatus.OPEN,
        )
        .order_by(col(ActionRow.id))
    )
    return list(rows.all())


async def improvements(session: AsyncSession, *, open_only: bool = False) -> list[ActionRow]:
    """Improvement actions (lessons) of every activation, open or closed, oldest first."""
    query = select(ActionRow).where(col(ActionRow.improvement).is_(True))
    if open_only:
        query = query.where(ActionRow.status == ActionStatus.OPEN)
    rows = await session.exec(query.order_by(col(ActionRow.id)))
    return list(rows.all())

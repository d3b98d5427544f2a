"""Data access for input requests, the people asked, their answers, and advice drafts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage import bulk
from bot.storage.models import AdviceDraftRow, InputAnswerRow, InputRequestRow, RequestTargetRow
from bot.storage.types import could_be_id


async def request_by_event(session: AsyncSession, event_id: str) -> InputRequestRow | None:
    rows = await session.exec(
        select(InputRequestRow).where(InputRequestRow.opened_by_event == event_id)
    )
    return rows.first()


async def request(session: AsyncSession, request_id: int) -> InputRequestRow | None:
    return await session.get(InputRequestRow, request_id) if could_be_id(request_id) else None


async def requests_of(session: AsyncSession, activation_id: int) -> list[InputRequestRow]:
    rows = await session.exec(
        select(InputRequestRow)
        .where(InputRequestRow.activation_id == activation_id)
        .order_by(col(InputRequestRow.id))
    )
    return list(rows.all())


async def targets(session: AsyncSession, request_id: int) -> list[RequestTargetRow]:
    rows = await session.exec(
        select(RequestTargetRow)
        .where(RequestTargetRow.request_id == request_id)
        .order_by(col(RequestTargetRow.id))
    )
    return list(rows.all())


async def targets_of_activation(
    session: AsyncSession, activation_id: int
) -> list[RequestTargetRow]:
    """Everyone asked by any of the activation's requests, in one query."""
    rows = await session.exec(
        select(RequestTargetRow)
        .join(InputRequestRow, col(InputRequestRow.id) == col(RequestTargetRow.request_id))
        .where(InputRequestRow.activation_id == activation_id)
        .order_by(col(RequestTargetRow.id))
    )
    return list(rows.all())


async def target_by_event(session: AsyncSession, event_id: str) -> RequestTargetRow | None:
    rows = await session.exec(select(RequestTargetRow).where(RequestTargetRow.event_id == event_id))
    return rows.first()


async def has_unrecorded_target(session: AsyncSession, matrix_id: str, since: datetime) -> bool:
    """Whether a request made after `since` may have reached this person without its event being
    recorded yet: a row neither delivered nor failed as far as the database knows."""
    rows = await session.exec(
        select(RequestTargetRow.id)
        .join(InputRequestRow, col(InputRequestRow.id) == col(RequestTargetRow.request_id))
        .where(
            RequestTargetRow.matrix_id == matrix_id,
            col(RequestTargetRow.event_id).is_(None),
            col(RequestTargetRow.send_error).is_(None),
            col(InputRequestRow.created_at) > since,
        )
        .limit(1)
    )
    return rows.first() is not None


async def add_targets(session: AsyncSession, rows: list[dict[str, object]]) -> None:
    """New people on a request, one dict of `RequestTargetRow` columns each, in one statement."""
    await bulk.insert_rows(session, RequestTargetRow, rows)


async def mark_many(session: AsyncSession, updates: dict[int, dict[str, object]]) -> None:
    await bulk.update_by_id(session, RequestTargetRow, updates)


async def answers(session: AsyncSession, request_id: int) -> list[InputAnswerRow]:
    rows = await session.exec(
        select(InputAnswerRow)
        .where(InputAnswerRow.request_id == request_id)
        .order_by(col(InputAnswerRow.answered_at), col(InputAnswerRow.version))
    )
    return list(rows.all())


async def answers_of_activation(session: AsyncSession, activation_id: int) -> list[InputAnswerRow]:
    """Every answer to any of the activation's requests, in one query, in the order given."""
    rows = await session.exec(
        select(InputAnswerRow)
        .join(InputRequestRow, col(InputRequestRow.id) == col(InputAnswerRow.request_id))
        .where(InputRequestRow.activation_id == activation_id)
        .order_by(col(InputAnswerRow.answered_at), col(InputAnswerRow.version))
    )
    return list(rows.all())


async def answer_by_event(session: AsyncSession, event_id: str) -> InputAnswerRow | None:
    rows = await session.exec(select(InputAnswerRow).where(InputAnswerRow.event_id == event_id))
    return rows.first()


async def next_version(session: AsyncSession, target_id: int) -> int:
    result = await session.exec(
        select(func.max(InputAnswerRow.version)).where(InputAnswerRow.target_id == target_id)
    )
    return (result.one() or 0) + 1


async def next_advice_version(session: AsyncSession, activation_id: int) -> int:
    result = await session.exec(
        select(func.max(AdviceDraftRow.version)).where(
            AdviceDraftRow.activation_id == activation_id
        )
    )
    return (result.one() or 0) + 1


async def advice_drafts(session: AsyncSession, activation_id: int) -> list[AdviceDraftRow]:
    rows = await session.exec(
        select(AdviceDraftRow)
        .where(AdviceDraftRow.activation_id == activation_id)
        .order_by(col(AdviceDraftRow.version))
    )
    return list(rows.all())

"""Data access for pages, the people on them, and the bot's DM rooms."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, or_, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage import bulk
from bot.storage.models import (
    ActivationRow,
    ActivationStatus,
    DmRoom,
    PageAttemptRow,
    PageRow,
    PageTargetRow,
)
from bot.storage.types import could_be_id


async def dm_room(session: AsyncSession, matrix_id: str) -> DmRoom | None:
    return await session.get(DmRoom, matrix_id)


async def dm_rooms(session: AsyncSession, matrix_ids: list[str]) -> dict[str, str]:
    rows = await session.exec(select(DmRoom).where(col(DmRoom.matrix_id).in_(matrix_ids)))
    return {row.matrix_id: row.room_id for row in rows.all()}


async def add_targets(session: AsyncSession, rows: list[dict[str, object]]) -> None:
    """New people on a page, one dict of `PageTargetRow` columns each, in one statement."""
    await bulk.insert_rows(session, PageTargetRow, rows)


async def mark_many(session: AsyncSession, updates: Mapping[int, Mapping[str, object]]) -> None:
    await bulk.update_by_id(session, PageTargetRow, updates)


async def save_dm_room(session: AsyncSession, matrix_id: str, room_id: str, at: datetime) -> None:
    row = await session.get(DmRoom, matrix_id)
    if row is None:
        row = DmRoom(matrix_id=matrix_id, room_id=room_id, created_at=at)
    row.room_id = room_id
    session.add(row)


async def page_by_event(session: AsyncSession, event_id: str) -> PageRow | None:
    rows = await session.exec(select(PageRow).where(PageRow.opened_by_event == event_id))
    return rows.first()


async def page_in(
    session: AsyncSession, page_id: int | None
) -> tuple[PageRow | None, ActivationRow | None]:
    """A page and the activation it belongs to (None for a check outside any, or no page)."""
    found = await page(session, page_id) if page_id is not None else None
    if found is None or found.activation_id is None:
        return found, None
    return found, await session.get(ActivationRow, found.activation_id)


async def page(session: AsyncSession, page_id: int) -> PageRow | None:
    return await session.get(PageRow, page_id) if could_be_id(page_id) else None


async def set_board(
    session: AsyncSession, page_id: int, *, digest: str, event_id: str | None = None
) -> None:
    """The board's event (once, when posted) and the digest of what it now shows."""
    values = {"board_digest": digest} | ({"board_event_id": event_id} if event_id else {})
    await session.exec(update(PageRow).where(col(PageRow.id) == page_id).values(**values))


async def boards_in_open_activations(session: AsyncSession) -> list[int]:
    """The pages whose board an open activation's room shows (what may need an edit)."""
    rows = await session.exec(
        select(PageRow.id)
        .join(ActivationRow, col(ActivationRow.id) == col(PageRow.activation_id))
        .where(
            col(PageRow.board_event_id).is_not(None),
            ActivationRow.status == ActivationStatus.OPEN,
        )
        .order_by(col(PageRow.id))
    )
    return list(rows.all())


async def pages_of(session: AsyncSession, activation_id: int) -> list[PageRow]:
    rows = await session.exec(
        select(PageRow).where(PageRow.activation_id == activation_id).order_by(col(PageRow.id))
    )
    return list(rows.all())


async def targets(
    session: AsyncSession, page_id: int, matrix_id: str | None = None
) -> list[PageTargetRow]:
    """A page's rows, in order; only one person's (theirs and any they cover) if `matrix_id`."""
    query = select(PageTargetRow).where(PageTargetRow.page_id == page_id)
    if matrix_id is not None:
        query = query.where(PageTargetRow.matrix_id == matrix_id)
    rows = await session.exec(query.order_by(col(PageTargetRow.id)))
    return list(rows.all())


class AnswerState(NamedTuple):
    """Where one person of a page stands, as a summary counts it."""

    page_id: int
    handle: str
    covers: str
    name: str
    acked: bool
    declined: bool
    unreachable: bool


async def answer_states(
    session: AsyncSession, activation_id: int
) -> tuple[list[int], list[AnswerState]]:
    """The activation's pages (ids, in order) and where each of their people stands: the
    columns a summary counts, not whole rows (`status` during a page to three hundred people
    would load three hundred of them each time)."""
    pages = await session.exec(
        select(PageRow.id).where(PageRow.activation_id == activation_id).order_by(col(PageRow.id))
    )
    rows = await session.exec(  # type: ignore[call-overload]  # sqlmodel types 4 columns at most
        select(
            col(PageTargetRow.page_id),
            col(PageTargetRow.handle),
            col(PageTargetRow.covers),
            col(PageTargetRow.name),
        )
        .add_columns(
            col(PageTargetRow.acked_at).is_not(None),
            col(PageTargetRow.declined_at).is_not(None),
            col(PageTargetRow.unreachable_at).is_not(None),
        )
        .join(PageRow, col(PageRow.id) == col(PageTargetRow.page_id))
        .where(col(PageRow.activation_id) == activation_id)
        .order_by(col(PageTargetRow.id))
    )
    return list(pages.all()), [AnswerState(*row) for row in rows.all()]


async def pages_with_targets(
    session: AsyncSession, activation_id: int
) -> list[tuple[PageRow, list[PageTargetRow]]]:
    """Every page of an activation with its people, in two queries however many pages it has:
    status, sitrep and the record read them all, and a page each was a round trip each."""
    pages = await pages_of(session, activation_id)
    if not pages:
        return []
    rows = await session.exec(
        select(PageTargetRow)
        .join(PageRow, col(PageRow.id) == col(PageTargetRow.page_id))
        .where(PageRow.activation_id == activation_id)
        .order_by(col(PageTargetRow.id))
    )
    by_page: dict[int, list[PageTargetRow]] = {page.id: [] for page in pages}
    for row in rows.all():
        # Each query sees what is committed when it runs: people of a page added since the
        # first are left for the next read.
        if row.page_id in by_page:
            by_page[row.page_id].append(row)
    return [(page, by_page[page.id]) for page in pages]


async def target(session: AsyncSession, target_id: int) -> PageTargetRow | None:
    return await session.get(PageTargetRow, target_id)


async def target_by_event(session: AsyncSession, event_id: str) -> PageTargetRow | None:
    """The person's row whose page (or repeat page) is the event `event_id`."""
    return (await targets_by_events(session, [event_id])).get(event_id)


async def targets_by_events(
    session: AsyncSession, event_ids: list[str]
) -> dict[str, PageTargetRow]:
    """`target_by_event` for many events in one query: event ID → the row it paged."""
    if not event_ids:
        return {}
    rows = await session.exec(
        select(PageTargetRow).where(
            or_(
                col(PageTargetRow.event_id).in_(event_ids),
                col(PageTargetRow.repage_event_id).in_(event_ids),
            )
        )
    )
    wanted = set(event_ids)
    found: dict[str, PageTargetRow] = {}
    for row in rows.all():
        for event_id in (row.event_id, row.repage_event_id):
            if event_id in wanted:
                found.setdefault(event_id, row)
    return found


async def open_rows_of(session: AsyncSession, matrix_id: str) -> list[PageTargetRow]:
    """The person's rows without an answer, newest page first — those reported unreachable
    too: an ack that comes after the report is still news to the cell."""
    return (await open_rows_of_people(session, {matrix_id}))[matrix_id]


async def open_rows_of_people(
    session: AsyncSession, matrix_ids: set[str]
) -> dict[str, list[PageTargetRow]]:
    """`open_rows_of` for many people in one query (a storm's `ack`s written together)."""
    found: dict[str, list[PageTargetRow]] = {matrix_id: [] for matrix_id in matrix_ids}
    if not matrix_ids:
        return found
    rows = await session.exec(
        select(PageTargetRow)
        .where(
            col(PageTargetRow.matrix_id).in_(matrix_ids),
            col(PageTargetRow.acked_at).is_(None),
            col(PageTargetRow.declined_at).is_(None),
        )
        .order_by(col(PageTargetRow.page_id).desc(), col(PageTargetRow.id))
    )
    for row in rows.all():
        found[row.matrix_id].append(row)
    return found


async def targets_of_people(
    session: AsyncSession, pairs: set[tuple[int, str]]
) -> dict[tuple[int, str], list[PageTargetRow]]:
    """`targets(page, matrix_id)` for many (page, person) pairs in one query."""
    if not pairs:
        return {}
    rows = await session.exec(
        select(PageTargetRow)
        .where(
            col(PageTargetRow.page_id).in_({page for page, _ in pairs}),
            col(PageTargetRow.matrix_id).in_({matrix_id for _, matrix_id in pairs}),
        )
        .order_by(col(PageTargetRow.id))
    )
    found: dict[tuple[int, str], list[PageTargetRow]] = {}
    for row in rows.all():
        if (pair := (row.page_id, row.matrix_id)) in pairs:
            found.setdefault(pair, []).append(row)
    return found


async def mark(session: AsyncSession, target_id: int, **fields: object) -> None:
    await session.exec(
        update(PageTargetRow).where(col(PageTargetRow.id) == target_id).values(**fields)
    )


async def acked_by_event(session: AsyncSession, event_id: str) -> bool:
    """Whether an answer with this event ID (an inbound SMS's, say) was recorded already."""
    rows = await session.exec(
        select(PageTargetRow.id).where(PageTargetRow.ack_event_id == event_id).limit(1)
    )
    return rows.first() is not None


def _answering(*fields: str) -> Any:
    """UPDATE of an unanswered row's `fields`, built once: a storm of acks writes it hundreds of
    times a second, and building the statement cost as much as running it (bench/, the storm)."""
    table = SQLModel.metadata.tables[str(PageTargetRow.__tablename__)]
    return (
        update(table)
        .where(
            table.c.id == bindparam("target_id"),
            table.c.acked_at.is_(None),
            table.c.declined_at.is_(None),
        )
        .values({name: bindparam(name) for name in fields})
    )


_ANSWERING = {
    frozenset(fields): _answering(*fields)
    for fields in (("acked_at", "ack_how", "ack_event_id"), ("declined_at", "declined_reason"))
}


async def answer_once(session: AsyncSession, row: PageTargetRow, **fields: object) -> bool:
    """Record the first answer (ack: `acked_at`, `ack_how`, `ack_event_id`; decline:
    `declined_at`, `declined_reason`) on a row, and on the session's copy of it; False when one
    was recorded before (the copy then stays as it was read)."""
    statement = _ANSWERING[frozenset(fields)]
    result = await session.exec(statement, params={"target_id": row.id, **fields})
    if result.rowcount != 1:
        return False
    for name, value in fields.items():
        set_committed_value(row, name, value)
    return True


async def acked_by_reaction(
    session: AsyncSession, reaction_event_id: str, matrix_id: str
) -> list[PageTargetRow]:
    """The person's rows acknowledged by their reaction `reaction_event_id` (one reaction acks
    all of a person's rows on a page: paged directly and standing in for someone)."""
    rows = await session.exec(
        select(PageTargetRow)
        .where(
            PageTargetRow.matrix_id == matrix_id,
            PageTargetRow.ack_event_id == reaction_event_id,
            PageTargetRow.ack_how == "reaction",
        )
        .order_by(col(PageTargetRow.id))
    )
    return list(rows.all())


async def withdraw_ack_once(session: AsyncSession, target_ids: list[int], at: datetime) -> bool:
    """Record when an acknowledgement was withdrawn, on rows where none was recorded yet; False
    when every row had one (the same withdrawal handled again)."""
    result = await session.exec(
        update(PageTargetRow)
        .where(
            col(PageTargetRow.id).in_(target_ids),
            col(PageTargetRow.ack_withdrawn_at).is_(None),
        )
        .values(ack_withdrawn_at=at)
    )
    return result.rowcount > 0


async def check_results(
    session: AsyncSession, matrix_ids: list[str] | None = None
) -> dict[str, PageTargetRow]:
    """Each person's row on the latest communication check sent to them (of `matrix_ids`, or of
    everyone)."""
    query = (
        select(PageTargetRow)
        .join(PageRow, col(PageRow.id) == col(PageTargetRow.page_id))
        .where(PageRow.kind == "check")
    )
    if matrix_ids is not None:
        query = query.where(col(PageTargetRow.matrix_id).in_(matrix_ids))
    rows = await session.exec(query.order_by(col(PageTargetRow.page_id)))
    return {row.matrix_id: row for row in rows.all()}


async def mark_seen(session: AsyncSession, room_id: str, matrix_id: str, at: datetime) -> set[int]:
    """The person's pages in their direct-message room `room_id` that had reached them by `at`
    and were not known to be seen: seen at `at`. Returns the pages' IDs."""
    rows = await session.exec(
        select(PageTargetRow).where(
            PageTargetRow.dm_room_id == room_id,
            PageTargetRow.matrix_id == matrix_id,
            col(PageTargetRow.seen_at).is_(None),
            col(PageTargetRow.delivered_at) <= at,
        )
    )
    seen = list(rows.all())
    for row in seen:
        row.seen_at = at
        session.add(row)
    return {row.page_id for row in seen}


async def last_ack_latency(session: AsyncSession, matrix_id: str) -> float | None:
    """Seconds from delivery to acknowledgement on the person's latest acknowledged page."""
    rows = await session.exec(
        select(PageTargetRow)
        .where(PageTargetRow.matrix_id == matrix_id, col(PageTargetRow.acked_at).is_not(None))
        .order_by(col(PageTargetRow.acked_at).desc())
        .limit(1)
    )
    row = rows.first()
    if row is None or row.acked_at is None or row.delivered_at is None:
        return None
    return (row.acked_at - row.delivered_at).total_seconds()


async def open_rows_since(
    session: AsyncSession, matrix_id: str, since: datetime
) -> list[tuple[PageTargetRow, PageRow]]:
    """The person's unanswered rows on pages created after `since`, with their pages."""
    rows = await session.exec(
        select(PageTargetRow, PageRow)
        .join(PageRow, col(PageRow.id) == col(PageTargetRow.page_id))
        .where(
            PageTargetRow.matrix_id == matrix_id,
            col(PageTargetRow.acked_at).is_(None),
            col(PageTargetRow.declined_at).is_(None),
            col(PageRow.created_at) > since,
        )
    )
    return [(row, page) for row, page in rows.all()]


async def dm_owner(session: AsyncSession, room_id: str) -> str | None:
    """Whose direct-message room this is, by the bot's own record."""
    rows = await session.exec(select(DmRoom.matrix_id).where(DmRoom.room_id == room_id))
    return rows.first()


async def all_dm_rooms(session: AsyncSession) -> list[str]:
    rows = await session.exec(select(DmRoom.room_id))
    return list(rows.all())


async def attempts(session: AsyncSession, target_ids: list[int]) -> list[PageAttemptRow]:
    """The tries through other channels for these rows, in the order they were made."""
    if not target_ids:
        return []
    rows = await session.exec(
        select(PageAttemptRow)
        .where(col(PageAttemptRow.target_id).in_(target_ids))
        .order_by(col(PageAttemptRow.id))
    )
    return list(rows.all())


async def tries_by_row(
    session: AsyncSession, rows: list[PageTargetRow]
) -> dict[int, list[PageAttemptRow]]:
    """Each row's tries through channels other than Matrix, in order."""
    tries: dict[int, list[PageAttemptRow]] = {}
    for attempt in await attempts(session, [row.id for row in rows]):
        tries.setdefault(attempt.target_id, []).append(attempt)
    return tries


async def targets_by_id(session: AsyncSession, ids: list[int]) -> dict[int, PageTargetRow]:
    if not ids:
        return {}
    rows = await session.exec(select(PageTargetRow).where(col(PageTargetRow.id).in_(ids)))
    return {row.id: row for row in rows.all()}


async def pages_by_id(session: AsyncSession, ids: list[int]) -> dict[int, PageRow]:
    if not ids:
        return {}
    rows = await session.exec(select(PageRow).where(col(PageRow.id).in_(set(ids))))
    return {row.id: row for row in rows.all()}

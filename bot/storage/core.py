"""Data access for the bot's own bookkeeping: sync position, command inbox, joins, timers.

Functions take the session of the caller's transaction, so a sync batch's inbox rows and its token
are written together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage import bulk
from bot.storage.models import InboxEvent, InboxStatus, Outcome, RoomJoin, SyncState, Timer
from bot.timeutil import utcnow


async def load_sync_state(session: AsyncSession, user_id: str) -> SyncState | None:
    return await session.get(SyncState, user_id)


async def save_sync_state(
    session: AsyncSession, user_id: str, *, next_batch: str | None, filter_id: str | None
) -> None:
    values = {"next_batch": next_batch, "filter_id": filter_id, "updated_at": utcnow()}
    await bulk.upsert(session, SyncState, {"user_id": user_id, **values}, "user_id")


async def record_inbox(session: AsyncSession, events: Sequence[InboxEvent]) -> list[InboxEvent]:
    """Add the events not seen before; returns the ones added (the rest are duplicates)."""
    unique = list({event.event_id: event for event in reversed(events)}.values())[::-1]
    values = [event.model_dump() for event in unique]
    added = await bulk.insert_missing(session, InboxEvent, values, "event_id")
    return [event for event in unique if event.event_id in added]


async def inbox_event(session: AsyncSession, event_id: str) -> InboxEvent | None:
    return await session.get(InboxEvent, event_id)


async def pending_inbox(session: AsyncSession) -> list[InboxEvent]:
    return await inbox_with_status(session, InboxStatus.PENDING)


async def inbox_with_status(session: AsyncSession, status: InboxStatus) -> list[InboxEvent]:
    """The inbox's events in `status`, oldest first (by their origin time)."""
    rows = await session.exec(
        select(InboxEvent).where(InboxEvent.status == status).order_by(col(InboxEvent.origin_ts))
    )
    return list(rows.all())


async def unseal_inbox(session: AsyncSession, item: InboxEvent) -> None:
    """A kept encrypted event, decrypted: it becomes the pending command it carries."""
    await session.exec(
        update(InboxEvent)
        .where(col(InboxEvent.event_id) == item.event_id)
        .values(
            content=item.content,
            event_type=item.event_type,
            received_at=item.received_at,
            status=item.status,
        )
    )


async def finish_inbox(session: AsyncSession, event_id: str, status: Outcome) -> None:
    await finish_inbox_many(session, [event_id], status)


async def finish_inbox_many(session: AsyncSession, event_ids: list[str], status: Outcome) -> None:
    """Mark events handled with one outcome, in one statement (a storm of acks finishes
    together)."""
    await session.exec(
        update(InboxEvent)
        .where(col(InboxEvent.event_id).in_(event_ids))
        .values(status=status, finished_at=utcnow())
    )


async def save_join(session: AsyncSession, room_id: str, joined_at: datetime) -> None:
    join = await session.get(RoomJoin, room_id)
    if join is None:
        session.add(RoomJoin(room_id=room_id, joined_at=joined_at))
    elif joined_at > join.joined_at:
        join.joined_at = joined_at
        session.add(join)


async def load_joins(session: AsyncSession) -> dict[str, datetime]:
    rows = await session.exec(select(RoomJoin))
    return {row.room_id: row.joined_at for row in rows.all()}


async def upsert_timers(
    session: AsyncSession, kind: str, timers: list[tuple[str, datetime, dict[str, Any]]]
) -> list[tuple[int, datetime]]:
    """Arm each (kind, key) at its due time: a new one is inserted, one that has not fired is
    moved (and un-cancelled), a fired one stays as it is. One look-up, one insert and one
    update for all: an escalation arms a step for every person of a page at once. Returns
    (ID, due time) of each timer armed, the fired ones left out."""
    if not timers:
        return []
    wanted = {key: (due, payload) for key, due, payload in timers}
    rows = await session.exec(
        select(Timer.id, Timer.key, Timer.fired_at).where(
            Timer.kind == kind, col(Timer.key).in_(list(wanted))
        )
    )
    existing = {key: (timer_id, fired_at) for timer_id, key, fired_at in rows.all()}
    due_of = {
        timer_id: wanted[key][0]
        for key, (timer_id, fired_at) in existing.items()
        if fired_at is None
    }
    keys = {timer_id: key for key, (timer_id, _) in existing.items()}
    moved = {
        timer_id: {"due_at": due, "payload": wanted[keys[timer_id]][1], "cancelled_at": None}
        for timer_id, due in due_of.items()
    }
    await bulk.update_by_id(session, Timer, moved)
    new = [(key, due, payload) for key, (due, payload) in wanted.items() if key not in existing]
    armed = await insert_timers(session, kind, new)
    return armed + list(due_of.items())


async def move_timers(
    session: AsyncSession, kind: str, moves: dict[str, datetime]
) -> list[tuple[int, datetime]]:
    """Move each (kind, key) that is still armed (not fired, not cancelled) to its new due time;
    returns (ID, due time) of those moved. Unlike arming again, a cancelled timer stays so."""
    if not moves:
        return []
    rows = await session.exec(
        select(Timer.id, Timer.key).where(
            Timer.kind == kind,
            col(Timer.key).in_(list(moves)),
            col(Timer.fired_at).is_(None),
            col(Timer.cancelled_at).is_(None),
        )
    )
    moved = {timer_id: {"due_at": moves[key]} for timer_id, key in rows.all()}
    await bulk.update_by_id(session, Timer, moved)
    return [(timer_id, fields["due_at"]) for timer_id, fields in moved.items()]


async def armed_keys(session: AsyncSession, kind: str, key_prefix: str) -> list[str]:
    """The keys of `kind` under `key_prefix` still armed (neither fired nor cancelled)."""
    rows = await session.exec(
        select(Timer.key).where(
            Timer.kind == kind,
            col(Timer.key).startswith(key_prefix),
            col(Timer.fired_at).is_(None),
            col(Timer.cancelled_at).is_(None),
        )
    )
    return list(rows.all())


async def insert_timers(
    session: AsyncSession, kind: str, timers: list[tuple[str, datetime, dict[str, Any]]]
) -> list[tuple[int, datetime]]:
    """New timers in one statement; returns (ID, due time) of each, in no particular order."""
    now = utcnow()
    values = [
        {"kind": kind, "key": key, "due_at": due, "payload": payload, "created_at": now}
        for key, due, payload in timers
    ]
    rows = await bulk.insert_rows(session, Timer, values, Timer.id, Timer.due_at)
    return [(row.id, row.due_at) for row in rows]


async def claim_timers(
    session: AsyncSession, timer_ids: Sequence[int], claimant: str
) -> list[Timer]:
    """Claim timers for `claimant` (this process), atomically; returns those it won, by ID.

    A timer is won when it is armed and unclaimed, or claimed by a process that is gone (any
    other claimant: each process start has its own).
    """
    if not timer_ids:
        return []
    result = await session.exec(
        update(Timer)
        .where(
            col(Timer.id).in_(timer_ids),
            col(Timer.completed_at).is_(None),
            col(Timer.cancelled_at).is_(None),
            or_(col(Timer.claimed_by).is_(None), col(Timer.claimed_by) != claimant),
        )
        .values(fired_at=utcnow(), claimed_by=claimant)
        .returning(col(Timer.id))
    )
    won = [row[0] for row in result.all()]
    if not won:
        return []
    rows = await session.exec(select(Timer).where(col(Timer.id).in_(won)).order_by(col(Timer.id)))
    return list(rows.all())


async def complete_timers(session: AsyncSession, timer_ids: Sequence[int]) -> None:
    if not timer_ids:
        return
    await session.exec(
        update(Timer).where(col(Timer.id).in_(timer_ids)).values(completed_at=utcnow())
    )


async def release_timers(session: AsyncSession, timer_ids: Sequence[int]) -> None:
    """Give claims back after the handler failed, so that the retry can claim them again."""
    if not timer_ids:
        return
    await session.exec(
        update(Timer)
        .where(col(Timer.id).in_(timer_ids), col(Timer.completed_at).is_(None))
        .values(claimed_by=None, fired_at=None)
    )


async def cancel_timers(
    session: AsyncSession, key_prefix: str | list[str], kind: str | None = None
) -> list[int]:
    """Cancel the unfired timers whose key starts with key_prefix (or any of several; of one
    kind, or any): one statement, which also brings the session's copies of them up to date."""
    prefixes = [key_prefix] if isinstance(key_prefix, str) else key_prefix
    if not prefixes:
        return []
    query = (
        update(Timer)
        .where(
            or_(*(col(Timer.key).startswith(prefix) for prefix in prefixes)),
            col(Timer.completed_at).is_(None),
            col(Timer.cancelled_at).is_(None),
        )
        .values(cancelled_at=utcnow())
        .returning(col(Timer.id))
        .execution_options(synchronize_session="fetch")
    )
    if kind is not None:
        query = query.where(col(Timer.kind) == kind)
    return list((await session.exec(query)).scalars())


async def armed_timers(session: AsyncSession) -> list[Timer]:
    """Every timer still to run to completion, including ones a dead process had claimed."""
    rows = await session.exec(
        select(Timer)
        .where(col(Timer.completed_at).is_(None), col(Timer.cancelled_at).is_(None))
        .order_by(col(Timer.due_at))
    )
    return list(rows.all())


async def any_unfinished_claim(session: AsyncSession, keys: Sequence[str]) -> bool:
    """Whether one of these timers was claimed (it fired) and has not completed: its handler is
    running, or was cut short by a crash and runs again at the next start."""
    if not keys:
        return False
    rows = await session.exec(
        select(Timer.id)
        .where(
            col(Timer.key).in_(list(keys)),
            col(Timer.fired_at).is_not(None),
            col(Timer.completed_at).is_(None),
            col(Timer.cancelled_at).is_(None),
        )
        .limit(1)
    )
    return rows.first() is not None

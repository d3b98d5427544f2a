"""Durable timers on top of APScheduler.

A timer is a row in `timer` (bot.storage); APScheduler holds only a copy that `start` rebuilds from
the rows, so a restart neither loses nor repeats what was due. Each kind of timer (an escalation
step, a reminder, a round's end) registers one handler.

Firing claims the row for this process in a short transaction, runs the handler outside any
transaction (handlers send messages; a database lock must not be held across the network), and
marks the row completed. A failing handler gives the claim back and is retried after a pause. A
process killed mid-handler leaves a claim that the next start takes over: handlers must therefore
be idempotent, which they are by sending with stable transaction IDs and checking their rows.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage import core
from bot.storage.db import Database, after_commit
from bot.storage.models import Timer
from bot.tasks import TaskSupervisor
from bot.timeutil import utcnow

log = logging.getLogger(__name__)

TimerHandler = Callable[[Timer], Awaitable[None]]
RETRY_AFTER = timedelta(seconds=30)


class Scheduler:
    def __init__(self, db: Database, *, retry_after: timedelta = RETRY_AFTER) -> None:
        self._db = db
        self._retry_after = retry_after
        self._handlers: dict[str, TimerHandler] = {}
        self.claimant = secrets.token_hex(8)  # this process's claims, told apart from a dead one's
        # Handlers run as our own tasks, not inside APScheduler's executor, which would cancel
        # them on shutdown; this way a stop lets a step that is sending pages finish.
        self._running = TaskSupervisor(concurrency=128)
        # misfire_grace_time=None: a job found late (after a stall or a restart) still runs,
        # exactly once (coalesce); the handler decides whether "late" changes what it does.
        self.aps = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )

    def on(self, kind: str, handler: TimerHandler) -> None:
        if kind in self._handlers:
            raise ValueError(f"timer kind `{kind}` has a handler already")
        self._handlers[kind] = handler

    async def start(self) -> int:
        """Start APScheduler and re-arm every timer that has not fired; returns how many."""
        self.aps.start()
        async with self._db.session() as session:
            timers = await core.armed_timers(session)
        for timer in timers:
            self._add_job(timer.id, timer.due_at)  # type: ignore[arg-type]
        log.info("scheduler started, %d timers re-armed", len(timers))
        return len(timers)

    async def stop(self, seconds: float = 5.0) -> None:
        """No new firings; handlers already running get `seconds` to finish (then cancelled,
        and their timers run again at the next start)."""
        if self.aps.running:
            self.aps.shutdown(wait=False)
        await self._running.drain(seconds)

    def kill(self) -> None:
        """Stop at once, as a crash would: running handlers are cancelled mid-way."""
        if self.aps.running:
            self.aps.shutdown(wait=False)
        self._running.cancel_all()

    async def arm(
        self,
        session: AsyncSession,
        kind: str,
        key: str,
        due_at: datetime,
        payload: dict[str, Any] | None = None,
    ) -> Timer:
        """Arm in the caller's transaction; the job is scheduled only once that commits."""
        if kind not in self._handlers:
            raise ValueError(f"no handler for timer kind `{kind}`")
        timer = await core.upsert_timer(session, kind, key, due_at, payload or {})
        timer_id, due = timer.id, timer.due_at
        after_commit(session, lambda: self._add_job(timer_id, due))  # type: ignore[arg-type]
        return timer

    async def arm_new(
        self, session: AsyncSession, kind: str, timers: list[tuple[str, datetime, dict[str, Any]]]
    ) -> None:
        """Arm many timers that cannot exist yet (keys of a row created in this transaction):
        one insert for all, no look-up each — a 300-person page arms 300 steps at once."""
        if kind not in self._handlers:
            raise ValueError(f"no handler for timer kind `{kind}`")
        armed = await core.insert_timers(session, kind, timers)
        after_commit(session, lambda: [self._add_job(i, due) for i, due in armed])  # type: ignore[func-returns-value]

    async def cancel(
        self, session: AsyncSession, key_prefix: str, *, kind: str | None = None
    ) -> int:
        """Cancel what is armed under key_prefix (timer keys of an activation start `a<id>:`)."""
        ids = await core.cancel_timers(session, key_prefix, kind)
        after_commit(session, lambda: [self._remove_job(i) for i in ids])
        return len(ids)

    def _add_job(self, timer_id: int, due_at: datetime) -> None:
        if not self.aps.running:
            return  # start() re-arms from the table
        self.aps.add_job(
            self._launch,
            DateTrigger(run_date=due_at),
            args=[timer_id],
            id=f"timer:{timer_id}",
            replace_existing=True,
        )

    def _remove_job(self, timer_id: int) -> None:
        job = self.aps.get_job(f"timer:{timer_id}")
        if job is not None:
            job.remove()

    async def _launch(self, timer_id: int) -> None:
        self._running.spawn(f"timer:{timer_id}", self.fire(timer_id))

    async def fire(self, timer_id: int) -> None:
        """Claim and run one timer. Public so that tests and start-up can fire on demand."""
        async with self._db.session() as session:
            timer = await core.claim_timer(session, timer_id, self.claimant)
        if timer is None:
            return  # completed, cancelled or running in this process already
        lateness = (utcnow() - timer.due_at).total_seconds()
        log.info("timer %s:%s fired (%.1fs late)", timer.kind, timer.key, lateness)
        try:
            await self._handlers[timer.kind](timer)
        except Exception:
            log.exception(
                "timer %s:%s failed; retrying in %s", timer.kind, timer.key, self._retry_after
            )
            async with self._db.session() as session:
                await core.release_timer(session, timer_id)
            self._add_job(timer_id, utcnow() + self._retry_after)
            return
        async with self._db.session() as session:
            await core.complete_timer(session, timer_id)

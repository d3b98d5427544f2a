"""Durable timers on top of APScheduler.

A timer is a row in `timer` (bot.storage); APScheduler holds only a copy that `start` rebuilds from
the rows, so a restart neither loses nor repeats what was due. Each kind of timer (an escalation
step, a reminder, a round's end) registers one handler. Firing claims the row and runs the handler
in the same transaction: if the handler fails, the claim is rolled back and the timer is retried
after a pause; once it succeeds, the row says so and it never fires again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage import core
from bot.storage.db import Database, after_commit
from bot.storage.models import Timer
from bot.timeutil import utcnow

log = logging.getLogger(__name__)

TimerHandler = Callable[[AsyncSession, Timer], Awaitable[None]]
RETRY_AFTER = timedelta(seconds=30)


class Scheduler:
    def __init__(self, db: Database, *, retry_after: timedelta = RETRY_AFTER) -> None:
        self._db = db
        self._retry_after = retry_after
        self._handlers: dict[str, TimerHandler] = {}
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

    def shutdown(self) -> None:
        if self.aps.running:
            self.aps.shutdown(wait=False)

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
            self.fire,
            DateTrigger(run_date=due_at),
            args=[timer_id],
            id=f"timer:{timer_id}",
            replace_existing=True,
        )

    def _remove_job(self, timer_id: int) -> None:
        job = self.aps.get_job(f"timer:{timer_id}")
        if job is not None:
            job.remove()

    async def fire(self, timer_id: int) -> None:
        """Claim and run one timer. Public so that tests and start-up can fire on demand."""
        try:
            async with self._db.session() as session:
                timer = await core.claim_timer(session, timer_id)
                if timer is None:
                    return  # fired, cancelled or re-armed elsewhere: nothing to do
                lateness = (utcnow() - timer.due_at).total_seconds()
                log.info("timer %s:%s fired (%.1fs late)", timer.kind, timer.key, lateness)
                await self._handlers[timer.kind](session, timer)
        except Exception:
            log.exception("timer %s failed; retrying in %s", timer_id, self._retry_after)
            self._add_job(timer_id, utcnow() + self._retry_after)

"""Durable timers on top of APScheduler.

A timer is a row in `timer` (bot.storage); APScheduler holds only a copy that `start` rebuilds from
the rows, so a restart neither loses nor repeats what was due. Each kind of timer (an escalation
step, a reminder, a round's end) registers one handler.

Firing claims the row for this process in a short transaction, runs the handler outside any
transaction (handlers send messages; a database lock must not be held across the network), and
marks the row completed. A failing handler gives the claim back and is retried after a pause. A
process killed mid-handler leaves a claim that the next start takes over: handlers must therefore
be idempotent, which they are by sending with stable transaction IDs and checking their rows.

A timer never acts on a picture older than its moment: its handler waits until everything sent
before it fell due has been read and handled (`bot.runtime.catchup`), so that after a restart or an
outage the answers sent meanwhile count before any step, reminder or close.

Timers that fall due together are claimed together: the claims of one transaction gather every
timer that fell due while the previous one ran (group commit). A kind registered with
`on_batch` gets such a group in one call, so a page to fifty people escalates as one step, in
a few transactions and one burst of messages, not fifty of each (bench/README.md: step by step,
the steps queued on SQLite's write lock and the last went out seconds late).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.runtime.catchup import CatchUp
from bot.runtime.metrics import Metrics
from bot.runtime.tasks import TaskSupervisor
from bot.storage import core
from bot.storage.db import Database, after_commit
from bot.storage.models import Timer
from bot.timeutil import utcnow

log = logging.getLogger(__name__)

TimerHandler = Callable[[Timer], Awaitable[None]]
BatchHandler = Callable[[list[Timer]], Awaitable[list[Timer] | None]]
RETRY_AFTER = timedelta(seconds=30)


class Scheduler:
    def __init__(
        self,
        db: Database,
        *,
        retry_after: timedelta = RETRY_AFTER,
        catch_up: CatchUp | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """`metrics`: where each timer's lateness is observed (none: not observed)."""
        self._db = db
        self._retry_after = retry_after
        self._catch_up = catch_up
        self._metrics = metrics
        self._handlers: dict[str, tuple[BatchHandler, bool]] = {}  # kind -> (handler, batched)
        self._due: list[int] = []  # fell due, not claimed yet
        self._claiming = False
        self._claim_runs = 0
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
        """Handle timers of `kind` one by one: each is completed, or retried, on its own."""

        async def one(timers: list[Timer]) -> None:
            await handler(timers[0])

        self._register(kind, one, batched=False)

    def on_batch(self, kind: str, handler: BatchHandler) -> None:
        """Handle the timers of `kind` that fell due together in one call. It returns those that
        failed (retried after a pause, the rest completed); if it raises, the whole group is
        retried. Each timer's part must be idempotent, as every handler is."""
        self._register(kind, handler, batched=True)

    def _register(self, kind: str, handler: BatchHandler, *, batched: bool) -> None:
        if kind in self._handlers:
            raise ValueError(f"timer kind `{kind}` has a handler already")
        self._handlers[kind] = (handler, batched)

    async def start(self) -> int:
        """Start APScheduler and re-arm every timer that has not fired; returns how many."""
        self.aps.start()
        async with self._db.session() as session:
            timers = await core.armed_timers(session)
        for timer in timers:
            self._add_job(timer.id, timer.due_at)
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
    ) -> None:
        """Arm in the caller's transaction; the job is scheduled only once that commits.
        Arming a (kind, key) again moves it, unless it has fired."""
        await self.arm_many(session, kind, [(key, due_at, payload or {})])

    async def arm_many(
        self, session: AsyncSession, kind: str, timers: list[tuple[str, datetime, dict[str, Any]]]
    ) -> None:
        """`arm` for many at once, with one look-up, one insert and one update."""
        self._check_kind(kind)
        armed = await core.upsert_timers(session, kind, timers)
        after_commit(session, lambda: self._add_jobs(armed))

    async def arm_new(
        self, session: AsyncSession, kind: str, timers: list[tuple[str, datetime, dict[str, Any]]]
    ) -> None:
        """Arm many timers that cannot exist yet (keys of a row created in this transaction):
        one insert for all, no look-up each — a 300-person page arms 300 steps at once."""
        self._check_kind(kind)
        armed = await core.insert_timers(session, kind, timers)
        after_commit(session, lambda: self._add_jobs(armed))

    async def move(self, session: AsyncSession, kind: str, moves: dict[str, datetime]) -> None:
        """Move timers of `kind` (by key) that have neither fired nor been cancelled, in the
        caller's transaction: a deadline that starts later than planned (a page sent late)."""
        moved = await core.move_timers(session, kind, moves)
        after_commit(session, lambda: self._add_jobs(moved))

    async def hurry(self, session: AsyncSession, kind: str, key_prefix: str) -> int:
        """Bring every armed timer of `kind` under `key_prefix` forward to now (a step that can
        no longer wait); returns how many."""
        now = utcnow()
        keys = await core.armed_keys(session, kind, key_prefix)
        await self.move(session, kind, {key: now for key in keys})
        return len(keys)

    def _check_kind(self, kind: str) -> None:
        """Arming a kind nobody handles is a programming error: it would never fire."""
        if kind not in self._handlers:
            raise ValueError(f"no handler for timer kind `{kind}`")

    async def cancel(
        self, session: AsyncSession, key_prefix: str | list[str], *, kind: str | None = None
    ) -> int:
        """Cancel what is armed under key_prefix, or under any of several (timer keys of an
        activation start `a<id>:`)."""
        ids = await core.cancel_timers(session, key_prefix, kind)

        def remove_jobs() -> None:
            for timer_id in ids:
                self._remove_job(timer_id)

        after_commit(session, remove_jobs)
        return len(ids)

    def _add_jobs(self, timers: list[tuple[int, datetime]]) -> None:
        for timer_id, due_at in timers:
            self._add_job(timer_id, due_at)

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

    async def fire_now(self, timer_ids: Iterable[int], *, wait: float = 60.0) -> None:
        """Run these timers as if they fell due now (claimed, handled, marked fired), and wait
        up to `wait` seconds for their handlers: tests and tooling that cannot wait for the
        clock."""
        for timer_id in timer_ids:
            await self._launch(timer_id)
        await self._running.drain(wait)

    async def _launch(self, timer_id: int) -> None:
        """APScheduler's job: queue the timer for the next claim."""
        self._due.append(timer_id)
        if not self._claiming:
            self._claiming = True
            self._claim_runs += 1
            self._running.spawn(f"timer-claims:{self._claim_runs}", self._claim_due())

    async def _claim_due(self) -> None:
        """Claim what fell due, one transaction for all; what falls due meanwhile is claimed
        next. Started as a task, it runs after the other jobs of APScheduler's pass have queued
        their timers, so timers due at the same moment share the first claim."""
        try:
            while self._due:
                ids, self._due = self._due, []
                try:
                    async with self._db.session() as session:
                        timers = await core.claim_timers(session, ids, self.claimant)
                except Exception:
                    log.exception(
                        "could not claim timers %s; retrying in %s", ids, self._retry_after
                    )
                    self._retry(ids)
                    continue
                self._dispatch(timers)  # those not won: completed, cancelled or running here
        finally:
            self._claiming = False

    def _dispatch(self, timers: list[Timer]) -> None:
        groups: dict[str, list[Timer]] = {}
        for timer in timers:
            groups.setdefault(timer.kind, []).append(timer)
        for kind, group in groups.items():
            if kind not in self._handlers:
                log.error(
                    "no handler for timer kind `%s`; %d timers left claimed", kind, len(group)
                )
                continue
            handler, batched = self._handlers[kind]
            for part in [group] if batched else [[timer] for timer in group]:
                self._running.spawn(f"timer:{part[0].id}", self._run(handler, part))

    async def _run(self, handler: BatchHandler, timers: list[Timer]) -> None:
        """Run a handler outside any transaction, once everything sent before the timers fell
        due has been read (`CatchUp`); then complete its timers, or give them back for a retry
        after a pause."""
        if self._catch_up is not None:
            await self._catch_up.wait_past(max(timer.due_at for timer in timers))
        now = utcnow()
        for timer in timers:
            lateness = (now - timer.due_at).total_seconds()
            log.info("timer %s:%s fired (%.1fs late)", timer.kind, timer.key, lateness)
            if self._metrics is not None:  # early (a test firing it now) counts as on time
                self._metrics.lateness.labels(timer.kind).observe(max(lateness, 0.0))
        try:
            failed = {timer.id for timer in await handler(timers) or []}
        except Exception:
            log.exception(
                "timer %s:%s failed (with %d others); retrying in %s",
                timers[0].kind,
                timers[0].key,
                len(timers) - 1,
                self._retry_after,
            )
            failed = {timer.id for timer in timers}
        done = [timer.id for timer in timers if timer.id not in failed]
        async with self._db.session() as session:
            await core.complete_timers(session, done)
            await core.release_timers(session, list(failed))
        self._retry(list(failed))

    def _retry(self, timer_ids: list[int]) -> None:
        at = utcnow() + self._retry_after  # one moment for all: retried together, as a group
        for timer_id in timer_ids:
            self._add_job(timer_id, at)

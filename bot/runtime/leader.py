"""Active/standby: several `icc-bot run` on one PostgreSQL, exactly one of them active.

The active instance holds a PostgreSQL session-level advisory lock on a connection of its own.
A standby waits for the lock before doing anything else (no migration, no login, no sync); when
the active one dies, PostgreSQL drops its session and the lock with it, and a standby takes over
within a poll interval, carrying on from the shared database: pending escalations, reminders and
rounds are rows, so nothing is lost, and nothing is sent twice (timer claims, transaction IDs).

If the lock's connection fails while active (a PostgreSQL restart), the instance keeps running and
takes the lock again as soon as the database is back; only if another instance got there first
does it stop (exit code 7), to come back through its supervisor as a standby.
SQLite has a single writer by nature; there the lock is not used.
"""

from __future__ import annotations

import asyncio
import logging
import zlib

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.runtime.metrics import Metrics
from bot.storage.db import Database

log = logging.getLogger(__name__)


class LostLeadership(RuntimeError):
    """The connection holding the advisory lock failed; another instance may take over."""


class Leadership:
    def __init__(
        self,
        db: Database,
        name: str,
        *,
        poll_seconds: float = 2.0,
        metrics: Metrics | None = None,
    ) -> None:
        self._db = db
        # One lock per bot account: two bots of different accounts may share a database.
        self._key = zlib.crc32(f"icc-bot:{name}".encode())
        self._poll = poll_seconds
        self._conn: AsyncConnection | None = None
        self._metrics = metrics
        self.active = False  # this instance is the active one (readiness, `icc_leader`)

    def _set_active(self, active: bool) -> None:
        self.active = active
        if self._metrics is not None:
            self._metrics.leader.set(1 if active else 0)

    @property
    def applies(self) -> bool:
        return self._db.dialect == "postgresql"

    async def _try_lock(self) -> AsyncConnection | None:
        return await self._db.hold_session_lock(self._key)

    async def acquire(self) -> None:
        """Return once this instance is the active one (at once on SQLite)."""
        if not self.applies:
            self._set_active(True)
            return
        announced = False
        while True:
            try:
                self._conn = await self._try_lock()
            except Exception as exc:  # the database is down: wait for it like for the lock
                log.warning("cannot reach the database for the leader lock (%s); retrying", exc)
                await asyncio.sleep(self._poll)
                continue
            if self._conn is not None:
                self._set_active(True)
                log.info("active: holding the leader lock")
                return
            if not announced:
                log.info("standby: another instance is active; waiting for the leader lock")
                announced = True
            await asyncio.sleep(self._poll)

    async def watch(self) -> None:
        """Keep the lock; raise LostLeadership if another instance took it. Runs until cancelled."""
        if self._conn is None:
            await asyncio.Event().wait()
        while True:
            await asyncio.sleep(self._poll)
            try:
                assert self._conn is not None  # held since acquire(); released only on exit
                await self._db.check_connection(self._conn)
            except Exception as exc:
                log.warning("the leader lock's connection failed (%s); taking the lock again", exc)
                await self.release()
                await self._retake()

    async def _retake(self) -> None:
        while True:
            try:
                self._conn = await self._try_lock()
            except Exception:
                await asyncio.sleep(self._poll)  # the database is still away
                continue
            if self._conn is None:
                raise LostLeadership("another instance became active while the database was away")
            self._set_active(True)
            log.info("active: holding the leader lock again")
            return

    async def release(self) -> None:
        self._set_active(False)
        if self._conn is not None:
            try:
                await self._db.drop_connection(self._conn)
            except Exception:
                log.warning("closing the leader lock connection failed", exc_info=True)
            self._conn = None

"""Liveness and readiness, as an orchestrator asks for them (`bot.web.ops` serves them).

Live: the process runs and answers — a standby included, so that nobody restarts it for waiting.
Ready: this instance is the active one and does its job: it holds the leader lock and has
started (first sync handled), a sync completed within the last minute, and the database answers.
A standby is live and not ready; a load balancer or a person looking for the active instance
asks `/readyz`, a supervisor deciding whether to restart asks `/livez`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.timeutil import utcnow

# A sync long-polls for 30 s at most: a minute without one completing means it is stuck.
SYNC_FRESH = timedelta(minutes=1)
DATABASE_TIMEOUT = 5.0  # seconds the database has to answer a probe


@dataclass(frozen=True)
class Readiness:
    """The checks, each passed or not, and the first failing one in words (None when ready)."""

    checks: dict[str, bool]
    reason: str | None

    @property
    def ready(self) -> bool:
        return self.reason is None

    def as_json(self) -> dict[str, object]:
        shown: dict[str, object] = {"ready": self.ready, "checks": self.checks}
        if self.reason is not None:
            shown["reason"] = self.reason
        return shown


async def readiness(
    *,
    leader: bool,
    started: bool,
    last_sync: datetime | None,
    ping: Callable[[], Awaitable[None]],
    now: datetime | None = None,
) -> Readiness:
    """Whether this instance is ready: `leader` (holds the lock, or needs none), `started`
    (commands flow), `last_sync` (when a sync last completed), `ping` (the database)."""
    now = now or utcnow()
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT):  # (wait_for may swallow a cancellation)
            await ping()
        database = True
    except Exception:  # any failure to answer is an answer: not ready
        database = False
    synced = last_sync is not None and now - last_sync <= SYNC_FRESH
    checks = {"active": leader and started, "sync": synced, "database": database}
    reason = None
    if not leader:
        reason = "standby: waiting for the leader lock"
    elif not started:
        reason = "starting: the first sync is not handled yet"
    elif not synced:
        ago = f"{(now - last_sync).total_seconds():.0f}s ago" if last_sync else "never"
        reason = f"no sync within {SYNC_FRESH.total_seconds():.0f}s (last: {ago})"
    if not database:
        reason = reason or "the database does not answer"
    return Readiness(checks, reason)

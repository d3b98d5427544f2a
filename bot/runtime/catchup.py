"""What the bot has read, so that nothing due acts on a picture older than its own moment.

A timer that falls due while the bot was down, or while the homeserver was away, fires the moment
the bot can act again, and the answers sent meanwhile (an ack before its deadline, a round update
before the run's end) are still unread at that moment. Acting first would escalate someone who
answered in time, or close a round and then refuse the updates sent inside it. So a timer due at
`T` waits here until

- a sync that began after `T` has been recorded (everything the homeserver held at `T` is read),
- every command sent at or before `T` and read since has been handled (its answer recorded), and
- every encrypted event sent at or before `T` has been decrypted and handled, or given up on
  after its bounded wait for the room key.

When a timer falls due while the loop sits in a long-poll begun before it, `probe` (a sync of its
own, only looked at) tells in one round trip whether anything arrived that the loop has not handed
over: nothing, and the timer acts at once; something, and it waits for the loop to hand it over.

The wait is bounded (`limit`): a homeserver away for longer than that no longer holds back what
can be done without it, and a command that hangs cannot hold every timer back for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

log = logging.getLogger(__name__)

CATCH_UP_LIMIT = timedelta(minutes=10)
PROBE_EVERY = 0.25  # s: at most four probes a second, however many timers wait
Probe = Callable[[], Awaitable[datetime | None]]


class CatchUp:
    def __init__(
        self, limit: timedelta = CATCH_UP_LIMIT, counts: Callable[[str], bool] | None = None
    ) -> None:
        self._limit = limit
        self._counts = counts or (lambda _sender: True)
        self._synced_through: datetime | None = None
        self._unhandled: dict[str, datetime] = {}  # event ID → when it was sent: read, not done
        self._changed = asyncio.Event()
        self._probe: Probe | None = None
        self._probing: asyncio.Task[datetime | None] | None = None
        self._next_probe = 0.0

    def probe_with(self, probe: Probe) -> None:
        self._probe = probe

    def synced(self, through: datetime) -> None:
        """A sync that began at `through` is recorded and its commands are handed over."""
        if self._synced_through is None or through > self._synced_through:
            self._synced_through = through
            self._wake()

    def reading(self, event_id: str, sent_at: datetime, sender: str) -> None:
        """An event sent at `sent_at` is being handled (or waits for its room key). Only the
        directory's people hold timers back: a stranger's events count for nothing, and must
        not delay an escalation (an encrypted one would for its whole wait for a key)."""
        if self._counts(sender):
            self._unhandled[event_id] = sent_at

    def handled(self, event_id: str) -> None:
        if self._unhandled.pop(event_id, None) is not None:
            self._wake()

    def caught_up(self, moment: datetime) -> bool:
        if self._synced_through is None or self._synced_through < moment:
            return False
        return all(sent_at > moment for sent_at in self._unhandled.values())

    async def wait_past(self, moment: datetime) -> bool:
        """Until everything sent by `moment` is read and handled; False if the limit came
        first (logged: what acts next may act on an older picture)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._limit.total_seconds()
        while not self.caught_up(moment):
            if self._behind(moment):
                through = await self._probed()
                if through is not None and through >= moment:
                    self.synced(through)
                    continue
            left = give_up - loop.time()
            if left <= 0:
                log.warning(
                    "acting on what was due at %s without having read everything sent by then "
                    "(read up to %s, %d events unhandled)",
                    moment.isoformat(),
                    self._synced_through.isoformat() if self._synced_through else "nothing",
                    sum(sent_at <= moment for sent_at in self._unhandled.values()),
                )
                return False
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, PROBE_EVERY)):  # (not wait_for: see tasks)
                    await changed.wait()
        return True

    def _behind(self, moment: datetime) -> bool:
        return self._synced_through is None or self._synced_through < moment

    async def _probed(self) -> datetime | None:
        """The latest probe's answer: one probe at a time, shared by every waiter, at most one
        every PROBE_EVERY (None meanwhile)."""
        if self._probe is None:
            return None
        if self._probing is None:
            loop = asyncio.get_running_loop()
            if loop.time() < self._next_probe:
                return None
            self._next_probe = loop.time() + PROBE_EVERY
            self._probing = asyncio.ensure_future(self._probe())
        probing = self._probing
        try:
            return await asyncio.shield(probing)
        except Exception:
            log.exception("probing the homeserver failed")
            return None
        finally:
            if self._probing is probing and probing.done():
                self._probing = None

    def _wake(self) -> None:
        """Wake every waiter once; they look again and wait on a fresh event."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

"""Escalation: what happens when nobody in a unit answers a page in time — across restarts.

A page (`PG-n`) is one text sent to many people, each by direct message, each with an ack
deadline. Per person paged directly (a *unit*: them and, later, their backup):

1. at the deadline without an answer: page them again and page their backup (same `PG-n`,
   marked as standing in for them), with a fresh deadline;
2. at that deadline too: tell the activation room who could not be reached.

Steps are durable timers (`bot.paging.steps`), so that a restart neither loses nor repeats one
and closing the activation cancels them all. Sends carry stable transaction IDs, so a step re-run
after a crash never pages anyone twice. Any answer in a unit ends that unit's pending steps.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.paging.steps import ESCALATE, UNREACHABLE, arm
from bot.storage import page_store as store
from bot.storage.models import ActivationRow, PageRow, PageTargetRow, Timer
from bot.timeutil import utcnow

if TYPE_CHECKING:
    from bot.activations.activation import Activations
    from bot.directory.keeper import DirectoryKeeper
    from bot.paging.board import Board
    from bot.paging.send import Pager
    from bot.reach.servers import Servers
    from bot.render import Renderer
    from bot.rota.duty import Duty
    from bot.runtime.metrics import Metrics
    from bot.runtime.scheduler import Scheduler
    from bot.storage.db import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Escalation:
    db: Database
    keeper: DirectoryKeeper
    renderer: Renderer
    scheduler: Scheduler
    metrics: Metrics
    activations: Activations
    board: Board
    pager: Pager
    duty: Duty
    servers: Servers

    async def on_steps(self, timers: list[Timer]) -> list[Timer]:
        """Steps that fell due together, page by page: a page to a group escalates as one — one
        write and one burst of messages — and each unit acts only if nobody in it has answered
        yet. Measured in bench/: fifty steps run one by one queued on the database, and the
        last pages went out seconds after the deadline. Returns the steps of pages that failed,
        for the scheduler to retry; the other pages' steps are done."""
        by_page: dict[int, list[Timer]] = {}
        for timer in timers:
            by_page.setdefault(timer.payload["page"], []).append(timer)
        outcomes = await asyncio.gather(
            *(self._page_steps(page_id, steps) for page_id, steps in by_page.items()),
            return_exceptions=True,
        )
        failed: list[Timer] = []
        for (page_id, steps), outcome in zip(by_page.items(), outcomes, strict=True):
            if isinstance(outcome, Exception):
                log.error("escalation of page %d failed; retrying it", page_id, exc_info=outcome)
                failed += steps
            elif isinstance(outcome, BaseException):
                raise outcome  # cancelled: the claims stay, the next start takes them over
        return failed

    async def _page_steps(self, page_id: int, timers: list[Timer]) -> None:
        async with self.db.session() as session:
            page, activation = await store.page_in(session, page_id)
        if page is None or activation is None or activation.status != "open":
            return
        due: dict[str, list[str]] = {ESCALATE: [], UNREACHABLE: []}
        for timer in timers:
            due[timer.payload["step"]].append(timer.payload["handle"])
        # A unit's unreachable step is armed by its escalation, so the two never share a unit.
        acted = await asyncio.gather(
            self._escalate(page, activation, due[ESCALATE]),
            self._unreachable(page, activation, due[UNREACHABLE]),
        )
        if any(acted):
            self.board.refresh(page, activation)

    async def _waiting_units(
        self, session: AsyncSession, page_id: int, handles: list[str]
    ) -> list[list[PageTargetRow]]:
        """The units of `handles` (the person's row, then their backups') in which nobody has
        answered, read in the transaction that acts on them: an answer recorded a moment ago
        (while the other steps of the group were sending) stops the step."""
        rows = await store.targets(session, page_id)
        units = [
            [r for r in rows if r.handle == handle and not r.covers]
            + [r for r in rows if r.covers == handle]
            for handle in handles
        ]
        return [unit for unit in units if unit and not any(r.acked_at for r in unit)]

    async def _escalate(self, page: PageRow, activation: ActivationRow, handles: list[str]) -> bool:
        """Page each waiting unit's person again, then page their backup (the first time: their
        row is added now), recorded in one transaction and sent in that order; then arm each
        unit's last step, a window after what was sent actually left."""
        if not handles:
            return False
        window = timedelta(seconds=page.ack_window_s)
        now = utcnow()
        async with self.db.session() as session:
            units = await self._waiting_units(session, page.id, handles)
            steps = [
                (unit[0], unit[1:] or self._new_backup(page, unit[0], now + window))
                for unit in units
            ]
            session.add_all(
                backup for _row, backups in steps for backup in backups if backup.id is None
            )
            await session.flush()
            # Recorded once: a step re-run after a crash finds it escalated already, and only
            # sends again what may not have left (with the same transaction IDs).
            fresh = [(row, backups) for row, backups in steps if row.escalated_at is None]
            await store.mark_many(session, {row.id: {"escalated_at": now} for row, _ in fresh})
            await self.activations.add_entries(
                session,
                activation,
                self.activations.bot_id,
                [self._escalation_entry(page, row, backups) for row, backups in fresh],
            )
        self.metrics.escalations.labels(ESCALATE).inc(len(steps))
        await self.servers.silent_at_deadline(page, activation, [row for row, _ in steps])
        # The person hears again before their backup is paged: each is sent once the steps are
        # recorded, and a re-run after a crash sends only what was not recorded as sent.
        repeat = [
            row
            for row, _ in steps
            if row.declined_at is None and row.event_id is not None and row.repage_event_id is None
        ]
        backups = [b for _, unit_backups in steps for b in unit_backups if b.event_id is None]
        await self.pager.send(page, activation, [], repeated=repeat)
        await self.pager.send(page, activation, backups)
        await self._arm_unreachable(page, activation, [row for row, _ in steps])
        return bool(steps)

    async def _arm_unreachable(
        self, page: PageRow, activation: ActivationRow, people: list[PageTargetRow]
    ) -> None:
        """Each unit's last step: a window after its repeat and its backup's page went out, as
        recorded (so a re-run after a crash arms it where the first run did), or a window from
        now if neither could be sent. Armed only now, after the sends: however late they left
        (an outage), the report can never come before them, and the backup has their full time."""
        window = timedelta(seconds=page.ack_window_s)
        async with self.db.session() as session:
            rows = await store.targets(session, page.id)
            steps = []
            for person in people:
                sent = [row.repaged_at for row in rows if row.id == person.id] + [
                    row.delivered_at for row in rows if row.covers == person.handle
                ]
                last = max((moment for moment in sent if moment is not None), default=utcnow())
                steps.append((person.handle, UNREACHABLE, last + window))
            await arm(self.scheduler, session, activation, page, steps)

    def _new_backup(
        self, page: PageRow, row: PageTargetRow, deadline: datetime
    ) -> list[PageTargetRow]:
        """The row of the person's backup (none if they have none): for a duty officer, whoever
        is on duty now, else the backup the directory names, else the next on the rota (decided
        now, when the step fires: the shift may have changed since the page went out); for
        anyone else, the backup the directory names."""
        if row.duty_team and row.duty_team in self.keeper.rotas:
            backup = self.duty.backup(row.duty_team, row.handle)
        else:
            contacts = self.keeper.current.contacts
            contact = contacts.get(row.handle)
            backup = contacts.get(contact.backup) if contact and contact.backup else None
        if backup is None or backup.handle == row.handle:
            return []
        values = self.pager.target(page, backup, deadline, row.handle, duty_team=row.duty_team)
        return [PageTargetRow(**values)]

    @staticmethod
    def _escalation_entry(
        page: PageRow, row: PageTargetRow, backups: list[PageTargetRow]
    ) -> tuple[str, str, dict[str, Any]]:
        standing_in = (
            f"; paged their backup {backups[0].name}" if backups else "; no backup in the directory"
        )
        what = (
            f"{row.name} unable ({row.declined_reason})"
            if row.declined_at
            else f"no answer from {row.name}; paged again"
        )
        return (
            "system.escalation",
            f"{page.ref}: {what}{standing_in}",
            {
                "page": page.id,
                "handle": row.handle,
                "backup": backups[0].handle if backups else None,
            },
        )

    async def _unreachable(
        self, page: PageRow, activation: ActivationRow, handles: list[str]
    ) -> bool:
        """Record each waiting unit as unreachable (once: a re-run after a crash finds it
        recorded) in one transaction; then tell the room, a notice per unit, all at once."""
        if not handles:
            return False
        now = utcnow()
        async with self.db.session() as session:
            units = await self._waiting_units(session, page.id, handles)
            fresh = [unit for unit in units if any(row.unreachable_at is None for row in unit)]
            marks = {
                row.id: {"unreachable_at": now}
                for unit in fresh
                for row in unit
                if row.unreachable_at is None
            }
            await store.mark_many(session, marks)
            await self.activations.add_entries(
                session,
                activation,
                self.activations.bot_id,
                [
                    (
                        "system.unreachable",
                        f"{page.ref}: nobody has taken it: {', '.join(r.name for r in unit)}"
                        if unit[0].declined_at
                        else f"{page.ref}: could not reach {', '.join(r.name for r in unit)}",
                        {"page": page.id, "handles": [r.handle for r in unit]},
                    )
                    for unit in fresh
                ],
            )
        self.metrics.escalations.labels(UNREACHABLE).inc(len(units))
        told = await asyncio.gather(
            *(self._tell_unreachable(page, activation, unit) for unit in units),
            return_exceptions=True,
        )
        for outcome in told:
            if isinstance(outcome, BaseException):
                raise outcome  # every notice had its try; the retry sends the rest again
        return bool(units)

    async def _tell_unreachable(
        self, page: PageRow, activation: ActivationRow, unit: list[PageTargetRow]
    ) -> None:
        await self.board.tell_room(
            page,
            activation,
            self.renderer.render(
                "page_unreachable",
                ref=page.ref,
                person=unit[0].name,
                organisation=unit[0].organisation,
                backups=[r.name for r in unit[1:]],
                unable=unit[0].declined_reason if unit[0].declined_at else None,
                text=page.text,
            ),
            txn_id=f"unreachable-{page.id}-{unit[0].handle}",
        )

"""Paging partners, tracking who acknowledged, and escalating to backups — across restarts.

A page (`PG-n`) is one text sent to many people, each by direct message, each with an ack
deadline. Per person paged directly (a *unit*: them and, later, their backup):

1. at the deadline without an answer: page them again and page their backup (same `PG-n`,
   marked as standing in for them), with a fresh deadline;
2. at that deadline too: tell the activation room who could not be reached.

Steps are durable timers keyed `a<activation>:pg<page>:<handle>:<step>`, so that a restart
neither loses nor repeats one and closing the activation cancels them all. Sends carry stable
transaction IDs (`page-<page>-<row>`), so a step re-run after a crash never pages anyone twice.
The first answer on a row wins; any answer in a unit ends that unit's pending steps at once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.activations.activation import Activations
from bot.chat.render import Message
from bot.directory.model import Contact
from bot.matrix.send import MatrixSendError
from bot.paging.steps import ESCALATE, STEP_TIMER, UNREACHABLE, arm, step_timer, unit_prefix
from bot.reach.direct import DirectMessages
from bot.storage import activation_store
from bot.storage import page_store as store
from bot.storage.models import ActivationRow, PageRow, PageTargetRow, Timer
from bot.timeutil import format_local_utc, load_zone, utcnow

if TYPE_CHECKING:
    from bot.chat.render import Renderer
    from bot.directory.keeper import DirectoryKeeper
    from bot.directory.model import Directory
    from bot.matrix.send import Messenger
    from bot.paging.board import Board
    from bot.runtime.metrics import Metrics
    from bot.runtime.scheduler import Scheduler
    from bot.storage.db import Database

log = logging.getLogger(__name__)

URGENT_WINDOW = timedelta(minutes=5)
# A page that leaves later than this after it was made gets its deadline from when it left.
DEADLINE_SLACK = timedelta(seconds=1)
SEND_RETRIES = (1.0, 2.0, 4.0)  # pause before each retry of a send the homeserver refused


class Paging:
    def __init__(
        self,
        *,
        db: Database,
        keeper: DirectoryKeeper,
        renderer: Renderer,
        messenger: Messenger,
        scheduler: Scheduler,
        board: Board,
        metrics: Metrics,
        activations: Activations,
        direct: DirectMessages,
    ) -> None:
        self.db = db
        self.keeper = keeper
        self.renderer = renderer
        self.messenger = messenger
        self.scheduler = scheduler
        self.board = board
        self.metrics = metrics
        self.activations = activations
        self.direct = direct

    @property
    def directory(self) -> Directory:
        """The directory in force now; a reload swaps it whole."""
        return self.keeper.current

    # -- sending ----------------------------------------------------------------------------------

    async def create(
        self,
        activation: ActivationRow,
        *,
        sender: str,
        text: str,
        people: list[Contact],
        window: timedelta,
        urgent: bool,
        event_id: str,
    ) -> PageRow:
        """Record the page and arm each person's first step; keyed by the command's event."""
        async with self.db.session() as session:
            existing = await store.page_by_event(session, event_id)
            if existing is not None:
                return existing
            now = utcnow()
            page = PageRow(
                activation_id=activation.id,
                sender=sender,
                text=text,
                urgent=urgent,
                ack_window_s=int(window.total_seconds()),
                opened_by_event=event_id,
                created_at=now,
            )
            await self.add_page(session, page, people, window)
            await self.scheduler.arm_new(
                session,
                STEP_TIMER,
                [step_timer(activation, page, p.handle, ESCALATE, now + window) for p in people],
            )
            await self.activations.record(
                session,
                activation,
                "system.page",
                f"{page.ref} sent to {len(people)}: {text}",
                sender,
                data={"page": page.id, "to": [p.handle for p in people], "urgent": urgent},
            )
        return page

    async def add_page(
        self, session: AsyncSession, page: PageRow, people: list[Contact], window: timedelta
    ) -> None:
        """The page and a row per person, due `window` after the page was made: how a page and a
        communication check both begin, in the caller's transaction."""
        session.add(page)
        await session.flush()
        deadline = page.created_at + window
        await store.add_targets(session, [self.target(page, p, deadline) for p in people])

    def target(
        self, page: PageRow, person: Contact, deadline: datetime, covers: str = ""
    ) -> dict[str, Any]:
        """A person's row on a page, as column values (a `PageTargetRow`)."""
        return {
            "page_id": page.id,
            "covers": covers,
            "deadline": deadline,
            **self.direct.snapshot(person, "page"),
        }

    async def deliver(self, page: PageRow, activation: ActivationRow | None, reply_to: str) -> None:
        """Send the page to everyone who has not had it yet, all at once; then post the board.

        The pages go first: nothing the room needs to see may delay them (measured in bench/,
        posting the board before or alongside them made the slowest page slower).
        """
        async with self.db.session() as session:
            rows = [r for r in await store.targets(session, page.id) if r.event_id is None]
        await self._send(page, activation, rows)
        if page.kind != "page" or activation is None:
            return  # a communication check reports once, at its end
        if page.board_event_id:
            await self.board.refresh(page, activation)
        else:
            await self.board.post(page, activation, reply_to)

    async def _send(
        self,
        page: PageRow,
        activation: ActivationRow | None,
        rows: list[PageTargetRow],
        *,
        repeated: list[PageTargetRow] | None = None,
    ) -> None:
        """The page to each of `rows` and its repetition to each of `repeated`, all at once: each
        send retried, the outcomes recorded in one transaction, every failure told to the room —
        never dropped."""
        sends = [(row, False) for row in rows] + [(row, True) for row in repeated or []]
        if not sends:
            return
        answer_by = utcnow() + timedelta(seconds=page.ack_window_s)
        moved = self._start_deadlines(page, rows, answer_by)
        rooms = await self._rooms([row for row, _ in sends])
        messages = self._messages(page, activation, sends, answer_by)
        outcomes = await asyncio.gather(
            *(
                self._send_one(
                    page,
                    row,
                    rooms.get(row.matrix_id),
                    repeat,
                    messages[_wording(row, repeat, answer_by)],
                )
                for row, repeat in sends
            )
        )
        now = utcnow()
        delivered = {
            row.id: (
                {"repage_event_id": event_id, "repaged_at": now}
                if repeat
                else {
                    "event_id": event_id,
                    "delivered_at": now,
                    "send_error": None,
                    "dm_room_id": room_id,
                    "deadline": row.deadline,
                }
            )
            for (row, repeat), (event_id, room_id) in zip(sends, outcomes, strict=True)
            if event_id
        }
        failed = [
            (row, repeat, error)
            for (row, repeat), (event_id, error) in zip(sends, outcomes, strict=True)
            if not event_id
        ]
        self.metrics.pages_sent.inc(len(delivered))
        async with self.db.session() as session:
            await store.mark_many(session, delivered)  # type: ignore[arg-type]
            if activation is not None:
                # A person's first step runs from when their page went out, not from when it
                # was made: nobody loses the time the bot (or the homeserver) was away.
                late = {
                    unit_prefix(activation, page.id, row.handle) + ESCALATE: row.deadline
                    for row in moved
                    if row.id in delivered and not row.covers
                }
                await self.scheduler.move(session, STEP_TIMER, late)
            for row, _repeat, error in failed:
                await store.mark(session, row.id, send_error=error)
                if activation is None:
                    continue
                await self.activations.record(
                    session,
                    activation,
                    "system.page_failed",
                    f"{page.ref} could not be delivered to {row.name}: {error}",
                    self.activations.bot_id,
                    data={"page": page.id, "handle": row.handle},
                )
        for row, repeat, error in failed:
            await self.board.tell_room(
                page,
                activation,
                self.renderer.render("page_failed", ref=page.ref, name=row.name, error=error),
                txn_id=f"failed-{row.id}-{'repeat' if repeat else 'first'}",
            )

    async def _rooms(self, rows: list[PageTargetRow]) -> dict[str, str]:
        """Each person's DM room: where an earlier page to them went, unless they have left it
        since; else the DM store's (one query for all, new rooms made at once)."""
        rooms = {
            row.matrix_id: row.dm_room_id
            for row in rows
            if row.dm_room_id and not self.messenger.has_left(row.dm_room_id, row.matrix_id)
        }
        missing = [row.matrix_id for row in rows if row.matrix_id not in rooms]
        if missing:
            rooms.update(await self.direct.rooms_for(missing))
        return rooms

    @staticmethod
    def _start_deadlines(
        page: PageRow, rows: list[PageTargetRow], answer_by: datetime
    ) -> list[PageTargetRow]:
        """Give the people about to be paged the full window from now: a page handled after a
        restart, or a backup page held back by an outage, must not arrive with half its time
        gone. Returns the rows whose deadline moved (a communication check keeps one end for
        everyone)."""
        if page.kind != "page":
            return []
        moved = [row for row in rows if answer_by - row.deadline > DEADLINE_SLACK]
        for row in moved:
            row.deadline = answer_by
        return moved

    def _messages(
        self,
        page: PageRow,
        activation: ActivationRow | None,
        sends: list[tuple[PageTargetRow, bool]],
        answer_by: datetime,
    ) -> dict[tuple, Message]:
        """Each distinct wording once: 300 people in three languages and one time zone are three
        renderings, not 300 (measured: rendering per person delayed a big page's first send)."""
        messages: dict[tuple, Message] = {}
        for row, repeat in sends:
            key = _wording(row, repeat, answer_by)
            if key not in messages:
                deadline = answer_by if repeat else row.deadline
                messages[key] = self._page_message(page, activation, row, deadline, repeat=repeat)
        return messages

    async def _send_one(
        self,
        page: PageRow,
        row: PageTargetRow,
        room_id: str | None,
        repeat: bool,
        message: Message,
    ) -> tuple[str | None, str]:
        """(event ID, DM room) once sent, or (None, why not) after the retries."""
        txn = f"repage-{row.id}" if repeat else f"page-{page.id}-{row.id}"
        error = "no direct-message room could be created"
        for pause in (0.0, *SEND_RETRIES):
            await asyncio.sleep(pause)
            try:
                room_id = room_id or await self.direct.room_for(row.matrix_id)
                event_id = await self.messenger.ring(
                    room_id, message, mentions=(row.matrix_id,), txn_id=txn
                )
            except MatrixSendError as exc:
                error = str(exc)
                log.warning("%s to %s failed (%s)", page.ref, row.handle, error)
                continue
            return event_id, room_id
        return None, error

    def _page_message(
        self,
        page: PageRow,
        activation: ActivationRow | None,
        row: PageTargetRow,
        deadline: datetime,
        *,
        repeat: bool,
    ) -> Message:
        zone = load_zone(row.timezone)
        sender = self.directory.contact_for(page.sender)
        message = self.renderer.render(
            "commscheck" if page.kind == "check" else "page",
            lang=row.language,
            ref=page.ref,
            activation=activation,
            text=page.text,
            sender=sender.name if sender else page.sender,
            sender_org=self.directory.organisations[sender.organisation].name if sender else "",
            deadline=format_local_utc(deadline, zone),
            urgent=page.urgent,
            repeat=repeat,
            covers=row.covers and self._name(row.covers),
        )
        return self.activations.frame(message, activation)

    def _name(self, handle: str) -> str:
        contact = self.directory.contacts.get(handle)
        return contact.name if contact else handle

    # -- escalation -------------------------------------------------------------------------------

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
            page = await store.page(session, page_id)
            activation = (
                await activation_store.by_id(session, page.activation_id)
                if page and page.activation_id
                else None
            )
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
            await self.board.refresh(page, activation)

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
            await self.activations.record_many(
                session,
                activation,
                self.activations.bot_id,
                [self._escalation_entry(page, row, backups) for row, backups in fresh],
            )
        self.metrics.escalations.labels(ESCALATE).inc(len(steps))
        # The person hears again before their backup is paged: each is sent once the steps are
        # recorded, and a re-run after a crash sends only what was not recorded as sent.
        repeat = [
            row
            for row, _ in steps
            if row.declined_at is None and row.event_id is not None and row.repage_event_id is None
        ]
        backups = [b for _, unit_backups in steps for b in unit_backups if b.event_id is None]
        await self._send(page, activation, [], repeated=repeat)
        await self._send(page, activation, backups)
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
        """The row of the person's backup in the directory (none if they have no backup)."""
        contact = self.directory.contacts.get(row.handle)
        backup = self.directory.contacts.get(contact.backup) if contact and contact.backup else None
        return [PageTargetRow(**self.target(page, backup, deadline, row.handle))] if backup else []

    @staticmethod
    def _escalation_entry(
        page: PageRow, row: PageTargetRow, backups: list[PageTargetRow]
    ) -> tuple[str, str, dict[str, Any]]:
        standing_in = (
            f"; paged their backup {backups[0].name}" if backups else "; no backup in the directory"
        )
        return (
            "system.escalation",
            f"{page.ref}: no answer from {row.name}; paged again{standing_in}",
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
            await store.mark_many(session, marks)  # type: ignore[arg-type]
            await self.activations.record_many(
                session,
                activation,
                self.activations.bot_id,
                [
                    (
                        "system.unreachable",
                        f"{page.ref}: could not reach {', '.join(r.name for r in unit)}",
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
                text=page.text,
            ),
            txn_id=f"unreachable-{page.id}-{unit[0].handle}",
        )


def _wording(row: PageTargetRow, repeat: bool, answer_by: datetime) -> tuple:
    """What a page's text depends on besides the page: the person's language and time zone, the
    deadline shown (a repeat's: a window from now), whether it is a repeat, and whom a backup
    stands in for."""
    return (row.language, row.timezone, answer_by if repeat else row.deadline, repeat, row.covers)

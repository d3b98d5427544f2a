"""Sending pages: a page (`PG-n`) made, a row written and a first escalation step armed per
person, then the page delivered to each by direct message, all at once, and its board posted.

A person's deadline runs from when their page went out (a check's is the same for everyone).
Each send is retried; a send that still fails is recorded and told to the room, never dropped.
Sends carry stable transaction IDs (`page-<page>-<row>`, `repage-<row>`), so a step re-run after
a crash never pages anyone twice. A communication check (`bot.paging.commchecks`) is made and
sent by the same code.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.activations.activation import ActivationCapability
from bot.directory.model import Contact
from bot.matrix.send import MatrixSendError, RoomNotPrivate
from bot.paging.steps import ESCALATE, step_timer, unit_prefix
from bot.reach.direct import DirectMessages
from bot.reach.servers import CANNOT_CONNECT
from bot.render import Message
from bot.runtime.metrics import MATRIX, NOT_PRIVATE, REFUSED, UNREACHABLE
from bot.runtime.tasks import first_ahead
from bot.storage import page_store as store
from bot.storage.models import ActivationRow, PageRow, PageTargetRow, TimerKind
from bot.timeutil import format_local_utc, load_zone, utcnow

if TYPE_CHECKING:
    from bot.paging.board import Board
    from bot.reach.fallback import Fallback
    from bot.reach.servers import Servers
    from bot.runtime.metrics import Metrics

log = logging.getLogger(__name__)

URGENT_WINDOW = timedelta(minutes=5)
# A page that leaves later than this after it was made gets its deadline from when it left.
DEADLINE_SLACK = timedelta(seconds=1)
SEND_RETRIES = (1.0, 2.0, 4.0)  # pause before each retry of a send the homeserver refused
# A page to this many or more sends its first message ahead of the others (`first_ahead`), for
# at most FIRST_AHEAD_MOST: handed a thousand at once, the homeserver created even the first
# one seconds late. Below it the homeserver takes them all within a fraction of a second, and
# waiting for one would only delay the rest (bench/, fan-out).
FIRST_AHEAD_FROM = 50
FIRST_AHEAD_MOST = 0.25


@dataclass(frozen=True, kw_only=True)
class Pager(ActivationCapability):
    metrics: Metrics
    board: Board
    direct: DirectMessages
    fallback: Fallback
    servers: Servers

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
        duty: Mapping[str, str] | None = None,
        texts: Mapping[str, str] | None = None,
    ) -> PageRow:
        """Record the page and arm each person's first step; keyed by the command's event.
        `duty`: the team each person was reached as duty officer of (`duty:<team>`); `texts`:
        the page in other languages (a playbook's), by language, each person reading theirs."""
        async with self.db.session() as session:
            page, new = await self.add_page(
                session,
                activation,
                people,
                window,
                duty=duty,
                sender=sender,
                text=text,
                texts=dict(texts) if texts else None,
                urgent=urgent,
                event_id=event_id,
            )
            if not new:
                return page
            due = page.created_at + window
            await self.scheduler.arm_new(
                session,
                TimerKind.PAGE_STEP,
                [step_timer(activation, page, p.handle, ESCALATE, due) for p in people],
            )
            await self.activations.add_entry(
                session,
                activation,
                "system.page",
                f"{page.ref} sent to {len(people)}: {text}",
                sender,
                data={"page": page.id, "to": [p.handle for p in people], "urgent": urgent},
            )
        return page

    async def add_page(
        self,
        session: AsyncSession,
        activation: ActivationRow | None,
        people: list[Contact],
        window: timedelta,
        *,
        duty: Mapping[str, str] | None = None,
        **columns: Any,
    ) -> tuple[PageRow, bool]:
        """The page opened by `columns["event_id"]` and whether it is new: made now, with a row per
        person due `window` after it, or found (the command ran before). How a page and a
        communication check both begin, in the caller's transaction."""
        event_id = columns.pop("event_id")
        existing = await store.page_by_event(session, event_id)
        if existing is not None:
            return existing, False
        page = PageRow(
            activation_id=activation.id if activation else None,
            ack_window_s=int(window.total_seconds()),
            opened_by_event=event_id,
            created_at=utcnow(),
            **columns,
        )
        session.add(page)
        await session.flush()
        deadline = page.created_at + window
        teams = duty or {}
        rows = [self.target(page, p, deadline, duty_team=teams.get(p.handle)) for p in people]
        await store.add_targets(session, rows)
        return page, True

    def target(
        self,
        page: PageRow,
        person: Contact,
        deadline: datetime,
        covers: str = "",
        duty_team: str | None = None,
    ) -> dict[str, Any]:
        """A person's row on a page, as column values (a `PageTargetRow`); `duty_team` when they
        were reached as that team's duty officer (`duty:<team>`)."""
        return {
            "page_id": page.id,
            "covers": covers,
            "duty_team": duty_team,
            "deadline": deadline,
            **self.direct.snapshot(person, "page"),
        }

    async def deliver(
        self, page: PageRow, activation: ActivationRow | None, reply_to: str | None
    ) -> None:
        """Send the page to everyone who has not had it yet, all at once; then post the board.

        The pages go first: nothing the room needs to see may delay them (measured in bench/,
        posting the board before or alongside them made the slowest page slower).
        """
        async with self.db.session() as session:
            rows = [r for r in await store.targets(session, page.id) if r.event_id is None]
        await self.send(page, activation, rows)
        if page.kind != "page" or activation is None:
            return  # a communication check reports once, at its end
        if page.board_event_id:
            self.board.refresh(page, activation)
        else:
            await self.board.post(page, activation, reply_to)

    async def send(
        self,
        page: PageRow,
        activation: ActivationRow | None,
        rows: list[PageTargetRow],
        *,
        repeated: list[PageTargetRow] | None = None,
    ) -> None:
        """The page to each of `rows` and its repetition to each of `repeated`, all at once (for
        many, the first a moment ahead): each send retried, the outcomes recorded in one
        transaction, every failure told to the room — never dropped."""
        rows, elsewhere = self._by_first_channel(rows)
        sends = [(row, False) for row in rows] + [(row, True) for row in repeated or []]
        if not sends and not elsewhere:
            return
        answer_by = utcnow() + timedelta(seconds=page.ack_window_s)
        moved = self._start_deadlines(page, rows + elsewhere, answer_by)
        at_once_elsewhere = {row.id for row in elsewhere}
        rooms = await self._rooms([row for row, _ in sends])
        messages = self._messages(page, activation, sends, answer_by)
        jobs = [
            self._send_one(
                page,
                row,
                rooms.get(row.matrix_id),
                repeat,
                messages[_wording(row, repeat, answer_by)],
            )
            for row, repeat in sends
        ]
        if len(jobs) >= FIRST_AHEAD_FROM:
            outcomes = await first_ahead(jobs, most=FIRST_AHEAD_MOST)
        else:
            outcomes = await asyncio.gather(*jobs)
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
        self.metrics.pages_sent.labels(MATRIX).inc(len(delivered))
        for _row, _repeat, error in failed:
            self.metrics.send_failed(MATRIX, matrix_failure(error))
        first_sends = [row for row, repeat in sends if not repeat] + elsewhere
        at_once = {row.id for row, _repeat, _error in failed} | at_once_elsewhere
        async with self.db.session() as session:
            await store.mark_many(session, delivered)
            # With the marks: a page marked sent and its e-mail step not armed (a kill between
            # two transactions) would never be e-mailed, as a page sent is not sent again.
            await self.fallback.arm(session, page, activation, first_sends, at_once)
            if activation is not None:
                # A person's first step runs from when their page went out, not from when it
                # was made: nobody loses the time the bot (or the homeserver) was away.
                late = {
                    unit_prefix(activation.id, page.id, row.handle) + ESCALATE: row.deadline
                    for row in moved
                    if (row.id in delivered or row.id in at_once_elsewhere) and not row.covers
                }
                await self.scheduler.move(session, TimerKind.PAGE_STEP, late)
            for row, _repeat, error in failed:
                await store.mark(session, row.id, send_error=error)
                if activation is None:
                    continue
                await self.activations.add_entry(
                    session,
                    activation,
                    "system.page_failed",
                    f"{page.ref} could not be delivered to {row.name}: {error}",
                    self.activations.bot_id,
                    data={"page": page.id, "handle": row.handle},
                )
        for row, _repeat, error in failed:
            await self.servers.send_failed(page, activation, row, error)
        for row, repeat, error in failed:
            await self.board.tell_room(
                page,
                activation,
                self.renderer.render("page_failed", ref=page.ref, name=row.name, error=error),
                txn_id=f"failed-{row.id}-{'repeat' if repeat else 'first'}",
            )

    def _by_first_channel(
        self, rows: list[PageTargetRow]
    ) -> tuple[list[PageTargetRow], list[PageTargetRow]]:
        """(those the page reaches in Matrix first, those it reaches by their other channels at
        once): someone without a Matrix ID, or whose `channels` leave Matrix out."""
        contacts = self.keeper.current.contacts
        on_matrix = [
            row
            for row in rows
            if row.matrix_id.startswith("@")
            and ((contact := contacts.get(row.handle)) is None or contact.on_matrix)
        ]
        reached = {row.id for row in on_matrix}
        return on_matrix, [row for row in rows if row.id not in reached]

    async def _rooms(self, rows: list[PageTargetRow]) -> dict[str, str]:
        """The DM rooms known already: where an earlier page to each went, unless they have
        left it since; else the DM store's (one query for all). Those who have none get theirs
        as their page goes (`_send_one`): a first page to a thousand new people does not wait
        for a thousand rooms to be made, a few at a time, before the first leaves."""
        rooms = {
            row.matrix_id: row.dm_room_id
            for row in rows
            if row.dm_room_id and not self.messenger.has_left(row.dm_room_id, row.matrix_id)
        }
        missing = [row.matrix_id for row in rows if row.matrix_id not in rooms]
        if missing:
            rooms.update(await self.direct.known_rooms(missing))
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
                if CANNOT_CONNECT in error.lower():
                    break  # their server is down: trying again costs seconds each, in vain
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
        directory = self.keeper.current
        sender = directory.contact_for(page.sender)
        message = self.renderer.render(
            "commscheck" if page.kind == "check" else "page",
            lang=row.language,
            ref=page.ref,
            activation=activation,
            text=page.text_in(row.language),
            sender=sender.name if sender else page.sender,
            sender_org=directory.organisations[sender.organisation].name if sender else "",
            deadline=format_local_utc(deadline, zone, lang=row.language),
            urgent=page.urgent,
            repeat=repeat,
            covers=row.covers and self._name(row.covers),
        )
        return self.activations.frame(message, activation)

    def _name(self, handle: str) -> str:
        contact = self.keeper.current.contacts.get(handle)
        return contact.name if contact else handle


def _wording(row: PageTargetRow, repeat: bool, answer_by: datetime) -> tuple:
    """What a page's text depends on besides the page: the person's language and time zone, the
    deadline shown (a repeat's: a window from now), whether it is a repeat, and whom a backup
    stands in for."""
    return (row.language, row.timezone, answer_by if repeat else row.deadline, repeat, row.covers)


def matrix_failure(error: str) -> str:
    """Why a Matrix send did not leave, as a metric's bounded reason: the person's homeserver
    unreachable, one of the bot's rooms not private, or the homeserver refusing it."""
    lowered = error.lower()
    if CANNOT_CONNECT in lowered:
        return UNREACHABLE
    if RoomNotPrivate.STATUS in error:
        return NOT_PRIVATE
    return REFUSED

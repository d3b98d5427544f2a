"""Answers to pages: an ack (a command, a reply, a reaction) or a decline, and a ✅ taken back.

The first answer on a row wins and is never undone. Within an activation, any answer in a unit
(the person paged and their backup) ends that unit's pending escalation steps at once, a decline
escalates at once, and each answer is recorded in the logbook and shows on the page's board.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.activations.activation import after_close
from bot.activations.chain import Draft
from bot.errors import UserError
from bot.paging.steps import ESCALATE, UNREACHABLE, arm, unit_prefix
from bot.reach.direct import RECORD_HORIZON, owner_of_answered
from bot.render import Message
from bot.runtime.tasks import Grouped
from bot.storage import core
from bot.storage import page_store as store
from bot.storage.models import ActivationRow, ActivationStatus, PageRow, PageTargetRow
from bot.timeutil import format_duration, utcnow

if TYPE_CHECKING:
    from bot.activations.activation import Activations
    from bot.paging.board import Board
    from bot.render import Renderer
    from bot.runtime.metrics import Metrics
    from bot.runtime.scheduler import Scheduler
    from bot.storage.db import Database

log = logging.getLogger(__name__)


class NoOpenPage(UserError):
    """An ack or `unable` with no page named and none open: told in the person's language by
    the command (`page_none_open`), which knows who they are."""

    def __init__(self) -> None:
        super().__init__("You have no open page to answer.")


@dataclass(frozen=True)
class Answer:
    """What came of an ack or a decline, for the answer to the person."""

    page: PageRow
    activation: ActivationRow | None
    row: PageTargetRow
    # True: recorded now (or recorded before a crash cut its handling short, and what followed
    # the record is done again); False: an earlier answer stands, this one changed nothing
    first: bool


@dataclass(frozen=True)
class Asked:
    """An answer as the person gave it, waiting for its group to be written."""

    matrix_id: str
    ref: str | None
    relates_to: str | None
    how: str
    event_id: str
    at: datetime
    reason: str | None  # None: an ack
    page_id: int | None  # the page answered, when the handler found it (`page_answered`)


@dataclass
class GroupReads:
    """The rows a group's answers are about, read for all of them at once: each person's rows
    on the page their handler found, and the open rows of those who typed a bare `ack`."""

    on_page: dict[tuple[int, str], list[PageTargetRow]]
    open_rows: dict[str, list[PageTargetRow]]

    @classmethod
    async def of(cls, session: AsyncSession, group: list[Asked]) -> GroupReads:
        pairs = {(a.page_id, a.matrix_id) for a in group if a.page_id is not None}
        bare = {a.matrix_id for a in group if a.page_id is None and not (a.ref or a.relates_to)}
        on_page = await store.targets_of_people(session, pairs)
        return cls(on_page, await store.open_rows_of_people(session, bare))

    async def open_of(self, session: AsyncSession, matrix_id: str) -> list[PageTargetRow]:
        """The person's unanswered rows, newest page first, as the group's answers so far left
        them (the session's copies of the rows take each answer as it is written)."""
        if matrix_id not in self.open_rows:
            self.open_rows[matrix_id] = await store.open_rows_of(session, matrix_id)
        rows = self.open_rows[matrix_id]
        return [r for r in rows if r.acked_at is None and r.declined_at is None]


@dataclass
class GroupWrites:
    """What a group of answers writes once for all, at its end: the escalations its acks end
    (their units' timer key prefixes, one statement) and its logbook entries (one insert an
    activation)."""

    prefixes: list[str] = field(default_factory=list)
    entries: dict[int, tuple[ActivationRow, list[Draft]]] = field(default_factory=dict)

    def log(self, activation: ActivationRow, draft: Draft) -> None:
        self.entries.setdefault(activation.id, (activation, []))[1].append(draft)

    async def cancel(self, scheduler: Scheduler, session: AsyncSession) -> None:
        if self.prefixes:
            await scheduler.cancel(session, self.prefixes)
            self.prefixes = []

    async def write(
        self, scheduler: Scheduler, activations: Activations, session: AsyncSession
    ) -> None:
        await self.cancel(scheduler, session)
        for activation, drafts in self.entries.values():
            await activations.add_drafts(session, activation, drafts)


@dataclass(frozen=True, kw_only=True)
class Answers:
    db: Database
    renderer: Renderer
    scheduler: Scheduler
    metrics: Metrics
    activations: Activations
    board: Board
    _grouped: Grouped[Asked, Answer] = field(init=False)
    _paged: Grouped[str, tuple[str, int] | None] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_grouped", Grouped(self._record_group))
        object.__setattr__(self, "_paged", Grouped(self._pages_of))

    async def how_to_answer(
        self, page_event: str, sender: str
    ) -> tuple[Message, ActivationRow | None] | None:
        """A reply to a page that is not an acknowledgement: how to acknowledge or decline, in
        the person's language, and a log line; such a reply is never silently dropped."""
        async with self.db.session() as session:
            row = await store.target_by_event(session, page_event)
            page, activation = await store.page_in(session, row.page_id if row else None)
        if row is None or page is None:
            return None
        log.info("reply from %s to %s is not an acknowledgement; told how", sender, page.ref)
        message = self.renderer.render("page_reply_unread", lang=row.language, ref=page.ref)
        return message, activation

    async def page_answered(self, event_id: str | None, matrix_id: str) -> int | None:
        """The page whose message (or repeat) `event_id` is, if it was sent to this person;
        None for any other event. Handed on to `answer`, which need not look it up again.

        An answer to a page sent just before a crash may be read before the page is recorded:
        see `owner_of_answered`.
        """
        if event_id is None:
            return None

        async def find(session: AsyncSession) -> tuple[str, int] | None:
            row = await store.target_by_event(session, event_id)
            return (row.matrix_id, row.page_id) if row else None

        # Looked up with the answers read together (a storm's reactions: one query, not a
        # session each); an event not found is looked for again, and waited for.
        owner = await self._paged.submit(event_id) or await owner_of_answered(
            self.db, find, lambda session: self._unrecorded_sends(session, matrix_id)
        )
        return owner[1] if owner is not None and owner[0] == matrix_id else None

    async def _pages_of(self, event_ids: list[str]) -> list[tuple[str, int] | Exception | None]:
        """For each event, whom its page went to and which page it is, if it is one."""
        async with self.db.session() as session:
            found = await store.targets_by_events(session, event_ids)
        return [(r.matrix_id, r.page_id) if (r := found.get(e)) else None for e in event_ids]

    async def _unrecorded_sends(self, session: AsyncSession, matrix_id: str) -> bool:
        """Whether a page, backup page or repeat may have reached this person without its event
        being recorded yet: a row not delivered (nor failed) as far as the database knows, or a
        repeat whose escalation step fired and has not completed."""
        rows = await store.open_rows_since(session, matrix_id, utcnow() - RECORD_HORIZON)
        if any(
            row.event_id is None and row.send_error is None and row.delivered_at is None
            for row, _ in rows
        ):  # (a row reached by e-mail or SMS only is delivered with no Matrix event)
            return True
        steps = [
            unit_prefix(page.activation_id, page.id, row.handle) + ESCALATE
            for row, page in rows
            if page.activation_id and not row.covers and row.repage_event_id is None
        ]
        return await core.any_unfinished_claim(session, steps)

    async def answer(
        self,
        matrix_id: str,
        *,
        ref: str | None,
        relates_to: str | None,
        how: str,
        event_id: str,
        at: datetime,
        reason: str | None = None,
        page_id: int | None = None,
    ) -> Answer:
        """Record an ack (reason None) or a decline for the person's rows on one page (`ref`,
        `page_id` as `page_answered` found it, the page `relates_to`, or their newest open),
        with the answers that arrive meanwhile (`Grouped`: a storm of acks written together)."""
        asked = Asked(matrix_id, ref, relates_to, how, event_id, at, reason, page_id)
        answer = await self._grouped.submit(asked)
        if answer.first and answer.activation is not None:
            self.board.refresh(answer.page, answer.activation)
        return answer

    async def _record_group(self, group: list[Asked]) -> list[Answer | Exception]:
        """One transaction for the group; each answer in turn, seeing those before it. What
        one person is refused (no such page, none open, activation closed) is theirs alone:
        it is found before anything of theirs is written."""
        outcomes: list[Answer | Exception] = []
        async with self.db.session() as session:
            reads, writes = await GroupReads.of(session, group), GroupWrites()
            for asked in group:
                try:
                    outcomes.append(await self._record(session, asked, reads, writes))
                except UserError as refusal:
                    outcomes.append(refusal)
            await writes.write(self.scheduler, self.activations, session)
        return outcomes

    async def _record(
        self, session: AsyncSession, asked: Asked, reads: GroupReads, writes: GroupWrites
    ) -> Answer:
        rows = await self._rows_answered(session, asked, reads)
        page, activation = await store.page_in(session, rows[0].page_id)
        assert page is not None
        if activation is not None and activation.status != ActivationStatus.OPEN:
            raise after_close(
                self.renderer,
                "page_after_close",
                page.ref,
                activation,
                who=asked.matrix_id,
                language=rows[0].language,
                timezone=rows[0].timezone,
            )
        now = min(asked.at, utcnow())  # when they answered, even if the bot reads it later
        reason, event_id = asked.reason, asked.event_id
        fields = (
            {"acked_at": now, "ack_how": asked.how, "ack_event_id": event_id}
            if reason is None
            else {"declined_at": now, "declined_reason": reason}
        )
        # This very answer, recorded before a crash cut its handling short: what followed the
        # record (the board, the answer to the person) is done again, the record is not.
        again = [
            r
            for r in rows
            if (reason is None and r.ack_event_id == event_id)
            or (reason is not None and r.declined_at == now and r.declined_reason == reason)
        ]
        first: list[PageTargetRow] = []
        for row in rows:
            if await store.answer_once(session, row, **fields):
                first.append(row)
                await self._after_answer(
                    session, activation, page, row, reason, asked.how, now, writes
                )
        shown = first[0] if first else again[0] if again else rows[0]
        if not first:  # an earlier answer stands: as the database has it, not as read
            await session.refresh(shown)
        return Answer(page=page, activation=activation, row=shown, first=bool(first or again))

    async def _after_answer(
        self,
        session: AsyncSession,
        activation: ActivationRow | None,
        page: PageRow,
        row: PageTargetRow,
        reason: str | None,
        how: str,
        now: datetime,
        writes: GroupWrites,
    ) -> None:
        unit = row.covers or row.handle
        if activation is None:
            return  # a check outside an activation: nothing to escalate, no logbook
        if reason is None:
            delivered = row.delivered_at
            self.metrics.acknowledged(how, (now - delivered).total_seconds() if delivered else None)
            writes.prefixes.append(unit_prefix(activation.id, page.id, unit))
            latency = format_duration(now - (row.delivered_at or now))
            text = f"{page.ref} acknowledged by {row.name} ({how}, {latency})"
            kind = "system.ack"
        else:
            # A decline escalates at once: for the person paged, to their backup; for a backup,
            # straight to telling the room.
            step = UNREACHABLE if row.covers else ESCALATE
            await writes.cancel(self.scheduler, session)  # what an ack before this one ended
            await arm(self.scheduler, session, activation, page, [(unit, step, now)])
            text = f"{page.ref} declined by {row.name}: {reason}"
            kind = "system.unable"
        data = {"page": page.id, "handle": row.handle, "how": how}
        writes.log(activation, self.activations.draft(kind, text, row.matrix_id, data=data))

    async def withdraw_ack(self, matrix_id: str, *, reaction: str, at: datetime) -> bool:
        """The person redacted the reaction `reaction`: if it acknowledged a page of theirs, record
        the withdrawal (on their rows, in the logbook) and show it on the page's board.

        The acknowledgement itself stands: the first answer wins and is never undone, because
        the cell may already have acted on it (stopped the escalation, told the DG). What the
        cell must not miss is that the person took it back. A redaction of anything else, or of
        someone else's reaction (a moderator tidying up is not the person withdrawing), is no
        withdrawal: False, and nothing is written.
        """
        now = min(at, utcnow())  # when they took it back, even if the bot reads it later
        async with self.db.session() as session:
            rows = await store.acked_by_reaction(session, reaction, matrix_id)
            page, activation = await store.page_in(session, rows[0].page_id if rows else None)
            if page is None or (activation is not None and activation.status != "open"):
                return False  # a closed activation's record is final
            first = await store.withdraw_ack_once(session, [r.id for r in rows], now)
            if first and activation is not None:
                await self.activations.add_entry(
                    session,
                    activation,
                    "system.ack_withdrawn",
                    f"{rows[0].name} withdrew their ✅ acknowledgement of {page.ref} at "
                    f"{self.activations.local(now)}; the acknowledgement stands",
                    matrix_id,
                    occurred_at=now,
                    data={"page": page.id, "handle": rows[0].handle, "reaction": reaction},
                )
        log.info("%s withdrew their reaction acknowledging %s", matrix_id, page.ref)
        if activation is not None:
            # Also when handled again after a crash: the board may not have been edited.
            self.board.refresh(page, activation)
        return True

    async def _rows_answered(
        self, session: AsyncSession, asked: Asked, reads: GroupReads
    ) -> list[PageTargetRow]:
        """The person's rows on the page they answer: named, found, replied to, or their latest
        open."""
        matrix_id, ref, relates_to = asked.matrix_id, asked.ref, asked.relates_to
        if asked.page_id is not None and (rows := reads.on_page.get((asked.page_id, matrix_id))):
            return rows
        if ref:
            page = await store.page(session, int(ref.split("-")[1]))
            if page is None:
                raise UserError(f"There is no page {ref}.")
            rows = await store.targets(session, page.id, matrix_id)
            if not rows:
                raise UserError(f"{ref} was not sent to you.")
            return rows
        if relates_to:
            row = await store.target_by_event(session, relates_to)
            if row is not None and row.matrix_id == matrix_id:
                return await store.targets(session, row.page_id, matrix_id)
        open_rows = await reads.open_of(session, matrix_id)
        if not open_rows:
            raise NoOpenPage()
        newest = open_rows[0].page_id
        return [r for r in open_rows if r.page_id == newest]

"""The board: where a page stands, for the activation room to see, and where an activation's pages
stand, for status, handover, sitrep and the record.

A page's board is a notice in the activation room, posted once when the page goes out and edited
whenever an answer, an escalation or a withdrawn ✅ changes it; `person_status` is its line for one
person, in `pages` too. What the room must hear about a page (a send that failed, someone who
could not be reached) goes there through `tell_room`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.errors import UserError
from bot.matrix.send import MAX_CONTENT_BYTES, MatrixSendError, ReplyTo, fits_one_event
from bot.render import Message
from bot.storage import activation_store
from bot.storage import page_store as store
from bot.storage.models import ActivationRow, PageAttemptRow, PageRow, PageTargetRow
from bot.timeutil import format_duration

if TYPE_CHECKING:
    from bot.activations.activation import Activations
    from bot.matrix.send import Messenger
    from bot.render import Renderer
    from bot.runtime.changes import Changes
    from bot.runtime.tasks import KeyedLocks, Paced
    from bot.storage.db import Database

log = logging.getLogger(__name__)
PAGE_REF = re.compile(r"^PG-(\d+)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Tried:
    """How else the bot tried to reach someone: the channel, when it went (None: it failed)."""

    channel: str
    sent: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class PersonLine:
    """One person's line on a page's board and in `pages`, times already in the cell's zone.
    Attributes, not a dict: a board of three hundred lines reads each field of each line in its
    templates, and Jinja finds an attribute at its first try where a dict key costs a failed
    attribute look-up first."""

    symbol: str
    name: str
    organisation: str
    state: str
    delivered: str | None
    seen: str | None
    repaged: bool
    escalated: bool
    backup: PersonLine | None
    channels: tuple[Tried, ...]

    def least_bytes(self) -> int:
        """What the line surely takes in a board's text (and again in its HTML): the fields every
        board template prints."""
        return len(f"{self.symbol}{self.name}{self.organisation}{self.state}".encode())


@dataclass(frozen=True, kw_only=True)
class Board:
    db: Database
    renderer: Renderer
    messenger: Messenger
    locks: KeyedLocks
    paced: Paced
    changes: Changes
    activations: Activations

    async def listing(self, room_id: str, ref: str | None) -> tuple[Message, ActivationRow]:
        """`pages [ref]`: per person, where one page (PG-n) or an activation's pages stand."""
        activation = None
        async with self.db.session() as session:
            if ref and PAGE_REF.match(ref):
                one = await store.page(session, int(ref.split("-")[1]))
                if one is None:
                    raise UserError(f"There is no page {ref.upper()}.")
                if one.activation_id is not None:
                    activation = await activation_store.by_id(session, one.activation_id)
                listed = [(one, await store.targets(session, one.id))]
        if activation is None:
            activation = await self.activations.resolve(room_id, ref)
            async with self.db.session() as session:
                listed = await store.pages_with_targets(session, activation.id)
        async with self.db.session() as session:
            tries = await store.tries_by_row(
                session, [row for _item, rows in listed for row in rows]
            )
        entries = [
            {
                "ref": item.ref,
                "text": item.text,
                "sent": self.activations.local(item.created_at),
                "people": self._lines(rows, tries),
            }
            for item, rows in listed
        ]
        return self.renderer.render("pages", pages=entries, activation=activation), activation

    async def post(self, page: PageRow, activation: ActivationRow, reply_to: str | None) -> None:
        """The page's status message in the activation room, posted once, then edited; a reply
        to the command that paged (none for a page a playbook sent)."""
        self.changes.changed(activation.id)  # delivered: the live board follows
        async with self.locks(f"board:{page.id}"):
            if page.board_event_id:
                return
            message = await self._render(page, activation)
            assert activation.room_id is not None  # an activation's board is in its room
            event_id = await self.messenger.notice(
                activation.room_id,
                message,
                reply_to=ReplyTo(reply_to) if reply_to else None,
                txn_id=f"board-{page.id}",
            )
            async with self.db.session() as session:
                await store.set_board(session, page.id, event_id=event_id, digest=_digest(message))
            page.board_event_id = event_id

    def refresh(self, page: PageRow, activation: ActivationRow) -> None:
        """Have the board show the page as it stands: edited soon, paced (`Paced`), so that a
        storm of answers costs a few edits, and the answers do not wait for them."""
        self.changes.changed(activation.id)  # and the live situation board, at once
        self.paced.soon(f"board:{page.id}", lambda: self._edit(page.id))

    async def reconcile(self) -> None:
        """At start-up: every board of an open activation that does not show what it should
        (a change whose paced edit a crash or a refused edit cut off) is edited now."""
        async with self.db.session() as session:
            pages = await store.boards_in_open_activations(session)
        for page_id in pages:
            await self._edit(page_id)

    async def _edit(self, page_id: int) -> None:
        """Edit the board if what it should show differs from what it last showed."""
        async with self.locks(f"board:{page_id}"):
            async with self.db.session() as session:
                page, activation = await store.page_in(session, page_id)
            if page is None or page.board_event_id is None or activation is None:
                return
            if activation.room_id is None:
                return
            message = await self._render(page, activation)
            digest = _digest(message)
            if digest == page.board_digest:
                return
            try:
                await self.messenger.edit(activation.room_id, page.board_event_id, message)
            except MatrixSendError:
                log.exception("could not update the board of %s", page.ref)
                return
            async with self.db.session() as session:
                await store.set_board(session, page.id, digest=digest)

    async def _render(self, page: PageRow, activation: ActivationRow) -> Message:
        async with self.db.session() as session:
            rows = await store.targets(session, page.id)
            tries = await store.tries_by_row(session, rows)
        units = [r for r in rows if not r.covers]
        backups = {r.covers: r for r in rows if r.covers}
        lines = self._lines(rows, tries)
        done = sum(1 for r in units if _unit_answered(r, backups.get(r.handle)))
        waiting = [dataclasses.replace(line, channels=()) for line in lines if line.symbol != "✅"]
        for shown in (lines, waiting, []):  # a page to hundreds: who still matters, or counts
            if shown and not may_fit(shown):
                continue  # not worth rendering: three hundred lines, twice, to find it too long
            message = self.compose(page, activation, shown, acked=done, total=len(units))
            if fits_one_event(Message(message.body * 2, message.html * 2)):  # an edit: twice
                break
        return message

    def compose(
        self,
        page: PageRow,
        activation: ActivationRow,
        lines: list[PersonLine],
        *,
        acked: int,
        total: int,
    ) -> Message:
        """The board showing `lines` (all of the page's, or those still waiting, or none), the
        rest counted."""
        return self.activations.frame(
            self.renderer.render(
                "page_board",
                ref=page.ref,
                text=page.text,
                acked=acked,
                total=total,
                lines=lines,
                hidden=total - len(lines),
                urgent=page.urgent,
            ),
            activation,
        )

    def _lines(
        self, rows: list[PageTargetRow], tries: dict[int, list[PageAttemptRow]]
    ) -> list[PersonLine]:
        """Each person paged directly, with their backup's line under theirs."""
        backups = {r.covers: r for r in rows if r.covers}
        return [self.person_status(r, backups.get(r.handle), tries) for r in rows if not r.covers]

    def person_status(
        self,
        row: PageTargetRow,
        backup: PageTargetRow | None = None,
        tries: dict[int, list[PageAttemptRow]] | None = None,
    ) -> PersonLine:
        """One person's line on a board or in `pages`: a symbol, what happened, and how else
        the bot tried to reach them (e-mail, SMS)."""
        local = self.activations.local
        if row.acked_at:
            latency = format_duration(row.acked_at - (row.delivered_at or row.acked_at))
            withdrawn = (
                f" · reaction withdrawn {local(row.ack_withdrawn_at)}; the ack stands"
                if row.ack_withdrawn_at
                else ""
            )
            state = ("✅", f"{latency} ({row.ack_how}){withdrawn}")
        elif row.declined_at:
            state = ("⛔", f"unable: {row.declined_reason}")
        elif row.unreachable_at:
            state = ("⚠", "unreachable")
        elif row.send_error:
            state = ("❗", "not delivered")
        else:
            state = ("⏳", f"until {local(row.deadline)}")
        return PersonLine(
            symbol=state[0],
            name=row.name,
            organisation=row.organisation,
            state=state[1],
            delivered=local(row.delivered_at) if row.delivered_at else None,
            seen=local(row.seen_at) if row.seen_at else None,
            repaged=bool(row.repaged_at),
            escalated=bool(row.escalated_at),
            backup=self.person_status(backup, tries=tries) if backup else None,
            channels=tuple(
                Tried(t.channel, local(t.sent_at) if t.sent_at else None, t.error)
                for t in (tries or {}).get(row.id, [])
            ),
        )

    async def tell_room(
        self, page: PageRow, activation: ActivationRow | None, message: Message, txn_id: str
    ) -> None:
        """Tell the activation's room (or, for a check outside one, the room it was asked in)."""
        room_id = activation.room_id if activation else page.room_id
        if room_id:
            framed = self.activations.frame(message, activation)
            await self.messenger.notice(room_id, framed, txn_id=txn_id)


def may_fit(lines: list[PersonLine]) -> bool:
    """False when a board of these lines cannot fit one edit, whatever the templates add: each
    line's fields in the text and in the HTML, twice (an edit carries the new content and its
    fallback), counted in UTF-8 where the event's JSON counts more."""
    return 4 * sum(line.least_bytes() for line in lines) <= MAX_CONTENT_BYTES


def _digest(message: Message) -> str:
    return hashlib.sha256(f"{message.body}\x00{message.html}".encode()).hexdigest()


@dataclass(frozen=True)
class PageSummary:
    """Where an activation's pages stand, for status, handover, sitrep and the record."""

    pages: int
    people: int  # persons paged directly (each with their backup, a unit)
    acknowledged: int
    waiting: list[tuple[str, str]]  # (PG-n, name) still without an answer
    unreachable: list[tuple[str, str]]


def _unit_answered(row: PageTargetRow, backup: PageTargetRow | None) -> bool:
    return bool(row.acked_at or (backup is not None and backup.acked_at))


async def page_summary(session: AsyncSession, activation_id: int) -> PageSummary:
    page_ids, states = await store.answer_states(session, activation_id)
    known = set(page_ids)
    backups = {(s.page_id, s.covers): s for s in states if s.covers}
    people = acknowledged = 0
    waiting: list[tuple[str, str]] = []
    unreachable: list[tuple[str, str]] = []
    for state in states:
        if state.covers or state.page_id not in known:  # (a page added since the first read)
            continue
        people += 1
        ref = f"{PageRow.REF}-{state.page_id}"
        backup = backups.get((state.page_id, state.handle))
        if state.acked or (backup is not None and backup.acked):
            acknowledged += 1
        elif state.unreachable:
            unreachable.append((ref, state.name))
        elif not state.declined:
            waiting.append((ref, state.name))
    return PageSummary(len(page_ids), people, acknowledged, waiting, unreachable)

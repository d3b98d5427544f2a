"""ICC activations: the cell's unit of work, from `activate` to `close`.

What is said about an activation always carries its TLP label and, for an exercise, the marker
line first and last (`frame`). Every state change is written to the logbook in the same
transaction as the change itself, so the record never disagrees with the state.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.activations import chain
from bot.errors import Refused, UserError
from bot.render import Message, Renderer
from bot.storage import activation_store as store
from bot.storage.models import ActivationRow, ActivationStatus, LogEntryRow
from bot.timeutil import format_local_utc, load_zone

if TYPE_CHECKING:
    from bot.directory.keeper import DirectoryKeeper
    from bot.matrix.send import Messenger
    from bot.runtime.changes import Changes
    from bot.runtime.scheduler import Scheduler
    from bot.settings import Settings
    from bot.storage.db import Database

log = logging.getLogger(__name__)

LEVELS = ("monitoring", "information-sharing", "full")
TLPS = ("TLP:CLEAR", "TLP:GREEN", "TLP:AMBER", "TLP:AMBER+STRICT", "TLP:RED")
REF = re.compile(r"^(EX-)?ICC-\d{4}-\d{3,}$", re.IGNORECASE)


def parse_tlp(text: str) -> str:
    """`amber`, `TLP:AMBER`, `tlp:amber+strict` → the canonical label; never translated."""
    label = text.strip().upper()
    label = label if label.startswith("TLP:") else f"TLP:{label}"
    if label not in TLPS:
        raise UserError(f"`{text}` is not a TLP label: {', '.join(TLPS)}")
    return label


def make_ref(*, exercise: bool, year: int, number: int) -> str:
    return f"{'EX-' if exercise else ''}ICC-{year}-{number:03d}"


def frame(message: Message, activation: ActivationRow, marker: str) -> Message:
    """The activation's TLP line on top; for an exercise, the marker first and last."""
    if message.framed:
        return message
    header = f"{activation.tlp} · {activation.ref}"
    body = [header, message.body]
    html = [f"<p><b>{escape(header)}</b></p>", message.html]
    if activation.exercise:
        body = [marker, *body, marker]
        html = [f"<p><b>{escape(marker)}</b></p>", *html, f"<p><b>{escape(marker)}</b></p>"]
    return Message(body="\n".join(body), html="\n".join(html), framed=True)


@dataclass(frozen=True)
class LevelChange:
    at: datetime
    level: str
    by: str


async def level_history(session: AsyncSession, activation: ActivationRow) -> list[LevelChange]:
    """From the logbook: the opening level, then every change."""
    entries = await store.log_entries(
        session,
        activation.id,
        kinds=["system.activate", "system.level"],
    )
    return [LevelChange(e.occurred_at, str(e.data.get("level")), e.author) for e in entries]


class RoomActivations:
    """The activation of each room commands were answered in lately (None: not an activation
    room), so that framing an answer costs no query (a tenth of a `help`'s time in the bot,
    bench/: command latency). Forgotten all at once whenever a transaction that wrote an
    activation commits (`Database.on_written`); a read that overlapped such a commit is not kept.
    """

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._rows: OrderedDict[str, ActivationRow | None] = OrderedDict()
        self.generation = 0  # raised at each forgetting

    def get(self, room_id: str) -> tuple[bool, ActivationRow | None]:
        """(known, the room's activation)."""
        if room_id not in self._rows:
            return False, None
        self._rows.move_to_end(room_id)
        return True, self._rows[room_id]

    def keep(self, room_id: str, activation: ActivationRow | None, generation: int) -> None:
        """Keep what a read begun at `generation` found, unless something was written since."""
        if generation != self.generation:
            return
        self._rows[room_id] = activation
        self._rows.move_to_end(room_id)
        while len(self._rows) > self._size:
            self._rows.popitem(last=False)

    def forget_all(self) -> None:
        self.generation += 1
        self._rows.clear()


@dataclass(frozen=True, kw_only=True)
class Activations:
    """Operations on activations; each takes what it needs and returns data or a UserError."""

    settings: Settings
    db: Database
    keeper: DirectoryKeeper
    changes: Changes
    rooms: RoomActivations = field(default_factory=RoomActivations)

    def __post_init__(self) -> None:
        self.db.on_written(ActivationRow, self.rooms.forget_all)

    @property
    def marker(self) -> str:
        return self.settings.exercise_marker

    def frame(self, message: Message, activation: ActivationRow | None) -> Message:
        """Framed for its activation; a message about none (a check, a DG round) as it is."""
        return frame(message, activation, self.marker) if activation else message

    def local(self, moment: datetime, *, with_date: bool = False) -> str:
        return format_local_utc(moment, self.settings.timezone, with_date=with_date)

    # -- finding the activation a command is about ------------------------------------------------

    async def for_room(self, room_id: str) -> ActivationRow | None:
        """The room's activation, None if it is no activation's room. Shared: never changed
        by its readers (a change is written, and read back)."""
        known, activation = self.rooms.get(room_id)
        if known:
            return activation
        generation = self.rooms.generation
        async with self.db.session() as session:
            activation = await store.by_room(session, room_id)
        self.rooms.keep(room_id, activation, generation)
        return activation

    async def resolve(self, room_id: str, ref: str | None) -> ActivationRow:
        """The activation named by `ref`, else the one whose room this is."""
        async with self.db.session() as session:
            if ref:
                if not REF.match(ref):
                    raise UserError(f"`{ref}` is not an activation reference (ICC-2026-007).")
                found = await store.by_ref(session, ref)
                if found is None:
                    raise UserError(f"There is no activation {ref.upper()}.")
                return found
            found = await store.by_room(session, room_id)
        if found is None:
            raise UserError(
                "This room is not an activation room. Type the command in the activation's room, "
                "or give its reference where the command takes one."
            )
        return found

    async def open_in_room(self, room_id: str) -> ActivationRow:
        """The room's activation, refusing clearly when it is closed or suspended."""
        activation = await self.resolve(room_id, None)
        ensure_open(activation)
        return activation

    # -- logbook ----------------------------------------------------------------------------------

    async def add_entry(
        self,
        session: AsyncSession,
        activation: ActivationRow,
        kind: str,
        text: str,
        author: str,
        **fields: object,
    ) -> LogEntryRow:
        """One logbook entry, written in the caller's transaction: in the same commit as the
        change it records, so the logbook never disagrees with the state. Every state change is
        logged, so this is where the activation's followers hear of it (its live board)."""
        self.changes.after_commit(session, activation.id)
        return await chain.append(
            session,
            activation,
            kind=kind,
            text=text,
            author=author,
            author_role=self._role(author),
            **fields,  # type: ignore[arg-type]  # the optional columns chain.append names
        )

    async def note(self, activation: ActivationRow, kind: str, text: str, **fields: object) -> None:
        """The bot's own logbook entry, in a transaction of its own: for what it did that
        changed nothing else (a reminder sent, a result told)."""
        async with self.db.session() as session:
            await self.add_entry(session, activation, kind, text, self.bot_id, **fields)

    async def add_entries(
        self,
        session: AsyncSession,
        activation: ActivationRow,
        author: str,
        entries: list[tuple[str, str, dict[str, Any]]],
    ) -> None:
        """Several (kind, text, data) entries by one author, in order, in one write."""
        drafts = [self.draft(kind, text, author, data=data) for kind, text, data in entries]
        await self.add_drafts(session, activation, drafts)

    def draft(self, kind: str, text: str, author: str, **fields: Any) -> chain.Draft:
        """An entry to write later with others (`add_drafts`), as `add_entry` takes it."""
        return chain.Draft(kind, text, author, self._role(author), **fields)

    async def add_drafts(
        self, session: AsyncSession, activation: ActivationRow, drafts: list[chain.Draft]
    ) -> None:
        """Entries by any authors, in order, in one write (a storm's acknowledgements)."""
        self.changes.after_commit(session, activation.id)
        await chain.append_many(session, activation, drafts)

    def _role(self, author: str) -> str:
        return self.keeper.current.role_of(author).value if author != self.bot_id else "bot"

    @property
    def bot_id(self) -> str:
        return self.settings.user_id

    # -- lifecycle --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ActivationCapability:
    """What every capability that acts in activations' rooms stands on: its rows (`db`), the
    directory (`keeper`), its words (`renderer`), the rooms it speaks in (`messenger`), its timers
    (`scheduler`) and the activations themselves. A capability that uses all six inherits them
    and declares the rest as its own fields; `Layers.given` reads inherited fields too."""

    db: Database
    keeper: DirectoryKeeper
    renderer: Renderer
    messenger: Messenger
    scheduler: Scheduler
    activations: Activations


def after_close(
    renderer: Renderer,
    template: str,
    ref: str,
    activation: ActivationRow,
    *,
    who: str,
    language: str,
    timezone: str,
) -> Refused:
    """The refusal of an answer (to the page or request `ref`) given after the activation
    closed (or was suspended), told in the person's language: what became of their answer. The
    close is dated: a late answer may come days after it."""
    log.info("%s answered %s after %s was %s", who, ref, activation.ref, activation.status)
    since = activation.closed_at
    zone = load_zone(timezone)
    told = renderer.render(
        template,
        lang=language,
        ref=ref,
        activation=activation,
        status=activation.status,
        since=format_local_utc(since, zone, with_date=True, lang=language) if since else None,
    )
    return Refused(told, activation)


def timer_prefix(activation_id: int) -> str:
    """Every timer of an activation has a key starting with this, so closing can cancel them."""
    return f"a{activation_id}:"


def ensure_not_closed(activation: ActivationRow) -> None:
    if activation.status == ActivationStatus.CLOSED:
        raise UserError(
            f"{activation.ref} is closed; nothing was changed. Open a new activation if needed."
        )


def ensure_open(activation: ActivationRow) -> None:
    ensure_not_closed(activation)
    if activation.status == ActivationStatus.SUSPENDED:
        raise UserError(
            f"{activation.ref} is a suspended exercise (real-world event); nothing was changed."
        )

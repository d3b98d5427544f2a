"""The situation board capability: `board` (a member's link, by DM), `board revoke` (a lead ends
every link), and the board as each viewer sees it.

A link goes only by direct message, framed with the activation's TLP, and is logged (who asked,
when); the answer in the room says where it went, never the link. It opens the board while the
activation is not closed and until a lead revokes the links given so far.

Every viewer of one activation in one time zone shares one rendering (`Shown`), renewed when the
activation has changed since (`bot.runtime.changes`) or a minute has passed (ages, overdue
marks): fifty boards on a wall, a desk and phones during a page to hundreds cost one read and
one rendering per change that they see, not fifty; and never more than a quarter of the bot's
time (`GAP`, `PACE`), so that a storm of acks slows the boards a little, not the bot.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from markupsafe import Markup

from bot.activations.activation import ensure_not_closed
from bot.errors import UserError
from bot.matrix.send import MatrixSendError
from bot.render import Message
from bot.situation_board.links import BoardLink, board_url, read_token
from bot.situation_board.picture import Clock, read_rows, shape
from bot.storage import activation_store
from bot.storage import situation_board_store as store
from bot.storage.models import RUNNING, ActivationRow, ActivationStatus
from bot.timeutil import utcnow

if TYPE_CHECKING:
    from bot.activations.activation import Activations
    from bot.directory.keeper import DirectoryKeeper
    from bot.matrix.send import Messenger
    from bot.reach.direct import DirectMessages
    from bot.render import Renderer
    from bot.runtime.changes import Changes
    from bot.runtime.tasks import Foreground, KeyedLocks
    from bot.settings import Settings
    from bot.storage.db import Database

log = logging.getLogger(__name__)
KEPT = 64  # renderings kept (activation × zone); the oldest goes first
# An open board is rendered again no sooner than `GAP` seconds, nor than `PACE` times its last
# rendering took, after it: however fast an activation changes (an ack storm), its boards take
# a small share of the bot's time (a quarter at most), and show each change a little later when
# the bot is busy, never not at all.
GAP, PACE = 0.5, 3.0


@dataclass(frozen=True)
class Shown:
    """One activation's board in one zone, as rendered after its `version`th change."""

    version: int
    minute: datetime  # rendered in this minute: ages and overdue marks move on with the clock
    epoch: int  # of the links that open it now
    running: bool  # not closed: its links work
    title: str
    html: Markup
    ready_at: float = 0.0  # (monotonic) no rendering again before, whatever changes (`PACE`)

    def usable(self, wanted: int, following: bool) -> bool:
        """Rendered since change `wanted`; or, for a board following its activation, too
        recently to render again (it sees it is behind, and asks again shortly)."""
        return self.version >= wanted or (following and time.monotonic() < self.ready_at)

    def opens(self, link: BoardLink) -> bool:
        """Whether `link` (signature checked) opens this board: given under the current epoch,
        for an activation not closed."""
        return self.running and link.epoch == self.epoch


@dataclass(frozen=True, kw_only=True)
class Boards:
    settings: Settings
    db: Database
    keeper: DirectoryKeeper
    renderer: Renderer
    messenger: Messenger
    locks: KeyedLocks
    changes: Changes
    foreground: Foreground
    activations: Activations
    direct: DirectMessages
    _shown: OrderedDict[tuple[int, str], Shown] = field(
        default_factory=OrderedDict, repr=False, compare=False
    )

    # -- the commands -----------------------------------------------------------------------------

    async def send_link(
        self, room_id: str, ref: str | None, *, sender: str, event_id: str
    ) -> tuple[Message, ActivationRow]:
        """`board`: the link, to the sender by DM; logged. Returns the answer for the room."""
        if not self.settings.public_url:
            raise UserError(
                "Board links are off: this bot has no public web address (ICC_PUBLIC_URL). "
                "Ask its operator to set one."
            )
        activation = await self.activations.resolve(room_id, ref)
        ensure_not_closed(activation)
        person = self.keeper.current.contact_for(sender)
        if person is None or person.matrix_id is None:  # a member always has one
            raise UserError("Only people in the directory, on Matrix, get board links.")
        async with self.db.session() as session:
            epoch = await store.epoch(session, activation.id)
        url = board_url(self.settings, activation.id, epoch)
        message = self.renderer.render(
            "board_link", activation=activation, url=url, prefix=self.settings.command_prefix
        )
        try:
            dm = await self.direct.room_for(person.matrix_id)
            await self.messenger.notice(
                dm, self.activations.frame(message, activation), txn_id=f"board-link-{event_id}"
            )
        except MatrixSendError as exc:
            log.warning("board link for %s to %s failed: %s", activation.ref, sender, exc)
            raise UserError(
                "The board link could not be sent to you by direct message; nothing was sent. "
                "Try again in a moment."
            ) from None
        async with self.db.session() as session:
            await self.activations.add_entry(
                session,
                activation,
                "system.board_link",
                f"Situation board link sent to {person.name} by direct message",
                sender,
                data={"epoch": epoch},
            )
        log.info("board link for %s sent to %s (epoch %d)", activation.ref, sender, epoch)
        return self.renderer.render("board_sent", activation=activation), activation

    async def revoke(
        self, room_id: str, ref: str | None, *, by: str
    ) -> tuple[Message, ActivationRow]:
        """`board revoke`: every link given so far stops working, open boards go blank."""
        activation = await self.activations.resolve(room_id, ref)
        ensure_not_closed(activation)
        async with self.db.session() as session:
            await activation_store.lock_activation(session, activation.id)
            epoch = await store.revoke(session, activation.id, by, utcnow())
            await self.activations.add_entry(
                session,
                activation,
                "system.board_revoke",
                "Every situation board link revoked; open boards stop showing the activation",
                by,
                data={"epoch": epoch},
            )
        log.info("board links of %s revoked by %s (epoch %d)", activation.ref, by, epoch)
        message = self.renderer.render(
            "board_revoked", activation=activation, prefix=self.settings.command_prefix
        )
        return message, activation

    async def console_links(self) -> list[tuple[str, str]]:
        """(ref, link) for each activation not closed, for the operator's console (`icc-bot
        demo` prints them); each logged as given to the operator."""
        if not self.settings.public_url:
            return []
        async with self.db.session() as session:
            running = await activation_store.by_status(session, RUNNING)
            epochs = {a.id: await store.epoch(session, a.id) for a in running}
        given = []
        for activation in running:
            url = board_url(self.settings, activation.id, epochs[activation.id])
            assert url is not None  # links are on
            await self.activations.note(
                activation,
                "system.board_link",
                "Situation board link given to the operator on the bot's console",
                data={"epoch": epochs[activation.id]},
            )
            given.append((activation.ref, url))
        return given

    # -- the board --------------------------------------------------------------------------------

    def link(self, token: str) -> BoardLink | None:
        """What a token names, if the bot made it (whether it still opens the board is the
        board's to say: `Shown.opens`)."""
        return read_token(self.settings, token)

    async def shown(
        self, activation_id: int, zone: ZoneInfo, *, following: bool = False
    ) -> Shown | None:
        """The activation's board in `zone`, rendered since its latest change (or shared with
        whoever rendered it since); None for an activation that does not exist. `following`:
        for a board already open, which may get the last rendering a moment longer while the
        bot is busy (`PACE`), and lets the commands in flight finish first (`Foreground`); a
        board that opens gets the activation as it stands."""
        if following:
            await self.foreground.after()
        wanted = self.changes.version(activation_id)
        minute = utcnow().replace(second=0, microsecond=0)
        key = (activation_id, zone.key)
        async with self.locks(f"situation-board:{activation_id}:{zone.key}"):
            cached = self._shown.get(key)
            if cached is not None and cached.minute == minute and cached.usable(wanted, following):
                return cached
            version = self.changes.version(activation_id)  # before reading: later ones follow
            began = time.monotonic()
            fresh = await self._render(activation_id, zone, version)
            if fresh is not None:
                took = time.monotonic() - began
                fresh = dataclasses.replace(fresh, ready_at=began + max(GAP, took * (1 + PACE)))
            if fresh is not None:
                self._shown[key] = fresh
                self._shown.move_to_end(key)
                while len(self._shown) > KEPT:
                    self._shown.popitem(last=False)
            return fresh

    async def _render(self, activation_id: int, zone: ZoneInfo, version: int) -> Shown | None:
        now = utcnow()
        async with self.db.session() as session:
            rows = await read_rows(session, activation_id)
        if rows is None:
            return None
        activation = rows.activation
        running = activation.status != ActivationStatus.CLOSED
        minute = now.replace(second=0, microsecond=0)
        title = f"{activation.ref} {activation.title}"
        if not running:  # nothing of it is shown any more
            return Shown(version, minute, rows.epoch, False, title, Markup(""))
        context = shape(
            rows,
            directory=self.keeper.current,
            clock=Clock(zone, now),
            marker=self.settings.exercise_marker,
        )
        html = Markup(self.renderer.page("web_board_main", **context))
        return Shown(version, minute, rows.epoch, True, title, html)

    def zones(self, chosen: ZoneInfo) -> list[str]:
        """The zones the viewer may pick: the bot's, UTC, every zone the directory's people
        live in, and the one chosen."""
        found = {self.settings.timezone.key, "UTC", chosen.key}
        found |= {c.timezone for c in self.keeper.current.contacts.values()}
        return sorted(found)

"""The bot's direct-message rooms: one per person, created on first use and reused.

Pages and input requests both reach people here, so this is the one place that knows which room
that is, creates it (encrypted when the bot encrypts, invite-only, marked direct), and does so
once even when two messages to the same person leave at the same moment.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.directory.model import Contact
from bot.matrix.send import DIRECT_INVITE_POWER, MatrixSendError, NewRoom
from bot.storage import page_store as store
from bot.storage.db import Database
from bot.timeutil import utcnow

if TYPE_CHECKING:
    from bot.directory.keeper import DirectoryKeeper
    from bot.matrix.send import Messenger
    from bot.render import Renderer
    from bot.runtime.tasks import KeyedLocks
    from bot.settings import Settings

log = logging.getLogger(__name__)
Found = TypeVar("Found")

# An answer to an event not (yet) known as one of the bot's messages waits this long in all, step
# by step, while something sent to its author may not be recorded yet (older than the horizon:
# stuck, not in flight).
RECORD_WAIT = (0.5, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, 5.0)
# Rooms created at once for one fan-out. A room is a dozen state events for the homeserver to
# write: a first page to a thousand people asking for a thousand at once stalled Synapse for
# minutes, its clients timed out and retried, and rooms were made twice (bench/README.md).
CREATED_AT_ONCE = 16
RECORD_HORIZON = timedelta(minutes=10)


async def owner_of_answered(
    db: Database,
    find: Callable[[AsyncSession], Awaitable[Found | None]],
    unrecorded: Callable[[AsyncSession], Awaitable[bool]],
) -> Found | None:
    """What `find` says of the bot's message that an answer refers to (whom a page went to, the
    round run a prompt opened), or None if it is none of the bot's.

    A message that left just before a crash has its event recorded only when the command or step
    that sent it runs again after the restart, side by side with the answers read meanwhile: an
    answer to an event not known yet waits while `unrecorded` says something sent to its author
    may still be unrecorded, so that an ack or an input is never dropped for being early.
    """
    for pause in (0.0, *RECORD_WAIT):
        await asyncio.sleep(pause)
        async with db.session() as session:
            owner = await find(session)
            if owner is not None:
                return owner
            if not await unrecorded(session):
                # Nothing left unrecorded; but the record may have landed between the two
                # reads (the re-run that records it runs side by side): look once more.
                return await find(session)
    log.warning("an answer refers to a message that was never recorded as the bot's; ignored")
    return None


DM_NAME = "ICC liaison"


@dataclass(frozen=True, kw_only=True)
class DirectMessages:
    settings: Settings
    db: Database
    keeper: DirectoryKeeper
    renderer: Renderer
    messenger: Messenger
    locks: KeyedLocks
    # Turns at finding or making a direct room, shared by every fan-out: `CREATED_AT_ONCE`.
    turns: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(CREATED_AT_ONCE))

    def snapshot(self, person: Contact, template: str) -> dict[str, str]:
        """Who a message went to, as they were then: the directory may change later, the record
        must not. `template` picks the language (the first of theirs it is written in)."""
        organisation = self.keeper.current.organisations.get(person.organisation)
        return {
            "handle": person.handle,
            "matrix_id": person.key,
            "name": person.name,
            "organisation": organisation.name if organisation else person.organisation,
            "language": self.renderer.language_for(template, person.languages),
            "timezone": person.timezone,
        }

    async def room_for(self, matrix_id: str) -> str:
        """The person's direct room, found or made (invited back if they left it), for
        `CREATED_AT_ONCE` people at a time across all fan-outs."""
        async with self.turns, self.locks(f"dm:{matrix_id}"):
            async with self.db.session() as session:
                known = await store.dm_room(session, matrix_id)
            if known is not None and await self._still_there(known.room_id, matrix_id):
                return known.room_id
            # A crash between creating the room and recording it left a room without a row.
            room_id = self.messenger.room_with(DM_NAME, matrix_id, encrypted=self.settings.e2ee)
            if room_id is not None and (known is None or room_id != known.room_id):
                async with self.db.session() as session:
                    await store.save_dm_room(session, matrix_id, room_id, utcnow())
                return room_id
            room_id = await self.messenger.create_room(
                NewRoom(
                    name=DM_NAME,
                    topic="Pages and requests from the ICC",
                    invite=[matrix_id],
                    admins=[],
                    encrypted=self.settings.e2ee,
                    invite_power=DIRECT_INVITE_POWER,
                    direct=True,
                )
            )
            async with self.db.session() as session:
                await store.save_dm_room(session, matrix_id, room_id, utcnow())
            return room_id

    async def _still_there(self, room_id: str, matrix_id: str) -> bool:
        """A person who left their DM room would never see a page there: invite them back.
        False when that fails too (the room is gone for the bot): a new room is made."""
        if not self.messenger.has_left(room_id, matrix_id):
            return True
        try:
            await self.messenger.invite(room_id, matrix_id)
        except MatrixSendError as exc:
            log.warning("%s left %s and cannot be invited back (%s)", matrix_id, room_id, exc)
            return False
        log.info("%s had left their direct-message room %s; invited again", matrix_id, room_id)
        return True

    async def known_rooms(self, matrix_ids: list[str]) -> dict[str, str]:
        """The direct rooms these people have (one query), but those they have left."""
        async with self.db.session() as session:
            known = await store.dm_rooms(session, matrix_ids)
        return {m: room for m, room in known.items() if not self.messenger.has_left(room, m)}

    async def rooms_for(self, matrix_ids: list[str]) -> dict[str, str]:
        """Everyone's room: the known ones in one query, the missing ones found or made side by
        side (`room_for`). A person whose room cannot be made is left out; the caller reports
        them."""
        known = await self.known_rooms(matrix_ids)
        missing = [m for m in dict.fromkeys(matrix_ids) if m not in known]
        created = await asyncio.gather(*(self.room_for(m) for m in missing), return_exceptions=True)
        known.update({m: r for m, r in zip(missing, created, strict=True) if isinstance(r, str)})
        return known

"""Someone outside the directory in one of the bot's own rooms.

An activation room or a direct-message room holds TLP:AMBER or RED traffic; the messenger already
refuses to send there while an outsider is joined or invited (`RoomNotPrivate`). This tells the
people who can act: the activation's lead for an activation room, the leads of every running
activation for a partner's direct-message room. They remove the person, or add them to the
directory; sending resumes by itself once nobody outside it is left.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.activations.activation import Activations
from bot.directory.roles import Role
from bot.matrix.send import ACTIVATION_INVITE_POWER, DIRECT_INVITE_POWER, Messenger
from bot.reach.direct import DirectMessages
from bot.storage import activation_store, page_store
from bot.storage.db import Database
from bot.storage.models import RUNNING, ActivationStatus

if TYPE_CHECKING:
    from bot.directory.keeper import DirectoryKeeper
    from bot.render import Renderer

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Outsiders:
    db: Database
    keeper: DirectoryKeeper
    renderer: Renderer
    messenger: Messenger
    activations: Activations
    direct: DirectMessages

    async def arrived(self, room_id: str, user_id: str) -> None:
        """`user_id`, not in the directory, joined or was invited to `room_id`."""
        stranger = self.keeper.current.role_of(user_id) is Role.STRANGER
        if not (stranger and self.messenger.is_own_room(room_id)):
            return
        activation = await self.activations.for_room(room_id)
        async with self.db.session() as session:
            owner = None if activation else await page_store.dm_owner(session, room_id)
            running = (
                []
                if activation
                else await activation_store.by_status(session, [ActivationStatus.OPEN])
            )
        if activation is None and owner is None:
            return
        leads = [activation.lead] if activation else sorted({a.lead for a in running})
        log.warning("%s, not in the directory, is in %s; nothing is sent there", user_id, room_id)
        owner_contact = self.keeper.current.contact_for(owner) if owner else None
        message = self.renderer.render(
            "outsider_in_room",
            outsider=user_id,
            ref=activation.ref if activation else None,
            title=activation.title if activation else None,
            owner=owner_contact.name if owner_contact else owner,
            room_id=room_id,
        )
        message = self.activations.frame(message, activation)
        for lead in leads:
            try:
                lead_room = await self.direct.room_for(lead)
                txn_id = f"outsider-{room_id}-{user_id}-{lead}"
                await self.messenger.notice(lead_room, message, txn_id=txn_id)
            except Exception:
                log.exception("could not tell %s about %s in %s", lead, user_id, room_id)


async def tighten_invites(db: Database, messenger: Messenger) -> None:
    """Rooms the bot made before invites were restricted: invites in direct-message rooms
    now need the bot's power, in running activations' rooms a lead's. Once at start."""
    async with db.session() as session:
        direct_rooms = await page_store.all_dm_rooms(session)
        running = await activation_store.by_status(session, RUNNING)
    wanted = {room_id: DIRECT_INVITE_POWER for room_id in direct_rooms}
    wanted |= {a.room_id: ACTIVATION_INVITE_POWER for a in running if a.room_id}
    for room_id, level in wanted.items():
        try:
            await messenger.ensure_invite_power(room_id, level)
        except Exception:
            log.exception("could not restrict invites in %s", room_id)

"""Every message the bot sends goes through here.

nio returns errors as values; this is the one place that turns them into `MatrixSendError`, so no
caller can forget to look. Routine output is `m.notice` (silent by default push rules); pages are
`m.text` with explicit `m.mentions` so that they ring. `m.mentions` is always set, so a notice never
pings anyone by accident.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nio import (
    AsyncClient,
    JoinError,
    MatrixRoom,
    RoomCreateError,
    RoomGetStateEventError,
    RoomInviteError,
    RoomLeaveError,
    RoomPreset,
    RoomPutStateError,
    RoomResolveAliasError,
    RoomSendError,
    UploadError,
)

from bot.matrix.hearing import Hearing
from bot.render import Message

log = logging.getLogger(__name__)


class MatrixSendError(RuntimeError):
    def __init__(self, room_id: str, status: str | None, message: str) -> None:
        super().__init__(f"sending to {room_id} failed: {status or ''} {message}".strip())
        self.room_id = room_id
        self.status = status


class RoomNotPrivate(MatrixSendError):
    """One of the bot's own rooms holds someone outside the directory: nothing is sent there
    (and so no room key reaches their devices) until they are gone."""

    STATUS = "NOT_PRIVATE"

    def __init__(self, room_id: str, outsiders: set[str]) -> None:
        names = ", ".join(sorted(outsiders))
        super().__init__(room_id, self.STATUS, f"{names} in the room, not in the directory")
        self.outsiders = outsiders


@dataclass(frozen=True)
class ReplyTo:
    """Where an answer belongs: as a reply to `event_id`, inside `thread_root`'s thread if any."""

    event_id: str
    thread_root: str | None = None


# Synapse refuses events over 64 KiB (M_TOO_LARGE), envelope and signatures included; in an
# encrypted room the content travels base64-encoded, a third larger. What passes this fits both.
MAX_CONTENT_BYTES = 40_000


def fits_one_event(message: Message) -> bool:
    """Whether `message` can be sent as one event, even into an encrypted room."""
    return len(json.dumps(message_content(message)).encode()) <= MAX_CONTENT_BYTES


def message_content(
    message: Message,
    *,
    msgtype: str = "m.notice",
    reply_to: ReplyTo | None = None,
    mentions: tuple[str, ...] = (),
) -> dict[str, Any]:
    content: dict[str, Any] = {
        "msgtype": msgtype,
        "body": message.body,
        "format": "org.matrix.custom.html",
        "formatted_body": message.html,
        "m.mentions": {"user_ids": list(mentions)} if mentions else {},
    }
    if reply_to is not None and reply_to.thread_root:
        content["m.relates_to"] = {
            "rel_type": "m.thread",
            "event_id": reply_to.thread_root,
            "is_falling_back": False,
            "m.in_reply_to": {"event_id": reply_to.event_id},
        }
    elif reply_to is not None:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to.event_id}}
    return content


# Who may invite into the bot's rooms: in an activation room the lead (100) and the bot; in a
# direct-message room the bot alone. Anyone at 0 inviting a stranger was how a page leaked.
ACTIVATION_INVITE_POWER, DIRECT_INVITE_POWER = 50, 100


@dataclass(frozen=True)
class NewRoom:
    """A room the bot makes: invite-only, `admins` (and the bot) at power 100, inviting at
    `invite_power`; `direct` marks it as a DM in clients."""

    name: str
    topic: str
    invite: list[str]
    admins: list[str]
    encrypted: bool
    invite_power: int
    direct: bool = False


def encryption_state(encrypted: bool) -> list[dict[str, Any]]:
    """The initial state that makes a new room encrypted (Megolm), or none."""
    if not encrypted:
        return []
    algorithm = {"algorithm": "m.megolm.v1.aes-sha2"}
    return [{"type": "m.room.encryption", "state_key": "", "content": algorithm}]


class Messenger:
    """Sends on behalf of the bot. The only holder of the nio client besides the sync loop.

    `trusted` tells whether a Matrix ID is in the directory. A room the bot created (an
    activation room, a direct-message room) is for the directory's people only: while anyone else
    is joined or invited there, every send into it is refused with `RoomNotPrivate`.
    """

    def __init__(self, client: AsyncClient, trusted: Callable[[str], bool] | None = None) -> None:
        self._client = client
        self._trusted = trusted or (lambda _user_id: True)
        self._creators: dict[str, str] = {}  # room → who created it, as the sync showed
        self.direct_rooms: set[str] = set()  # the bot's direct-message rooms, made or recorded
        self.hearing = Hearing()  # which homeservers the sync hears from

    def note_creator(self, room_id: str, creator: str) -> None:
        self._creators[room_id] = creator

    def is_own_room(self, room_id: str) -> bool:
        """Whether the bot created this room (its `m.room.create` event is the bot's)."""
        return self._creators.get(room_id) == self._client.user_id

    def members(self, room_id: str) -> set[str]:
        """Everyone joined or invited, the bot excepted, as the sync knows the room."""
        room = self._client.rooms.get(room_id)
        if room is None:
            return set()
        return (set(room.users) | set(room.invited_users)) - {self._client.user_id}

    def outsiders(self, room_id: str) -> set[str]:
        """Members of the room who are not in the directory."""
        return {user_id for user_id in self.members(room_id) if not self._trusted(user_id)}

    def _check_private(self, room_id: str) -> None:
        if self.is_own_room(room_id) and (outsiders := self.outsiders(room_id)):
            raise RoomNotPrivate(room_id, outsiders)

    async def send(
        self,
        room_id: str,
        content: dict[str, Any],
        *,
        event_type: str = "m.room.message",
        txn_id: str | None = None,
    ) -> str:
        """Send and return the event ID. A stable `txn_id` makes a retried send idempotent:
        the homeserver answers a repeated transaction with the first event instead of a copy."""
        self._check_private(room_id)
        response = await self._client.room_send(
            room_id, event_type, content, tx_id=txn_id, ignore_unverified_devices=True
        )
        if isinstance(response, RoomSendError):
            raise MatrixSendError(room_id, response.status_code, response.message)
        return response.event_id

    async def notice(
        self,
        room_id: str,
        message: Message,
        *,
        reply_to: ReplyTo | None = None,
        txn_id: str | None = None,
    ) -> str:
        content = message_content(message, reply_to=reply_to)
        return await self.send(room_id, content, txn_id=txn_id)

    async def ring(
        self,
        room_id: str,
        message: Message,
        *,
        mentions: tuple[str, ...],
        txn_id: str | None = None,
        thread: str | None = None,
    ) -> str:
        """A message that must ring: `m.text` with the people in `m.mentions` (a page);
        inside the thread of `thread` when given."""
        reply_to = ReplyTo(event_id=thread, thread_root=thread) if thread else None
        content = message_content(message, msgtype="m.text", mentions=mentions, reply_to=reply_to)
        return await self.send(room_id, content, txn_id=txn_id)

    async def react(self, room_id: str, event_id: str, key: str) -> None:
        """A reaction (✅ for "recorded"), for answers that need no words."""
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
        await self.send(room_id, content, event_type="m.reaction", txn_id=f"react-{event_id}")

    async def join(self, room_id: str) -> None:
        response = await self._client.join(room_id)
        if isinstance(response, JoinError):
            raise MatrixSendError(room_id, response.status_code, response.message)

    async def leave(self, room_id: str) -> None:
        """Leave a room, or decline an invite to it."""
        response = await self._client.room_leave(room_id)
        if isinstance(response, RoomLeaveError):
            raise MatrixSendError(room_id, response.status_code, response.message)

    async def create_room(self, room: NewRoom) -> str:
        """An invite-only room with `admins` (and the bot) at power 100, where inviting needs
        `invite_power`; encrypted if asked.

        Admins get their power after creation, not through the creation's power-level override:
        from room version 12 the creator must not be listed there, before it must be.
        """
        response = await self._client.room_create(
            name=room.name,
            topic=room.topic,
            preset=RoomPreset.private_chat,
            invite=room.invite,
            initial_state=encryption_state(room.encrypted),
            is_direct=room.direct,
            power_level_override={"invite": room.invite_power},
        )
        if isinstance(response, RoomCreateError):
            raise MatrixSendError(room.name, response.status_code, response.message)
        self.note_creator(response.room_id, self._client.user_id)
        if room.direct:
            self.direct_rooms.add(response.room_id)
        await self._expect_members(response.room_id, room.invite, new_encrypted_room=room.encrypted)
        for admin in room.admins:
            await self.set_power(response.room_id, admin, 100)
        return response.room_id

    async def edit(
        self, room_id: str, event_id: str, message: Message, *, txn_id: str | None = None
    ) -> str:
        """Replace the text of an earlier message (`m.replace`), e.g. a page's ack board."""
        new = message_content(message)
        content = {
            **new,
            "body": f"* {message.body}",
            "formatted_body": f"* {message.html}",
            "m.new_content": new,
            "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
        }
        return await self.send(room_id, content, txn_id=txn_id)

    async def label_room(self, room_id: str, *, name: str, topic: str) -> None:
        """Set the room's name and topic (what room lists show), where they differ."""
        for event_type, key, value in (
            ("m.room.name", "name", name),
            ("m.room.topic", "topic", topic),
        ):
            response = await self._client.room_put_state(room_id, event_type, {key: value})
            if isinstance(response, RoomPutStateError):
                raise MatrixSendError(room_id, response.status_code, response.message)

    async def set_power(self, room_id: str, user_id: str, level: int) -> None:
        """Give `user_id` power `level` in the room, keeping everyone else's."""
        await self._change_power_levels(
            room_id, lambda content: {"users": {**content.get("users", {}), user_id: level}}
        )

    async def _change_power_levels(
        self, room_id: str, change: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> None:
        """Read the room's power levels, apply `change` (the keys it returns), write them back."""
        current = await self._client.room_get_state_event(room_id, "m.room.power_levels")
        if isinstance(current, RoomGetStateEventError):
            raise MatrixSendError(room_id, current.status_code, current.message)
        content = {**current.content, **change(dict(current.content))}
        response = await self._client.room_put_state(room_id, "m.room.power_levels", content)
        if isinstance(response, RoomPutStateError):
            raise MatrixSendError(room_id, response.status_code, response.message)

    async def invite(self, room_id: str, user_id: str) -> None:
        response = await self._client.room_invite(room_id, user_id)
        if isinstance(response, RoomInviteError) and "already in the room" not in response.message:
            raise MatrixSendError(room_id, response.status_code, response.message)
        await self._expect_members(room_id, [user_id])

    async def _expect_members(
        self, room_id: str, invited: list[str], *, new_encrypted_room: bool = False
    ) -> None:
        """Tell nio who was just invited, before its sync does.

        An encrypted message carries keys only for the members nio knows of. The bot invites and
        then writes at once — a page into the DM room it just created, a welcome into a new
        activation room — and until the sync brings the invite, nio knows neither the room nor
        the invitee: the very page they are woken for would be one they cannot decrypt.
        """
        client = self._client
        if client.olm is None:
            return
        room = client.rooms.get(room_id)
        if room is None and new_encrypted_room:
            room = client.rooms[room_id] = MatrixRoom(room_id, client.user_id, encrypted=True)
            room.add_member(client.user_id, None, None)
        if room is not None and new_encrypted_room and not room.encrypted:
            # The sync met the room before its encryption event: a page sent now would leave
            # in clear text into a room made encrypted (seen under load, test_paging).
            room.encrypted = True
        if new_encrypted_room:
            client.encrypted_rooms.add(room_id)
        if room is None or not room.encrypted:
            return
        added = [u for u in invited if u not in room.users]
        for user_id in added:
            room.add_member(user_id, None, None, invited=True)
        if not added:
            return
        client.olm.update_tracked_users(room)
        client.invalidate_outbound_session(room_id)  # the next message is shared with them too
        if client.should_query_keys:
            await client.keys_query()

    async def resolve_room(self, room: str) -> str:
        """A room ID as it is, or an alias resolved to one."""
        if room.startswith("!"):
            return room
        response = await self._client.room_resolve_alias(room)
        if isinstance(response, RoomResolveAliasError):
            raise MatrixSendError(room, response.status_code, response.message)
        return response.room_id

    def is_joined(self, room_id: str) -> bool:
        return room_id in self._client.rooms

    def room_with(self, name: str, user_id: str, *, encrypted: bool) -> str | None:
        """A room the bot created, called `name`, invite-only, encrypted when asked, with only
        `user_id` (joined or invited) besides the bot, as the sync knows them: how a room created
        just before a crash, whose ID was never recorded, is found again. A room someone else
        made, whatever its name and members, is never taken for one of the bot's."""
        for room_id, room in self._client.rooms.items():
            if (
                self.is_own_room(room_id)
                and room.name == name
                and room.join_rule == "invite"
                and (room.encrypted or not encrypted)
                and self.members(room_id) == {user_id}
            ):
                return room_id
        return None

    async def ensure_invite_power(self, room_id: str, level: int) -> None:
        """Raise who may invite in a room the bot made before invites were restricted."""
        room = self._client.rooms.get(room_id)
        if room is None or not self.is_own_room(room_id):
            return
        if room.power_levels.defaults.invite >= level:
            return
        await self._change_power_levels(room_id, lambda _content: {"invite": level})
        log.info("invites in %s now need power %d", room_id, level)

    def has_left(self, room_id: str, user_id: str) -> bool:
        """True when the sync has shown `user_id` leave (or never be in) a room the bot is in;
        False when they are joined or invited, or when the bot's sync does not know the room yet
        (a room created a moment ago)."""
        room = self._client.rooms.get(room_id)
        return room is not None and user_id not in room.users

    async def send_file(
        self, room_id: str, data: bytes, *, filename: str, mimetype: str, txn_id: str | None = None
    ) -> str:
        """Upload `data` and post it as an `m.file`; encrypted first when the room is."""
        room = self._client.rooms.get(room_id)
        encrypt = bool(room is not None and room.encrypted)
        response, keys = await self._client.upload(
            lambda *_: io.BytesIO(data),
            content_type=mimetype,
            filename=filename,
            encrypt=encrypt,
            filesize=len(data),
        )
        if isinstance(response, UploadError):
            raise MatrixSendError(room_id, response.status_code, response.message)
        content: dict[str, Any] = {
            "msgtype": "m.file",
            "body": filename,
            "filename": filename,
            "info": {"mimetype": mimetype, "size": len(data)},
            "m.mentions": {},
        }
        if encrypt and keys is not None:
            content["file"] = {**keys, "url": response.content_uri}
        else:
            content["url"] = response.content_uri
        return await self.send(room_id, content, txn_id=txn_id)

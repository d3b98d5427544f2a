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

from bot.render import Message

log = logging.getLogger(__name__)


class MatrixSendError(RuntimeError):
    def __init__(self, room_id: str, status: str | None, message: str) -> None:
        super().__init__(f"sending to {room_id} failed: {status or ''} {message}".strip())
        self.room_id = room_id
        self.status = status


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


class Messenger:
    """Sends on behalf of the bot. The only holder of the nio client besides the sync loop."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

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

    async def create_room(
        self,
        *,
        name: str,
        topic: str,
        invite: list[str],
        admins: list[str],
        encrypted: bool,
        direct: bool = False,
    ) -> str:
        """An invite-only room with `admins` (and the bot) at power 100; encrypted if asked.

        Admins get their power after creation, not through the creation's power-level override:
        from room version 12 the creator must not be listed there, before it must be.
        """
        initial_state = (
            [
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            ]
            if encrypted
            else []
        )
        response = await self._client.room_create(
            name=name,
            topic=topic,
            preset=RoomPreset.private_chat,
            invite=invite,
            initial_state=initial_state,
            is_direct=direct,
        )
        if isinstance(response, RoomCreateError):
            raise MatrixSendError(name, response.status_code, response.message)
        await self._expect_members(response.room_id, invite, new_encrypted_room=encrypted)
        for admin in admins:
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

    async def set_power(self, room_id: str, user_id: str, level: int) -> None:
        """Give `user_id` power `level` in the room, keeping everyone else's."""
        current = await self._client.room_get_state_event(room_id, "m.room.power_levels")
        if isinstance(current, RoomGetStateEventError):
            raise MatrixSendError(room_id, current.status_code, current.message)
        content = dict(current.content)
        content["users"] = {**content.get("users", {}), user_id: level}
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
            client.encrypted_rooms.add(room_id)
            room.add_member(client.user_id, None, None)
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

    def room_with(self, name: str, user_id: str) -> str | None:
        """A room of the bot's called `name` with only `user_id` (joined or invited) besides
        the bot, as the sync knows them (every room after the first, full-state, sync): how a
        room created just before a crash, whose ID was never recorded, is found again."""
        for room_id, room in self._client.rooms.items():
            people = (set(room.users) | set(room.invited_users)) - {self._client.user_id}
            if room.name == name and people == {user_id}:
                return room_id
        return None

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

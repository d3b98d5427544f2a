"""Every message the bot sends goes through here.

nio returns errors as values; this is the one place that turns them into `MatrixSendError`, so no
caller can forget to look. Routine output is `m.notice` (silent by default push rules); pages are
`m.text` with explicit `m.mentions` so that they ring. `m.mentions` is always set, so a notice never
pings anyone by accident.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from nio import AsyncClient, JoinError, RoomLeaveError, RoomSendError

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

    async def join(self, room_id: str) -> None:
        response = await self._client.join(room_id)
        if isinstance(response, JoinError):
            raise MatrixSendError(room_id, response.status_code, response.message)

    async def leave(self, room_id: str) -> None:
        """Leave a room, or decline an invite to it."""
        response = await self._client.room_leave(room_id)
        if isinstance(response, RoomLeaveError):
            raise MatrixSendError(room_id, response.status_code, response.message)

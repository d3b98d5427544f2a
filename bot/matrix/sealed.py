"""Encrypted events the bot cannot read yet: kept, tried again as keys arrive, never dropped.

A partner's client sends the room key to the bot's device as a to-device message, and the key
can come after the event it opens: a command sent while the bot was down, a key forwarded only
when asked for. Each such event is recorded in the inbox as `sealed`, in the transaction of the
sync position after it (a restart finds it there), its key is asked for (once per session), and
after every sync the bot tries again. Opened, it is handled like any event of that sync: a
command becomes a pending inbox row (and the usual age rule applies to it); anything else is
done. Still sealed after `wait`, it is marked undecryptable and the room is told.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from nio import AsyncClient, MegolmEvent

from bot.storage.models import InboxEvent, InboxStatus
from bot.timeutil import utcnow

log = logging.getLogger(__name__)

ENCRYPTED = "m.room.encrypted"
KEY_WAIT = timedelta(minutes=2)


@dataclass(frozen=True)
class Sealed:
    room_id: str
    event: MegolmEvent
    sent_at: datetime
    give_up_at: datetime


class SealedEvents:
    def __init__(self, client: AsyncClient, wait: timedelta = KEY_WAIT) -> None:
        self._client = client
        self._wait = wait
        self._waiting: dict[str, Sealed] = {}
        self._asked: set[str] = set()  # sessions whose key was requested

    def __len__(self) -> int:
        return len(self._waiting)

    def keep(self, room_id: str, event: MegolmEvent, received: datetime) -> InboxEvent:
        """The inbox row that keeps an event not decrypted yet."""
        sent_at = datetime.fromtimestamp(event.server_timestamp / 1000, tz=UTC)
        self._hold(Sealed(room_id, event, sent_at, received + self._wait))
        return InboxEvent(
            event_id=event.event_id,
            room_id=room_id,
            sender=event.sender,
            origin_ts=sent_at,
            received_at=received,
            content=event.source,
            event_type=ENCRYPTED,
            status=InboxStatus.SEALED,
        )

    def restore(self, rows: list[InboxEvent]) -> list[InboxEvent]:
        """Wait again for the events a previous run kept; returns the rows that are no longer
        readable as encrypted events (to be marked undecryptable)."""
        broken = []
        for row in rows:
            event = MegolmEvent.from_dict(row.content)
            if not isinstance(event, MegolmEvent):
                broken.append(row)
                continue
            event.room_id = row.room_id
            self._hold(Sealed(row.room_id, event, row.origin_ts, row.received_at + self._wait))
        return broken

    def put_back(self, sealed: list[Sealed]) -> None:
        for one in sealed:
            self._hold(one)

    def waiting(self) -> list[Sealed]:
        return list(self._waiting.values())

    async def ask_for_keys(self) -> None:
        """Ask the sender's devices for each missing session's key, once per session."""
        for sealed in list(self._waiting.values()):
            session = sealed.event.session_id
            if session in self._asked:
                continue
            self._asked.add(session)
            try:
                await self._client.request_room_key(sealed.event)
            except Exception as exc:  # nio refuses a second request for the same session
                log.info("room key request for %s not sent: %s", session, exc)

    def open(self) -> tuple[list[tuple[Sealed, Any]], list[Sealed]]:
        """Try each waiting event with the keys known now: (those opened, with the clear
        event), and (those whose wait is over, given up on)."""
        now = utcnow()
        opened: list[tuple[Sealed, Any]] = []
        given_up: list[Sealed] = []
        for event_id, sealed in list(self._waiting.items()):
            clear = self._decrypted(sealed)
            if clear is not None:
                opened.append((sealed, clear))
            elif now >= sealed.give_up_at:
                given_up.append(sealed)
            else:
                continue
            del self._waiting[event_id]
        return opened, given_up

    def _decrypted(self, sealed: Sealed) -> Any:
        try:
            clear = self._client.decrypt_event(sealed.event)
        except Exception:  # no session yet, or not decryptable at all: wait, then give up
            return None
        return None if isinstance(clear, MegolmEvent) else clear

    def _hold(self, sealed: Sealed) -> None:
        sealed.event.room_id = sealed.room_id
        self._waiting[sealed.event.event_id] = sealed

"""Real Matrix users for the tests: nio clients that send, sync and wait for the bot's answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinError,
    LoginError,
    RoomCreateError,
    RoomSendError,
    SyncError,
)

from bot.matrix.send import encryption_state

EventPredicate = Callable[[dict[str, Any]], bool]


TIMELINE = {"room": {"timeline": {"limit": 100}}}


class Person:
    """One logged-in user. Keeps every timeline event it has seen, per room, in order."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.user_id = client.user_id
        self.seen: dict[str, list[dict[str, Any]]] = {}
        self.invites: set[str] = set()
        self._since: str | None = None

    @classmethod
    async def login(
        cls, base_url: str, user_id: str, password: str, *, store_dir: str | None = None
    ) -> Person:
        """Log in; with `store_dir`, as an end-to-end encrypting client (like Element)."""
        if store_dir is None:
            client = AsyncClient(base_url, user_id)
        else:
            config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False)
            client = AsyncClient(base_url, user_id, store_path=store_dir, config=config)
        response = await client.login(password, device_name="test")
        if isinstance(response, LoginError):
            raise RuntimeError(f"login {user_id}: {response.message}")
        person = cls(client)
        await person.sync(timeout_ms=0)
        return person

    async def close(self) -> None:
        await self.client.close()

    async def sync(self, timeout_ms: int = 500) -> None:
        """Read what is new; up to 100 events a room, where Synapse's default of 10 would leave a
        gap after a burst (a close posts a dozen messages and files at once)."""
        response = await self.client.sync(
            timeout=timeout_ms, since=self._since, sync_filter=TIMELINE
        )
        if isinstance(response, SyncError):
            raise RuntimeError(f"sync failed: {response.message}")
        self._since = response.next_batch
        for room_id, info in response.rooms.join.items():
            self.seen.setdefault(room_id, []).extend(e.source for e in info.timeline.events)
        self.invites |= set(response.rooms.invite)
        if self.client.olm is not None:
            if self.client.should_upload_keys:
                await self.client.keys_upload()
            if self.client.should_query_keys:
                await self.client.keys_query()
            await self.client.send_to_device_messages()

    async def create_room(
        self, *, invite: list[str], name: str = "test room", encrypted: bool = False
    ) -> str:
        response = await self.client.room_create(
            name=name, invite=invite, initial_state=encryption_state(encrypted)
        )
        if isinstance(response, RoomCreateError):
            raise RuntimeError(f"room_create: {response.message}")
        return response.room_id

    async def join(self, room_id: str) -> None:
        """Join, retrying a moment later when the room's server does not know the invite yet:
        over federation an invite reaches the invitee before the inviting server has stored it,
        and a client as quick as a test can ask to join in between."""
        for pause in (0.5, 1.0, 2.0, None):
            response = await self.client.join(room_id)
            if not isinstance(response, JoinError):
                return
            if pause is None or "not invited" not in response.message:
                raise RuntimeError(f"join {room_id}: {response.message}")
            await asyncio.sleep(pause)

    async def send(self, room_id: str, body: str, **extra: Any) -> str:
        content = {"msgtype": "m.text", "body": body, **extra}
        response = await self.client.room_send(
            room_id, "m.room.message", content, ignore_unverified_devices=True
        )
        if isinstance(response, RoomSendError):
            raise RuntimeError(f"send: {response.message}")
        return response.event_id

    def events(self, room_id: str, sender: str | None = None) -> list[dict[str, Any]]:
        return [
            e for e in self.seen.get(room_id, []) if sender is None or e.get("sender") == sender
        ]

    async def wait_for(
        self,
        room_id: str,
        predicate: EventPredicate,
        *,
        timeout: float = 15.0,
        sender: str | None = None,
    ) -> dict[str, Any]:
        """The first event in room (from sender) that satisfies predicate, syncing until then."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events(room_id, sender):
                if predicate(event):
                    return event
            if time.monotonic() > deadline:
                bodies = [e.get("content", {}).get("body") for e in self.events(room_id, sender)]
                raise AssertionError(f"no matching event in {room_id} after {timeout}s: {bodies}")
            await self.sync()

    async def wait_for_reply(
        self, room_id: str, event_id: str, bot_id: str, *, timeout: float = 15.0
    ) -> dict[str, Any]:
        """The bot's answer to `event_id` (a reply, or a message in its thread)."""
        return await self.wait_for(
            room_id, lambda e: replies_to(e) == event_id, sender=bot_id, timeout=timeout
        )

    async def ask(self, room_id: str, text: str, bot_id: str, **extra: Any) -> dict[str, Any]:
        """Send a command and return the bot's answer to it."""
        event_id = await self.send(room_id, text, **extra)
        return await self.wait_for_reply(room_id, event_id, bot_id)

    async def join_invited(self, name: str, timeout: float = 15.0) -> str:
        """Wait for an invite to a room called `name`, join it, return its ID."""
        deadline = time.monotonic() + timeout
        while True:
            for room_id, room in self.client.invited_rooms.items():
                if room.name == name:
                    await self.join(room_id)
                    await self.sync(timeout_ms=0)
                    return room_id
            if time.monotonic() > deadline:
                raise AssertionError(f"no invite to a room called {name!r}")
            await self.sync()

    async def react(self, room_id: str, event_id: str, key: str) -> str:
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
        response = await self.client.room_send(
            room_id, "m.reaction", content, ignore_unverified_devices=True
        )
        if isinstance(response, RoomSendError):
            raise RuntimeError(f"react: {response.message}")
        return response.event_id

    async def wait_for_invite(self, room_id: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while room_id not in self.invites:
            if time.monotonic() > deadline:
                raise AssertionError(f"no invite to {room_id}")
            await self.sync()

    async def quiet_period(self, seconds: float) -> None:
        """Keep syncing for `seconds`, so that anything the bot would still send arrives."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await self.sync(timeout_ms=int(max(0.05, deadline - time.monotonic()) * 1000))
            await asyncio.sleep(0)


def replies_to(event: dict[str, Any]) -> str | None:
    relation = event.get("content", {}).get("m.relates_to") or {}
    return (relation.get("m.in_reply_to") or {}).get("event_id")


def body(event: dict[str, Any]) -> str:
    return str(event.get("content", {}).get("body", ""))

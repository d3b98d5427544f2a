"""A scripted homeserver for the real sync loop: the fast tier's way to feed `bot.matrix.sync`
events of any shape.

`ScriptedClient` is a real nio `AsyncClient` whose `sync` answers, instead of the network, with
the batches a test delivers: each batch is the JSON a homeserver would send, read by nio's own
`SyncResponse.from_dict` and `receive_response` (where a malformed event becomes a `BadEvent`,
as it does from Synapse). Anything else that would reach the network fails the test, except
what the sync loop asks of an unencrypted client (a filter, a room key request).

`deliver(events)` hands one batch over and returns once the loop has recorded and dispatched it
and asks for the next. The bot's own messages (from the recording messenger) come back in the
next batch, as a homeserver sends them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from nio import AsyncClient, SyncResponse, UploadFilterResponse
from nio.events import MegolmEvent

from tests.support.recording import SERVER, Recorded


class ScriptedClient(AsyncClient):
    """An unencrypted nio client whose syncs are the batches of `deliver`."""

    def __init__(self, user_id: str, room_id: str, members: list[str]) -> None:
        super().__init__(f"https://{SERVER}", user_id, device_id="DESKDEVICE")
        self.access_token = "unused"
        self.room_id = room_id
        self._batches: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
        self._delivered = 0  # batches handed over by `deliver`
        self._caught_up = asyncio.Event()  # the loop asks for a batch beyond all of them
        self._served: list[list[dict[str, Any]]] = []
        self._events = 0
        self.key_requests: list[str] = []
        self._first = [
            self.event("m.room.create", members[0], {"creator": members[0]}, state_key=""),
            *(
                self.event("m.room.member", who, {"membership": "join"}, state_key=who)
                for who in [*members, user_id]
            ),
        ]

    def event(self, event_type: str, sender: str, content: Any, **top: Any) -> dict[str, Any]:
        """An event as a homeserver serves it: an ID, a time after every earlier one."""
        self._events += 1
        return {
            "type": event_type,
            "sender": sender,
            "content": content,
            "event_id": f"$hs{self._events}:{SERVER}",
            "origin_server_ts": int(time.time() * 1000) + self._events,
            "unsigned": {},
            **top,
        }

    async def deliver(
        self, events: list[dict[str, Any]], loop: asyncio.Task[Any], timeout: float = 30
    ) -> None:
        """Serve `events` as the next batch; back once the sync `loop` is done with it and asks
        for the next. Fails if the loop ends, or never gets past the batch."""
        self._delivered += 1
        self._caught_up.clear()
        await self._batches.put(events)
        asked = asyncio.ensure_future(self._caught_up.wait())
        try:
            await asyncio.wait({asked, loop}, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            asked.cancel()
        if loop.done():
            raise AssertionError(f"the sync loop ended: {loop.exception()!r}")
        if not self._caught_up.is_set():
            raise AssertionError(f"the sync loop never got past the batch {events!r}"[:3000])

    async def sync(self, *args: Any, since: str | None = None, **kwargs: Any) -> Any:
        """The batch after `since`, as a homeserver answers: the same batch again for the same
        token (a loop that failed to read or record it asks again), a new one when delivered."""
        position = int(since[1:]) if since else 0
        if position >= self._delivered:
            self._caught_up.set()
        if position == len(self._served):
            self._served.append(await self._batches.get())
        events = self._served[position]
        answer = {
            "next_batch": f"s{position + 1}",
            "rooms": {
                "join": {
                    self.room_id: {
                        "timeline": {"events": events, "limited": False, "prev_batch": "p"},
                        "state": {"events": self._first if position == 0 else []},
                    }
                },
                "invite": {},
                "leave": {},
            },
        }
        response = SyncResponse.from_dict(answer)
        await self.receive_response(response)
        return response

    async def upload_filter(self, *args: Any, **kwargs: Any) -> Any:
        return UploadFilterResponse("filter")

    async def request_room_key(self, event: MegolmEvent, tx_id: str | None = None) -> Any:
        event.as_key_request(self.user_id, self.device_id)  # what nio would send, read
        self.key_requests.append(event.session_id)

    async def send(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the scripted homeserver has no network")


def echoed(client: ScriptedClient, sent: list[Recorded]) -> list[dict[str, Any]]:
    """The bot's events, as they come back to it in its next sync."""
    return [
        {
            **client.event(r.event_type, client.user_id, r.content),
            "event_id": r.event_id,
        }
        for r in sent
        if r.event_id is not None and r.room_id == client.room_id
    ]

"""Two homeservers federating on loopback (tests/support/federation.py), and what Synapse
does when the partner's server, B, stops: what a user on A then gets for a message, an
invite and a DM, and how the messages B missed reach it once it is back.

These are facts about Synapse the bot relies on, not about the bot. The few times asserted
are coarse, and are the fact itself: whether a request waits for B at all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from nio import RoomCreateError, RoomInviteError, RoomSendResponse

from tests.support.federation import FederatedPair, SharedRoom, shared_room
from tests.support.matrix_people import body

pytestmark = pytest.mark.synapse

# Synapse tries an invite or a profile query 4 times, 0.5, 1 and 2 s apart (each x 0.8-1.4):
# a call that needs B takes at least 2.8 s when B is down, one that does not takes ms.
RETRIES_TAKE_AT_LEAST = 2.5


@pytest.fixture
async def shared(federated_pair: FederatedPair) -> AsyncIterator[SharedRoom]:
    async with shared_room(federated_pair) as room:
        yield room


def with_id(event_id: str):  # type: ignore[no-untyped-def]
    return lambda event: event.get("event_id") == event_id


async def members(room: SharedRoom, room_id: str) -> dict[str, str]:
    """User ID -> membership in `room_id`, as A's user sees the room's state."""
    state = await room.a_user.client.room_get_state(room_id)
    return {
        event["state_key"]: event["content"]["membership"]
        for event in state.events
        if event["type"] == "m.room.member"
    }


# -- both servers up -------------------------------------------------------------------------------


async def test_a_user_on_b_joins_a_room_made_on_a(shared: SharedRoom) -> None:
    assert (await members(shared, shared.room_id))[shared.b_user.user_id] == "join"


async def test_a_message_sent_on_a_reaches_the_user_on_b(shared: SharedRoom) -> None:
    event_id = await shared.a_user.send(shared.room_id, "from A")
    event = await shared.b_user.wait_for(shared.room_id, with_id(event_id))
    assert body(event) == "from A"


async def test_a_message_sent_on_b_reaches_the_user_on_a(shared: SharedRoom) -> None:
    event_id = await shared.b_user.send(shared.room_id, "from B")
    event = await shared.a_user.wait_for(shared.room_id, with_id(event_id))
    assert body(event) == "from B"


# -- B stopped ----------------------------------------------------------------------------------


async def test_while_b_is_down_a_message_in_the_shared_room_is_sent_at_once(
    federated_pair: FederatedPair, shared: SharedRoom
) -> None:
    await federated_pair.b.down()
    began = time.monotonic()
    response = await shared.a_user.client.room_send(
        shared.room_id, "m.room.message", {"msgtype": "m.text", "body": "B is down"}
    )
    assert isinstance(response, RoomSendResponse), response
    assert time.monotonic() - began < RETRIES_TAKE_AT_LEAST  # measured: ~20 ms


async def test_while_b_is_down_inviting_a_user_of_b_fails_after_seconds_with_502_m_unknown(
    federated_pair: FederatedPair, shared: SharedRoom
) -> None:
    room_id = await shared.a_user.create_room(invite=[], name="new")
    await federated_pair.b.down()
    began = time.monotonic()
    response = await shared.a_user.client.room_invite(room_id, shared.b_other)
    took = time.monotonic() - began
    assert isinstance(response, RoomInviteError), response
    assert response.transport_response is not None
    assert response.transport_response.status == 502
    assert response.status_code == "M_UNKNOWN"
    assert response.message == f"Can't connect to server {federated_pair.b.server_name}"
    assert RETRIES_TAKE_AT_LEAST < took < 30  # measured: 5-6 s
    assert shared.b_other not in await members(shared, room_id)  # no invite on record


async def test_while_b_is_down_creating_a_dm_with_a_user_of_b_fails_with_502_m_unknown(
    federated_pair: FederatedPair, shared: SharedRoom
) -> None:
    await federated_pair.b.down()
    began = time.monotonic()
    response = await shared.a_user.client.room_create(
        name="dm", invite=[shared.b_other], is_direct=True
    )
    took = time.monotonic() - began
    assert isinstance(response, RoomCreateError), response
    assert response.transport_response is not None
    assert response.transport_response.status == 502
    assert response.status_code == "M_UNKNOWN"
    assert response.message == f"Can't connect to server {federated_pair.b.server_name}"
    assert RETRIES_TAKE_AT_LEAST < took < 30  # measured: 5-6 s


async def test_while_b_is_down_a_failed_dm_creation_leaves_a_room_with_its_creator_alone(
    federated_pair: FederatedPair, shared: SharedRoom
) -> None:
    before = set((await shared.a_user.client.joined_rooms()).rooms)  # type: ignore[union-attr]
    await federated_pair.b.down()
    response = await shared.a_user.client.room_create(
        name="dm", invite=[shared.b_other], is_direct=True
    )
    assert isinstance(response, RoomCreateError), response
    after = set((await shared.a_user.client.joined_rooms()).rooms)  # type: ignore[union-attr]
    (left_over,) = after - before
    assert await members(shared, left_over) == {shared.a_user.user_id: "join"}


# -- B back ---------------------------------------------------------------------------------------


async def test_a_message_sent_while_b_was_briefly_down_arrives_by_itself(
    federated_pair: FederatedPair, shared: SharedRoom
) -> None:
    """Back before A gave up (minutes with Synapse's defaults): A's next retry delivers."""
    await federated_pair.b.down()
    event_id = await shared.a_user.send(shared.room_id, "sent while B restarts")
    await federated_pair.b.up()
    await shared.b_user.wait_for(shared.room_id, with_id(event_id), timeout=15)


async def b_back_after_a_gave_up(pair: FederatedPair, room: SharedRoom) -> str:
    """Stop B, send a message on A, wait until A marks B down, start B: the message's ID."""
    await pair.b.down()
    event_id = await room.a_user.send(room.room_id, "sent while B is down")
    await asyncio.to_thread(pair.a.wait_backs_off, pair.b)
    await pair.b.up()
    return event_id


async def test_once_a_gave_up_on_b_a_missed_message_waits_for_the_10_minute_back_off(
    federated_pair: FederatedPair, shared: SharedRoom
) -> None:
    event_id = await b_back_after_a_gave_up(federated_pair, shared)
    await shared.b_user.quiet_period(5)
    assert event_id not in {e["event_id"] for e in shared.b_user.events(shared.room_id)}
    record = await asyncio.to_thread(federated_pair.a.destination, federated_pair.b)
    assert record is not None
    assert record["retry_interval"] == 10 * 60 * 1000


async def test_once_a_gave_up_on_b_a_message_from_b_brings_the_missed_one(
    federated_pair: FederatedPair, shared: SharedRoom
) -> None:
    """B's transaction to A is a signed request: A takes B for up again, and catches it up."""
    event_id = await b_back_after_a_gave_up(federated_pair, shared)
    await shared.b_user.send(shared.room_id, "back")
    await shared.b_user.wait_for(shared.room_id, with_id(event_id), timeout=10)


async def test_once_a_gave_up_on_b_the_admin_api_reset_connection_brings_the_missed_message(
    federated_pair: FederatedPair, shared: SharedRoom
) -> None:
    event_id = await b_back_after_a_gave_up(federated_pair, shared)
    status, _ = await asyncio.to_thread(federated_pair.a.reset_connection, federated_pair.b)
    assert status == 200
    await shared.b_user.wait_for(shared.room_id, with_id(event_id), timeout=10)

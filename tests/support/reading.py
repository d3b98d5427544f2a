"""Reading what the bot said: the page's board as it stands, the type an event has on the
homeserver, whether a message is framed as an exercise, a file it posted."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import urllib.request

from tests.support.cast import Cast
from tests.support.matrix_people import Person, body, replies_to

MARKER = "EXERCISE EXERCISE EXERCISE"  # the default ICC_EXERCISE_MARKER


def board(person: Person, room_id: str, cast: Cast, ref: str) -> str:
    """The board's text as it stands now: the newest edit, or the original."""
    texts = [
        (e["content"].get("m.new_content") or e["content"])["body"]
        for e in person.events(room_id, cast.bot.user_id)
        if (e["content"].get("m.new_content") or e["content"]).get("body", "").split("\n")[1:2]
        and f"{ref} · " in (e["content"].get("m.new_content") or e["content"])["body"]
    ]
    return texts[-1] if texts else ""


async def board_shows(
    person: Person, room_id: str, cast: Cast, ref: str, text: str, timeout: float = 15
) -> str:
    deadline = asyncio.get_running_loop().time() + timeout
    while text not in (current := board(person, room_id, cast, ref)):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"board never showed {text!r}; it says:\n{current}")
        await person.sync()
    return current


async def raw_event_type(person: Person, room_id: str, event_id: str) -> str:
    """The event's type as stored on the homeserver, before any client-side decryption."""
    quoted = [urllib.parse.quote(part, safe="") for part in (room_id, event_id)]
    request = urllib.request.Request(
        f"{person.client.homeserver}/_matrix/client/v3/rooms/{quoted[0]}/event/{quoted[1]}",
        headers={"Authorization": f"Bearer {person.client.access_token}"},
    )
    response = await asyncio.to_thread(urllib.request.urlopen, request, timeout=5)
    return json.loads(response.read())["type"]


def framed_as_exercise(event: dict) -> bool:
    lines = body(event).splitlines()
    html = event["content"].get("formatted_body", "")
    return (
        len(lines) >= 3
        and lines[0] == MARKER
        and lines[-1] == MARKER
        and html.startswith(f"<p><b>{MARKER}</b></p>")
        and html.endswith(f"<p><b>{MARKER}</b></p>")
    )


def answers_to(person: Person, room_id: str, event_id: str, bot_id: str) -> list[dict]:
    return [e for e in person.events(room_id, bot_id) if replies_to(e) == event_id]


async def posted_file(
    person: Person, room_id: str, cast: Cast, name: str, timeout: float = 15
) -> bytes:
    """The bytes of the file called `name` the bot posted in the room, downloaded through the
    person's client as Element would."""
    event = await person.wait_for(
        room_id,
        lambda e: e["content"].get("msgtype") == "m.file" and body(e) == name,
        sender=cast.bot.user_id,
        timeout=timeout,
    )
    response = await person.client.download(mxc=event["content"]["url"])
    data = getattr(response, "body", None)
    assert isinstance(data, bytes), f"{name}: {response}"
    return data

"""A messenger that records instead of sending: the fast tier's Matrix edge.

`RecordingMessenger` is the real `Messenger` with every method that would reach nio replaced: the
content of each message is still built by the real code (`notice`, `ring`, `edit`, `react` are
inherited), rooms the bot made are still private to the directory (`send` checks as the real one
does), and what would have gone to the homeserver is kept as plain `Recorded` data, with stable
fake event and room IDs. A test tells it who is in a room (`set_members`), and who left.

It refuses what the homeserver would refuse, so that a test cannot pass here and fail there: an
event too big for Synapse (M_TOO_LARGE), a send into a room the bot is not in (M_FORBIDDEN), an
alias nobody made. A repeated transaction ID gives back the first event, as the homeserver does.

Nothing falls through to nio: the client it holds answers only `user_id` and fails on anything
else, and `tests/test_fast_tier.py` checks that every method of `Messenger` that touches the
client is overridden here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from bot.matrix.send import MatrixSendError, Messenger, NewRoom

# Synapse refuses an event whose JSON exceeds 65,536 bytes, envelope (sender, room, hashes,
# signatures, prev_events…) included; this much of it is left for the content.
SYNAPSE_MAX_EVENT_BYTES = 65_536
ENVELOPE_BYTES = 1_500
SERVER = "desk.test"


class NoClient:
    """Stands where the nio client would: the bot's user ID, and a failure for anything else."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"RecordingMessenger reached the nio client (`{name}`): override it")


@dataclass
class Recorded:
    """One thing the bot did towards Matrix. `kind` is what: an event (`message`, `edit`,
    `reaction`, `file`) or a room operation (`create_room`, `invite`, `join`, `leave`,
    `set_power`, `invite_power`). A send the homeserver would have refused has its `error`."""

    kind: str
    room_id: str
    event_id: str | None = None
    event_type: str = ""
    content: dict[str, Any] = field(default_factory=dict)
    txn_id: str | None = None
    error: str | None = None
    data: bytes | None = None  # a file's bytes
    user_id: str | None = None  # invite, set_power
    details: dict[str, Any] = field(default_factory=dict)  # create_room's arguments, a level

    @property
    def body(self) -> str:
        return str(self.content.get("body", ""))

    @property
    def html(self) -> str:
        return str(self.content.get("formatted_body", ""))

    @property
    def msgtype(self) -> str | None:
        return self.content.get("msgtype")

    @property
    def relation(self) -> dict[str, Any]:
        relation = self.content.get("m.relates_to")
        return relation if isinstance(relation, dict) else {}

    @property
    def reply_to(self) -> str | None:
        """The event this answers (`m.in_reply_to`), in a thread or not."""
        return (self.relation.get("m.in_reply_to") or {}).get("event_id")

    @property
    def thread_root(self) -> str | None:
        relation = self.relation
        return relation.get("event_id") if relation.get("rel_type") == "m.thread" else None

    @property
    def replaces(self) -> str | None:
        """The event an edit replaces."""
        relation = self.relation
        return relation.get("event_id") if relation.get("rel_type") == "m.replace" else None

    @property
    def key(self) -> str | None:
        """A reaction's key."""
        return self.relation.get("key") if self.kind == "reaction" else None

    @property
    def mentions(self) -> list[str]:
        return list((self.content.get("m.mentions") or {}).get("user_ids", []))

    @property
    def filename(self) -> str | None:
        return self.content.get("filename") if self.kind == "file" else None

    @property
    def mimetype(self) -> str | None:
        return (self.content.get("info") or {}).get("mimetype") if self.kind == "file" else None

    @property
    def text(self) -> str:
        """The text a person reads now: an edit's new text, else the body."""
        new = self.content.get("m.new_content")
        return str(new.get("body", "")) if isinstance(new, dict) else self.body


@dataclass
class DeskRoom:
    room_id: str
    name: str = ""
    encrypted: bool = False
    members: set[str] = field(default_factory=set)  # joined or invited, the bot excepted
    invite_power: int = 0
    direct: bool = False
    bot_joined: bool = True


def kind_of(event_type: str, content: dict[str, Any]) -> str:
    if event_type == "m.reaction":
        return "reaction"
    if content.get("msgtype") == "m.file":
        return "file"
    relation = content.get("m.relates_to")
    if isinstance(relation, dict) and relation.get("rel_type") == "m.replace":
        return "edit"
    return "message"


class RecordingMessenger(Messenger):
    """`Messenger` without a homeserver: records what the bot sends, answers from what a test
    told it about rooms and their members."""

    def __init__(self, user_id: str, trusted: Callable[[str], bool] | None = None) -> None:
        super().__init__(NoClient(user_id), trusted=trusted)
        self.user_id = user_id
        self.recorded: list[Recorded] = []
        self.rooms: dict[str, DeskRoom] = {}
        self.aliases: dict[str, str] = {}
        self.failing: set[str] = set()  # rooms whose sends fail (the homeserver refusing)
        self._transactions: dict[tuple[str, str, str], str] = {}
        self._events = 0
        self._ids = 0

    # -- what a test tells it ------------------------------------------------------------------

    def new_id(self, sigil: str, name: str = "") -> str:
        self._ids += 1
        return f"{sigil}{name or 'x'}{self._ids}:{SERVER}"

    def add_room(
        self,
        room_id: str | None = None,
        *,
        members: tuple[str, ...] | list[str] = (),
        name: str = "",
        creator: str | None = None,
        encrypted: bool = False,
        alias: str | None = None,
    ) -> str:
        """A room someone else made (`creator`), the bot in it, with `members`."""
        room_id = room_id or self.new_id("!", "room")
        self.rooms[room_id] = DeskRoom(room_id, name=name, encrypted=encrypted)
        self.set_members(room_id, *members)
        self.note_creator(room_id, creator or next(iter(members), f"@someone:{SERVER}"))
        if alias:
            self.aliases[alias] = room_id
        return room_id

    def set_members(self, room_id: str, *user_ids: str) -> None:
        """Who is joined or invited in the room now (the bot aside)."""
        self.rooms[room_id].members = set(user_ids) - {self.user_id}

    def add_member(self, room_id: str, user_id: str) -> None:
        self.rooms[room_id].members.add(user_id)

    def remove_member(self, room_id: str, user_id: str) -> None:
        """`user_id` left the room (or was kicked), as the sync would show."""
        self.rooms[room_id].members.discard(user_id)

    # -- what the services read -------------------------------------------------------------------

    def members(self, room_id: str) -> set[str]:
        room = self.rooms.get(room_id)
        return set(room.members) if room is not None else set()

    def is_joined(self, room_id: str) -> bool:
        room = self.rooms.get(room_id)
        return room is not None and room.bot_joined

    def has_left(self, room_id: str, user_id: str) -> bool:
        room = self.rooms.get(room_id)
        return room is not None and user_id not in room.members

    def room_with(self, name: str, user_id: str, *, encrypted: bool) -> str | None:
        for room_id, room in self.rooms.items():
            if (
                self.is_own_room(room_id)
                and room.name == name
                and (room.encrypted or not encrypted)
                and room.members == {user_id}
            ):
                return room_id
        return None

    async def resolve_room(self, room: str) -> str:
        if room.startswith("!"):
            return room
        if room not in self.aliases:
            raise MatrixSendError(room, "M_NOT_FOUND", "Room alias not found")
        return self.aliases[room]

    # -- what it records instead of sending -------------------------------------------------------

    async def send(
        self,
        room_id: str,
        content: dict[str, Any],
        *,
        event_type: str = "m.room.message",
        txn_id: str | None = None,
    ) -> str:
        self._check_private(room_id)
        if txn_id is not None and (room_id, event_type, txn_id) in self._transactions:
            return self._transactions[(room_id, event_type, txn_id)]
        sent = Recorded(
            kind_of(event_type, content), room_id, None, event_type, content, txn_id=txn_id
        )
        self.recorded.append(sent)
        size = len(json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode())
        if size + ENVELOPE_BYTES > SYNAPSE_MAX_EVENT_BYTES:
            sent.error = f"M_TOO_LARGE: {size} bytes of content"
        elif not self.is_joined(room_id):
            sent.error = "M_FORBIDDEN: the bot is not in the room"
        elif room_id in self.failing:
            sent.error = "M_UNKNOWN: refused as the test asked"
        if sent.error is not None:
            status, _, message = sent.error.partition(": ")
            raise MatrixSendError(room_id, status, message)
        self._events += 1
        sent.event_id = f"$desk{self._events}"
        if txn_id is not None:
            self._transactions[(room_id, event_type, txn_id)] = sent.event_id
        return sent.event_id

    async def send_file(
        self, room_id: str, data: bytes, *, filename: str, mimetype: str, txn_id: str | None = None
    ) -> str:
        self._events += 1
        content: dict[str, Any] = {
            "msgtype": "m.file",
            "body": filename,
            "filename": filename,
            "info": {"mimetype": mimetype, "size": len(data)},
            "m.mentions": {},
            "url": f"mxc://{SERVER}/upload{self._events}",
        }
        before = len(self.recorded)
        try:
            return await self.send(room_id, content, txn_id=txn_id)
        finally:
            for sent in self.recorded[before:]:
                sent.data = data

    async def create_room(self, room: NewRoom) -> str:
        room_id = self.new_id("!", "own")
        self.rooms[room_id] = DeskRoom(
            room_id,
            name=room.name,
            encrypted=room.encrypted,
            members=set(room.invite) - {self.user_id},
            invite_power=room.invite_power,
            direct=room.direct,
        )
        self.note_creator(room_id, self.user_id)
        if room.direct:
            self.direct_rooms.add(room_id)
        self.recorded.append(Recorded("create_room", room_id, details=asdict(room)))
        for admin in room.admins:
            await self.set_power(room_id, admin, 100)
        return room_id

    async def label_room(self, room_id: str, *, name: str, topic: str) -> None:
        if room_id in self.rooms:
            self.rooms[room_id].name = name
        self.recorded.append(
            Recorded("label_room", room_id, details={"name": name, "topic": topic})
        )

    async def set_power(self, room_id: str, user_id: str, level: int) -> None:
        self.recorded.append(
            Recorded("set_power", room_id, user_id=user_id, details={"level": level})
        )

    async def ensure_invite_power(self, room_id: str, level: int) -> None:
        room = self.rooms.get(room_id)
        if room is None or not self.is_own_room(room_id) or room.invite_power >= level:
            return
        room.invite_power = level
        self.recorded.append(Recorded("invite_power", room_id, details={"level": level}))

    async def invite(self, room_id: str, user_id: str) -> None:
        if room_id not in self.rooms:
            raise MatrixSendError(room_id, "M_FORBIDDEN", "the bot is not in the room")
        self.rooms[room_id].members.add(user_id)
        self.recorded.append(Recorded("invite", room_id, user_id=user_id))

    async def join(self, room_id: str) -> None:
        room = self.rooms.setdefault(room_id, DeskRoom(room_id))
        room.bot_joined = True
        self.recorded.append(Recorded("join", room_id))

    async def leave(self, room_id: str) -> None:
        room = self.rooms.get(room_id)
        if room is not None:
            room.bot_joined = False
        self.recorded.append(Recorded("leave", room_id))

    async def _change_power_levels(self, room_id: str, change: Any) -> None:
        raise AssertionError("RecordingMessenger: power levels change through set_power")

    async def _expect_members(
        self, room_id: str, invited: list[str], *, new_encrypted_room: bool = False
    ) -> None:
        """Only nio's encryption bookkeeping: nothing to do without a client."""

    # -- reading what was recorded ----------------------------------------------------------------

    def events(self, room_id: str | None = None) -> list[Recorded]:
        """Events sent (not refused), in order; in one room if given."""
        return [
            r
            for r in self.recorded
            if r.event_id is not None and (room_id is None or r.room_id == room_id)
        ]

    def texts(self, room_id: str | None = None) -> list[str]:
        """What people read in the room: every message's text, an edit's new text."""
        return [r.text for r in self.events(room_id) if r.kind in ("message", "edit")]

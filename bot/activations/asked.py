"""What people typed, as the capabilities take it.

`Asked`: what a command asked of a capability that runs for a while — a round, a communication
check: where it was typed, with whom, for how long, by whom, and the event that keys it (so a
replayed command finds what it made instead of making it twice). `Said`: what a person wrote that
is recorded as theirs — a round update, an input — with how it came (a command, a reply, an
edit) and when it was sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.directory.model import Contact


@dataclass(frozen=True)
class Asked:
    room_id: str
    people: list[Contact] | None  # None: the capability's default audience
    window: timedelta
    by: str
    event_id: str
    agenda: str | None = None

    @property
    def named(self) -> list[Contact]:
        """The people, once the capability has settled them (never None by then)."""
        if self.people is None:
            raise ValueError("the audience was not settled")
        return self.people


@dataclass(frozen=True)
class Said:
    sender: str
    text: str
    via: str  # command, reply, thread, edit
    event_id: str
    at: datetime  # when it was sent (the server's timestamp), not when the bot read it

"""Reading the content of an event that anyone could have sent.

Event content is whatever JSON the sender's client (or a stranger's script) put there: the
homeserver checks almost nothing inside it. One `"m.relates_to": "boom"` read with `.get` once
stopped the bot for good, because the sync position never passed the event. Every field the bot
reads goes through here, and a field of the wrong shape reads as absent: a malformed relation is
no relation, a body that is not a string is no text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

THREAD, ANNOTATION, REPLACE = "m.thread", "m.annotation", "m.replace"
REDACTION = "m.room.redaction"


def text_field(content: Any, key: str) -> str:
    """`content[key]` when it is a string, else ''."""
    value = content.get(key) if isinstance(content, dict) else None
    return value if isinstance(value, str) else ""


def _event_id(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Relation:
    """What an event says it relates to, each part present only when well formed."""

    rel_type: str | None = None
    event_id: str | None = None  # the annotated, replaced or thread-root event
    in_reply_to: str | None = None
    key: str | None = None  # a reaction's key

    @property
    def answers(self) -> str | None:
        """The event this one answers: what a reaction annotates, what a reply quotes, or a
        thread's root for a thread message that names no event it replies to."""
        if self.rel_type == ANNOTATION:
            return self.event_id
        if self.in_reply_to is not None:
            return self.in_reply_to
        return self.event_id if self.rel_type == THREAD else None

    @property
    def thread_root(self) -> str | None:
        return self.event_id if self.rel_type == THREAD else None

    @property
    def is_edit(self) -> bool:
        return self.rel_type == REPLACE and self.event_id is not None


def relation_of(content: Any) -> Relation:
    """The event's `m.relates_to`, read defensively."""
    raw = content.get("m.relates_to") if isinstance(content, dict) else None
    if not isinstance(raw, dict):
        return Relation()
    reply = raw.get("m.in_reply_to")
    rel_type = raw.get("rel_type")
    return Relation(
        rel_type=rel_type if isinstance(rel_type, str) else None,
        event_id=_event_id(raw.get("event_id")),
        in_reply_to=_event_id(reply.get("event_id")) if isinstance(reply, dict) else None,
        key=raw.get("key") if isinstance(raw.get("key"), str) else None,
    )


def redaction_content(source: Any) -> dict[str, Any]:
    """A redaction's content, with the event it removes under `redacts` wherever the event put
    it: at the top level before room version 11, inside the content from 11 on (MSC2174; the
    homeserver then sends no top-level copy, and nio cannot parse the event as a redaction).
    A top-level value wins, as the older room versions read it; a `redacts` of the wrong shape
    is passed on as it is, for the reader to find absent."""
    content = source.get("content") if isinstance(source, dict) else None
    content = dict(content) if isinstance(content, dict) else {}
    top = source.get("redacts") if isinstance(source, dict) else None
    if isinstance(top, str):
        content["redacts"] = top
    return content


def without_reply_fallback(body: str) -> str:
    """A reply's own text, without the quote of the original that older clients and bridges put
    before it: the leading lines that start with `>`, and the empty line after them (the
    client-server spec's "stripping the fallback")."""
    lines = body.split("\n")
    quoted = 0
    while quoted < len(lines) and lines[quoted].startswith(">"):
        quoted += 1
    if quoted and quoted < len(lines) and not lines[quoted].strip():
        quoted += 1
    return "\n".join(lines[quoted:]) if quoted else body

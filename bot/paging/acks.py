"""What reads as an acknowledgement when a person answers in their own words: a reaction, a
reply to a page, an SMS. One list for every channel, so that `reçu` acknowledges by SMS as it
does in Matrix; the channels differ only in how they find the page."""

from __future__ import annotations

import re
from dataclasses import dataclass

# An answer to a page without a command: a reaction with one of these.
ACK_REACTIONS = ("✅", "👍", "✔", "☑")
# An answer that opens with one of these acknowledges the page.
ACK_WORDS = {
    *("ack", "acknowledged", "ok", "okay", "received", "roger", "copy", "noted"),
    *("reçu", "recu", "bien reçu", "bien recu", "compris"),
    *("ontvangen", "gezien", "begrepen", "oké"),
    *("erhalten", "empfangen", "verstanden"),
}
WORDS = re.compile(r"[^\W\d_]+")


def is_ack_reaction(key: str) -> bool:
    return any(key.startswith(emoji) for emoji in ACK_REACTIONS)  # skin tones, variation selectors


def ack_words_at_start(words: list[str]) -> int:
    """How many of the first `words` (lower case) make an ack word: 2 for "bien reçu", 1 for
    "ok", 0 when they do not open with one."""
    if len(words) >= 2 and " ".join(words[:2]) in ACK_WORDS:
        return 2
    return 1 if words and words[0] in ACK_WORDS else 0


def says_ack(text: str) -> bool:
    """Whether an answer to a page acknowledges it: it opens with an ack word ("Received",
    "ok thanks", "Reçu, on s'en occupe"), or is only ✅ or 👍."""
    words = WORDS.findall(text.lower())
    if not words:
        return is_ack_reaction(text.strip())
    return ack_words_at_start(words) > 0


@dataclass(frozen=True)
class WrittenAck:
    """An answer written outside Matrix (an SMS, an e-mail) that acknowledges: the page it names
    (its number), or None for the person's newest open page."""

    page: int | None


def read_ack(text: str) -> WrittenAck | None:
    """`ACK 12`, `ack PG-12`, `Reçu 12, on arrive`, `ok`, `👍`: an acknowledgement (of page 12,
    or of the newest open page); anything that does not open with an ack word is none."""
    words = re.findall(r"[^\W\d_]+|\d+", text.lower())
    if not words:
        return WrittenAck(None) if is_ack_reaction(text.strip()) else None
    opening = ack_words_at_start(words)
    if not opening:
        return None
    rest = words[opening:]
    if rest[:1] == ["pg"]:
        rest = rest[1:]
    return WrittenAck(int(rest[0]) if rest and rest[0].isdigit() else None)

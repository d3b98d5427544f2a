"""Board links: `ICC_PUBLIC_URL/board/<activation>.<epoch>.<signature>`.

Signed like the acknowledgement links (`bot.reach.links`), under a key of their own, so that no
token made for one kind of link opens the other. A link carries the epoch of the activation's
links when it was given; `board revoke` moves the epoch on, and the link is good only while its
epoch is the activation's and the activation is not closed (checked where the board is shown).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from bot.reach.links import derived_key, mac
from bot.settings import Settings

LABEL = b"icc-bot situation board link v1"
MAX_TOKEN = 80


@dataclass(frozen=True)
class BoardLink:
    """What a board token says, once its signature is checked."""

    activation_id: int
    epoch: int


def board_token(settings: Settings, activation_id: int, epoch: int) -> str:
    key = derived_key(settings, LABEL)
    return f"{activation_id}.{epoch}.{mac(key, f'board:{activation_id}:{epoch}')}"


def read_token(settings: Settings, token: str) -> BoardLink | None:
    """The activation and epoch a token names; None for a token the bot did not make."""
    parts = token.split(".")
    if (
        len(token) > MAX_TOKEN
        or len(parts) != 3
        or not all(p.isascii() and p.isdigit() for p in parts[:2])
    ):
        return None
    activation_id, epoch = int(parts[0]), int(parts[1])
    expected = board_token(settings, activation_id, epoch)
    return BoardLink(activation_id, epoch) if hmac.compare_digest(expected, token) else None


def _number(text: str) -> bool:
    return text.isascii() and text.isdigit()  # int() refuses other digits (`²`)


def board_url(settings: Settings, activation_id: int, epoch: int) -> str | None:
    """The link to an activation's board, or None when links are off (no ICC_PUBLIC_URL)."""
    if not settings.public_url:
        return None
    return f"{settings.public_url}/board/{board_token(settings, activation_id, epoch)}"

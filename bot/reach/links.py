"""One-time acknowledgement links: `ICC_PUBLIC_URL/ack/<token>`, one per person on a page.

The token is the person's row on the page and an HMAC-SHA256 of it under a key derived from the
bot's own secret (its store key, else its password or access token — what every instance of an
active/standby pair shares, so a link mailed by one is honoured by the other). It carries no
expiry of its own: a link is good while the page can still be acknowledged (its activation is
open, the person has not answered), and used once, since an answer is recorded once.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.settings import Settings
from bot.storage import page_store as store
from bot.storage.models import ActivationRow, ActivationStatus, PageRow, PageTargetRow
from bot.timeutil import utcnow

if TYPE_CHECKING:
    from bot.paging.answers import Answers
    from bot.runtime.tasks import Foreground
    from bot.storage.db import Database

LABEL = b"icc-bot ack link v1"


def derived_key(settings: Settings, label: bytes) -> bytes:
    """The key of one kind of link (`label`), from the bot's own secret: each kind has its own,
    so a token made for one kind (an acknowledgement) never opens another (a situation board)."""
    return _derived(settings.store_key or settings.password or settings.access_token or "", label)


def link_key(settings: Settings) -> bytes:
    return derived_key(settings, LABEL)


@functools.lru_cache(maxsize=8)
def _derived(secret: str, label: bytes) -> bytes:
    """A links' key from the bot's secret, derived once: a page's e-mails each need it."""
    return hmac.new(secret.encode(), label, hashlib.sha256).digest()


def mac(key: bytes, message: str) -> str:
    """The signature of `message` under `key`, as a link carries it (144 bits, URL-safe)."""
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(key: bytes, target_id: int) -> str:
    """The token for a person's row on a page."""
    return f"{target_id}.{mac(key, f'ack:{target_id}')}"


def verify(key: bytes, token: str) -> int | None:
    """The row a token stands for, or None for a token the bot did not make."""
    number, _, _mac = token.partition(".")
    if not (number.isascii() and number.isdigit()) or len(token) > 64:
        return None  # int() refuses other digits (`²`): an answer, not an error
    target_id = int(number)
    return target_id if hmac.compare_digest(sign(key, target_id), token) else None


def ack_url(settings: Settings, target_id: int) -> str | None:
    """The link for a row, or None when links are off (no ICC_PUBLIC_URL)."""
    if not settings.public_url:
        return None
    return f"{settings.public_url}/ack/{sign(link_key(settings), target_id)}"


@dataclass(frozen=True)
class LinkView:
    """What an acknowledgement link stands for, as its page shows it."""

    state: str  # open, answered, closed (the page can no longer be acknowledged)
    row: PageTargetRow
    page: PageRow
    activation: ActivationRow | None


@dataclass(frozen=True, kw_only=True)
class AckLinks:
    """The acknowledgement links' logic: what a token stands for, and the acknowledgement its
    button posts; the web layer (`bot.web`) only speaks HTTP."""

    settings: Settings
    db: Database
    foreground: Foreground
    answers: Answers

    async def view(self, token: str) -> LinkView | None:
        """The person, page and state a token stands for; None for a token the bot did not make
        (or whose row is gone)."""
        target_id = verify(link_key(self.settings), token)
        if target_id is None:
            return None
        async with self.db.session() as session:
            row = await store.target(session, target_id)
            page, activation = await store.page_in(session, row.page_id if row else None)
        if row is None or page is None:
            return None
        return LinkView(_state(row, page, activation), row, page, activation)

    async def acknowledge(self, token: str) -> LinkView | None:
        """The button: the person acknowledges, once — a second press, or a press after the
        page was answered or closed, changes nothing and shows where it stands. A press lets
        the commands in flight finish first (`Foreground`): a storm of presses does not keep the
        cell's lead waiting."""
        await self.foreground.after()
        seen = await self.view(token)
        if seen is None or seen.state != "open":
            return seen
        answer = await self.answers.answer(
            seen.row.matrix_id,
            ref=seen.page.ref,
            relates_to=None,
            how="link",
            event_id=f"link-{seen.row.id}",
            at=utcnow(),
        )
        if answer.row.id != seen.row.id:  # the person's other row on the page (as a backup)
            return await self.view(token)
        return LinkView(
            _state(answer.row, answer.page, answer.activation),
            answer.row,
            answer.page,
            answer.activation,
        )


def _state(row: PageTargetRow, page: PageRow, activation: ActivationRow | None) -> str:
    if row.acked_at or row.declined_at:
        return "answered"
    if activation is not None and activation.status != ActivationStatus.OPEN:
        return "closed"
    if page.kind == "check" and utcnow() >= row.deadline:
        return "closed"
    return "open"

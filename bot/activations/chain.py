"""The logbook's chain: append-only, numbered, hash-chained entries.

Every entry keeps when it happened (`occurred_at`, which the author may give) apart from when it
was written down (`recorded_at`), and carries the SHA-256 of its predecessor, so that an export
can be checked line by line: `icc-bot logbook verify <ref>` recomputes the chain and names the
first entry that does not match. A correction is a new entry pointing at the old one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage import activation_store as store
from bot.storage.models import ActivationRow, LogEntryRow
from bot.timeutil import utcnow

GENESIS = "0" * 64
CHAIN_TAILS = "icc_chain_tails"  # session.info: activation id → (seq, hash) of its last entry

# Kinds written by people with `log`; everything the bot records itself starts with "system.".
PERSON_KINDS = ("info", "decision", "action", "correction")


def entry_hash(activation_ref: str, entry: LogEntryRow) -> str:
    """SHA-256 over the entry's content and its predecessor's hash, in a canonical form."""
    canonical = json.dumps(
        {
            "activation": activation_ref,
            "seq": entry.seq,
            "kind": entry.kind,
            "text": entry.text,
            "author": entry.author,
            "author_role": entry.author_role,
            "occurred_at": entry.occurred_at.isoformat(),
            "recorded_at": entry.recorded_at.isoformat(),
            "corrects_seq": entry.corrects_seq,
            "data": entry.data,
            "prev_hash": entry.prev_hash,
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Draft:
    """An entry about to be written, as its author gives it; the chain adds the rest."""

    kind: str
    text: str
    author: str
    author_role: str
    occurred_at: datetime | None = None
    corrects_seq: int | None = None
    data: dict[str, Any] = field(default_factory=dict)


async def append(
    session: AsyncSession,
    activation: ActivationRow,
    *,
    kind: str,
    text: str,
    author: str,
    author_role: str,
    occurred_at: datetime | None = None,
    corrects_seq: int | None = None,
    data: dict[str, Any] | None = None,
) -> LogEntryRow:
    """Add the next entry."""
    draft = Draft(kind, text, author, author_role, occurred_at, corrects_seq, data or {})
    (entry,) = await _chained(session, activation, [draft])
    session.add(entry)
    await session.flush()
    return entry


async def append_many(
    session: AsyncSession, activation: ActivationRow, drafts: list[Draft]
) -> None:
    """Add several entries, in order, each chained onto the one before: one lock, one read and
    one insert for all (an escalation records every person of a page at once)."""
    if drafts:
        await store.add_log_entries(session, await _chained(session, activation, drafts))


async def _chained(
    session: AsyncSession, activation: ActivationRow, drafts: list[Draft]
) -> list[LogEntryRow]:
    """The entries for `drafts`, numbered and hashed on from the activation's last one. The
    activation row is locked first, so two writers cannot both take the same sequence number
    or chain onto the same predecessor.

    The lock lasts to the end of the transaction, so the chain's end is read once in it and
    kept (`session.info`) for its next entries: a group of acknowledgements written together
    locks and reads once, not once an entry (bench/, the storm)."""
    tails: dict[int, tuple[int, str]] = session.info.setdefault(CHAIN_TAILS, {})
    if activation.id not in tails:
        await store.lock_activation(session, activation.id)
        tails[activation.id] = await store.last_log_entry(session, activation.id) or (0, GENESIS)
    seq, prev_hash = tails[activation.id]
    recorded = utcnow()
    entries = []
    for draft in drafts:
        seq += 1
        entry = LogEntryRow(
            activation_id=activation.id,
            seq=seq,
            kind=draft.kind,
            text=draft.text,
            author=draft.author,
            author_role=draft.author_role,
            occurred_at=(draft.occurred_at or recorded).astimezone(UTC),
            recorded_at=recorded,
            corrects_seq=draft.corrects_seq,
            data=draft.data,
            prev_hash=prev_hash,
            hash="",
        )
        entry.hash = prev_hash = entry_hash(activation.ref, entry)
        entries.append(entry)
    tails[activation.id] = (seq, prev_hash)
    return entries


@dataclass(frozen=True)
class Verification:
    entries: int
    first_broken: int | None  # the seq of the first entry whose hash or link does not match
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.first_broken is None


def verify(activation_ref: str, entries: list[LogEntryRow]) -> Verification:
    previous = GENESIS
    for expected_seq, entry in enumerate(entries, start=1):
        if entry.seq != expected_seq:
            return Verification(len(entries), expected_seq, f"entry #{expected_seq} is missing")
        if entry.prev_hash != previous:
            return Verification(len(entries), entry.seq, "does not chain onto the entry before")
        if entry_hash(activation_ref, entry) != entry.hash:
            return Verification(len(entries), entry.seq, "its content does not match its hash")
        previous = entry.hash
    return Verification(len(entries), None)

"""The logbook's guarantees at the database level, on SQLite and PostgreSQL: append-only, and a
hash chain that names the first tampered entry."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

import pytest
import sqlalchemy.exc
from sqlalchemy import text

from bot.activations import chain
from bot.storage import activation_store as store
from bot.storage.db import Database
from bot.storage.models import ActivationRow
from bot.timeutil import utcnow
from tests.support.databases import BACKENDS
from tests.support.processes import run_cli

pytestmark = pytest.mark.parametrize("database_url", BACKENDS, indirect=True)


async def filled(db: Database, entries: int = 5) -> ActivationRow:
    async with db.session() as session:
        activation = ActivationRow(
            ref="ICC-2026-042",
            year=2026,
            number=42,
            title="Test",
            level="monitoring",
            tlp="TLP:AMBER",
            lead="@a:x",
            opened_by_event="$e",
            opened_at=utcnow(),
        )
        session.add(activation)
        await session.flush()
        for n in range(entries):
            await chain.append(
                session,
                activation,
                kind="info",
                text=f"entry {n} with ünïcode & <html>",
                author="@a:x",
                author_role="icc-member",
                occurred_at=utcnow() - timedelta(minutes=n),
            )
    return activation


async def test_chain_verifies_after_a_round_trip(db: Database) -> None:
    activation = await filled(db)
    async with db.session() as session:
        entries = await store.log_entries(session, activation.id)  # type: ignore[arg-type]
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == chain.GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    assert chain.verify(activation.ref, entries).ok


async def test_concurrent_writers_each_get_the_next_entry(db: Database) -> None:
    """Twenty sessions appending at once, the append their first statement (as a note typed by
    two people in the same second): each takes the next number and chains onto the one before.
    On SQLite, whose transaction takes the write lock only at its first write, this failed with
    duplicate sequence numbers before `lock_activation` took the lock itself."""
    activation = await filled(db, entries=1)

    async def note(n: int) -> None:
        async with db.session() as session:
            await chain.append(
                session, activation, kind="note", text=f"note {n}", author="@a:x", author_role="x"
            )

    await asyncio.gather(*(note(n) for n in range(20)))
    async with db.session() as session:
        entries = await store.log_entries(session, activation.id)  # type: ignore[arg-type]
    assert [e.seq for e in entries] == list(range(1, 22))
    assert chain.verify(activation.ref, entries).ok


async def test_a_batch_is_chained_in_order_among_concurrent_writers(db: Database) -> None:
    """An escalation records every person of a page in one write (`append_many`): its entries
    take consecutive numbers in the order given and chain like single ones, while other
    sessions append at the same time."""
    activation = await filled(db, entries=1)

    async def single(n: int) -> None:
        async with db.session() as session:
            await chain.append(
                session, activation, kind="note", text=f"note {n}", author="@a:x", author_role="x"
            )

    async def batch(n: int) -> None:
        drafts = [
            chain.Draft("system.escalation", f"batch {n}.{k}", "@bot:x", "bot", data={"k": k})
            for k in range(5)
        ]
        async with db.session() as session:
            await chain.append_many(session, activation, drafts)

    await asyncio.gather(*(single(n) for n in range(5)), *(batch(n) for n in range(5)))
    async with db.session() as session:
        entries = await store.log_entries(session, activation.id)  # type: ignore[arg-type]
    assert [e.seq for e in entries] == list(range(1, 32))
    assert chain.verify(activation.ref, entries).ok
    for n in range(5):
        mine = [e for e in entries if e.text.startswith(f"batch {n}.")]
        assert [e.text for e in mine] == [f"batch {n}.{k}" for k in range(5)]
        assert [e.seq for e in mine] == list(range(mine[0].seq, mine[0].seq + 5))
        assert [e.data for e in mine] == [{"k": k} for k in range(5)]
        assert all(e.occurred_at == e.recorded_at for e in mine)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE log_entry SET text = 'rewritten' WHERE seq = 2",
        "DELETE FROM log_entry WHERE seq = 2",
    ],
)
async def test_updates_and_deletes_are_refused_by_the_database(
    db: Database, statement: str
) -> None:
    await filled(db)
    with pytest.raises(sqlalchemy.exc.DatabaseError, match="append-only"):
        async with db.engine.begin() as conn:
            await conn.execute(text(statement))


async def test_tampering_behind_the_triggers_is_detected(
    db: Database, database_url: str, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    activation = await filled(db)
    async with db.engine.begin() as conn:  # someone with database access works around the guard
        if db.dialect == "postgresql":
            await conn.execute(text("ALTER TABLE log_entry DISABLE TRIGGER log_entry_append_only"))
        else:
            await conn.execute(text("DROP TRIGGER log_entry_no_update"))
        await conn.execute(text("UPDATE log_entry SET text = 'nothing happened' WHERE seq = 3"))
    async with db.session() as session:
        entries = await store.log_entries(session, activation.id)  # type: ignore[arg-type]
    result = chain.verify(activation.ref, entries)
    assert result.first_broken == 3
    assert "content does not match" in result.reason
    env = {
        "ICC_HOMESERVER": "http://127.0.0.1:1",
        "ICC_USER_ID": "@bot:x",
        "ICC_PASSWORD": "pw-123456",
        "ICC_E2EE": "false",
        "ICC_DATABASE_URL": database_url,
        "ICC_CONFIG_DIR": str(tmp_path),
    }
    cli = run_cli(env, "logbook", "verify", "icc-2026-042")
    assert cli.returncode == 6
    assert "BROKEN at entry #3" in cli.stderr


async def test_exports_escape_user_text(db: Database) -> None:
    import html.parser

    from bot.activations.exports import export_logbook

    activation = await filled(db, entries=2)
    async with db.session() as session:
        entries = await store.log_entries(session, activation.id)  # type: ignore[arg-type]
    page = export_logbook(activation, entries, "html").decode()
    assert "&lt;html&gt;" in page
    assert "<html>" not in page.replace("<!doctype html>", "")
    cells: list[str] = []

    class Cells(html.parser.HTMLParser):
        def handle_data(self, data: str) -> None:
            cells.append(data)

    Cells().feed(page)
    assert "entry 0 with ünïcode & <html>" in cells
    markdown = export_logbook(activation, entries, "md").decode()
    assert "entry 0 with ünïcode & \\<html\\>" in markdown


async def test_csv_export_defuses_spreadsheet_formulas(db: Database) -> None:
    import csv
    import io

    from bot.activations.exports import export_logbook

    activation = await filled(db, entries=1)
    async with db.session() as session:
        await chain.append(
            session,
            activation,
            kind="info",
            text='=HYPERLINK("http://evil.example")',
            author="@a:x",
            author_role="icc-member",
        )
        entries = await store.log_entries(session, activation.id)  # type: ignore[arg-type]
    rows = list(csv.DictReader(io.StringIO(export_logbook(activation, entries, "csv").decode())))
    assert rows[1]["text"] == '\'=HYPERLINK("http://evil.example")'

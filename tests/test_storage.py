"""Storage on SQLite and PostgreSQL: migrations, UTC round trips, inbox, timers, scheduler."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.activations import chain
from bot.activations.activation import make_ref
from bot.inputs.requests import request_states
from bot.runtime.scheduler import Scheduler
from bot.storage import activation_store, bulk, core, input_store, page_store, round_store
from bot.storage.db import Database, SchemaError, alembic_config, migration_graph
from bot.storage.models import (
    ActivationRow,
    InboxEvent,
    InputAnswerRow,
    InputRequestRow,
    Outcome,
    PageRow,
    PageTargetRow,
    RequestTargetRow,
    RoundSeriesRow,
    SitrepRow,
    Timer,
    metadata,
)
from bot.timeutil import utcnow
from tests.support.databases import BACKENDS

pytestmark = pytest.mark.parametrize("database_url", BACKENDS, indirect=True)


async def test_migrations_reach_head_and_match_the_models(database_url: str) -> None:
    database = Database(database_url)
    try:
        with pytest.raises(SchemaError, match="no schema"):
            await database.check_schema()
        await database.upgrade()
        script = ScriptDirectory.from_config(alembic_config())
        head = script.get_current_head()
        assert await database.check_schema() == head
        # The start-up's own reading of the migration files agrees with Alembic's.
        assert migration_graph() == (head, {r.revision for r in script.walk_revisions()})
        await database.upgrade()  # idempotent
        async with database.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), metadata
                )
            )
        assert diff == []
    finally:
        await database.dispose()


async def test_refuses_a_database_from_a_newer_bot(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaError, match="unknown to this version"):
        await db.check_schema()


async def test_datetimes_come_back_as_utc(db: Database) -> None:
    brussels_noon = datetime(2026, 7, 1, 12, 0, tzinfo=UTC).astimezone(ZoneInfo("Europe/Brussels"))
    async with db.session() as session:
        await core.save_join(session, "!r:x", brussels_noon)
    async with db.session() as session:
        joins = await core.load_joins(session)
    assert joins["!r:x"] == datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert joins["!r:x"].tzinfo is not None


async def test_naive_datetimes_are_refused(db: Database) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        async with db.session() as session:
            await core.save_join(session, "!r:x", datetime(2026, 7, 1, 12, 0))


def inbox(event_id: str) -> InboxEvent:
    now = utcnow()
    return InboxEvent(
        event_id=event_id,
        room_id="!r:x",
        sender="@a:x",
        origin_ts=now,
        received_at=now,
        content={"body": "!icc help", "msgtype": "m.text"},
    )


async def test_inbox_deduplicates_and_tracks_status(db: Database) -> None:
    async with db.session() as session:
        fresh = await core.record_inbox(session, [inbox("$1"), inbox("$2")])
        await core.save_sync_state(session, "@bot:x", next_batch="s1", filter_id="f")
    assert [e.event_id for e in fresh] == ["$1", "$2"]
    async with db.session() as session:
        again = await core.record_inbox(session, [inbox("$2"), inbox("$3")])
    assert [e.event_id for e in again] == ["$3"]
    async with db.session() as session:
        await core.finish_inbox(session, "$1", Outcome.DONE)
    async with db.session() as session:
        pending = await core.pending_inbox(session)
        state = await core.load_sync_state(session, "@bot:x")
    assert [e.event_id for e in pending] == ["$2", "$3"]
    assert state is not None
    assert (state.next_batch, state.filter_id) == ("s1", "f")


async def test_rolled_back_batch_leaves_nothing(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.session() as session:
            await core.record_inbox(session, [inbox("$9")])
            await core.save_sync_state(session, "@bot:x", next_batch="s9", filter_id=None)
            raise RuntimeError("crash between inbox and token")
    async with db.session() as session:
        assert await core.pending_inbox(session) == []
        assert await core.load_sync_state(session, "@bot:x") is None


async def test_bulk_insert_and_update_by_id(db: Database) -> None:
    """One statement for many rows: each row's own values are stored (UTC times, JSON), the
    returned columns tell the new rows apart, and an update touches only the rows it names —
    one of many too."""
    due = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    values = [
        {
            "kind": "k",
            "key": f"t{n}",
            "due_at": due + timedelta(minutes=n),
            "payload": {"n": n},
            "created_at": due,
        }
        for n in range(250)
    ]
    async with db.session() as session:
        returned = await bulk.insert_rows(session, Timer, values, Timer.id, Timer.key)
    ids = {row.key: row.id for row in returned}
    assert len(ids) == 250
    assert len(set(ids.values())) == 250
    async with db.session() as session:
        stored = {t.key: t for t in (await session.exec(select(Timer))).all()}
    assert all(stored[f"t{n}"].payload == {"n": n} for n in range(250))
    assert stored["t7"].due_at == due + timedelta(minutes=7)
    assert all(stored[key].id == row_id for key, row_id in ids.items())
    fired = datetime(2026, 7, 1, 13, 0, tzinfo=UTC)
    async with db.session() as session:
        await bulk.update_by_id(
            session,
            Timer,
            {
                ids["t0"]: {"claimed_by": "a"},
                ids["t1"]: {"claimed_by": "b", "fired_at": fired},
                ids["t2"]: {"claimed_by": "c"},
            },
        )
    async with db.session() as session:
        after = {t.key: t for t in (await session.exec(select(Timer))).all()}
    assert [after[f"t{n}"].claimed_by for n in range(4)] == ["a", "b", "c", None]
    assert after["t1"].fired_at == fired
    assert after["t0"].fired_at is None
    assert sum(1 for t in after.values() if t.claimed_by) == 3
    async with db.session() as session:
        await bulk.update_by_id(session, Timer, {ids["t9"]: {"claimed_by": "only"}})
    async with db.session() as session:
        claimed = (await session.exec(select(Timer).where(Timer.claimed_by == "only"))).all()
    assert [t.key for t in claimed] == ["t9"]


async def _timers(db: Database) -> dict[str, Timer]:
    async with db.session() as session:
        rows = await session.exec(select(Timer).order_by(col(Timer.id)))
        return {t.key: t for t in rows.all()}


async def test_timer_claimed_once(db: Database) -> None:
    async with db.session() as session:
        await core.upsert_timers(session, "test", [("k1", utcnow(), {"n": 1})])
        await core.upsert_timers(session, "test", [("k1", utcnow(), {"n": 2})])
        await core.upsert_timers(session, "test", [("k2", utcnow(), {"n": 3})])
    armed = await _timers(db)
    assert sorted(armed) == ["k1", "k2"]  # arming k1 again moved it: no second timer
    timer, other = armed["k1"], armed["k2"]
    ids = [timer.id, other.id]
    async with db.session() as session:
        first = await core.claim_timers(session, ids, "process-1")  # type: ignore[arg-type]
    async with db.session() as session:
        again = await core.claim_timers(session, ids, "process-1")  # type: ignore[arg-type]
    assert [t.payload for t in first] == [{"n": 2}, {"n": 3}]
    assert again == []
    # process-1 died mid-handler: the next process takes the claims over, once.
    async with db.session() as session:
        taken_over = await core.claim_timers(session, ids, "process-2")  # type: ignore[arg-type]
        await core.complete_timers(session, [timer.id])  # type: ignore[list-item]
        await core.release_timers(session, [other.id])  # type: ignore[list-item]
    async with db.session() as session:
        after = await core.claim_timers(session, ids, "process-3")  # type: ignore[arg-type]
    assert [t.key for t in taken_over] == ["k1", "k2"]
    assert [t.key for t in after] == ["k2"]  # completed stays done; released is claimed again


async def test_arming_again_moves_a_waiting_timer_and_leaves_a_fired_one(db: Database) -> None:
    """What an escalation's re-run relies on when it arms every person's next step at once:
    a new timer is inserted, one still waiting is moved (and revived if cancelled), one that
    has fired stays as it fired; only those armed are handed back to be scheduled."""
    now = utcnow()
    later = now + timedelta(hours=1)
    async with db.session() as session:
        keys = ("waiting", "fired", "cancelled")
        await core.upsert_timers(session, "test", [(key, now, {"n": 1}) for key in keys])
    before = await _timers(db)
    async with db.session() as session:
        await core.claim_timers(session, [before["fired"].id], "process-1")  # type: ignore[list-item]
        await core.cancel_timers(session, "cancelled", "test")
    async with db.session() as session:
        armed = await core.upsert_timers(
            session, "test", [(key, later, {"n": 2}) for key in (*keys, "new")]
        )
    after = await _timers(db)
    assert sorted(armed) == sorted(
        (after[key].id, later) for key in ("waiting", "cancelled", "new")
    )
    for key in ("waiting", "cancelled", "new"):
        assert (after[key].due_at, after[key].payload, after[key].cancelled_at) == (
            later,
            {"n": 2},
            None,
        )
    assert (after["fired"].due_at, after["fired"].payload) == (now, {"n": 1})
    assert after["waiting"].id == before["waiting"].id  # moved, not a second timer


class Recorder:
    def __init__(self, fail_times: int = 0) -> None:
        self.fired: list[str] = []
        self.fail_times = fail_times
        self.event = asyncio.Event()

    async def __call__(self, timer: Timer) -> None:
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("homeserver said 500")
        self.fired.append(timer.key)
        self.event.set()


async def test_scheduler_fires_once_and_rearms_after_restart(db: Database) -> None:
    recorder = Recorder()
    first = Scheduler(db)
    first.on("test", recorder)
    await first.start()
    async with db.session() as session:
        await first.arm(session, "test", "soon", utcnow() + timedelta(milliseconds=200))
        await first.arm(session, "test", "later", utcnow() + timedelta(seconds=1))
    await asyncio.wait_for(recorder.event.wait(), 5)
    await first.stop()  # the bot stops before "later" is due

    await asyncio.sleep(1.2)  # "later" falls due while the bot is down
    second = Scheduler(db)
    recorder.event.clear()
    second.on("test", recorder)
    assert await second.start() == 1
    await asyncio.wait_for(recorder.event.wait(), 5)
    await asyncio.sleep(0.3)
    await second.stop()
    assert recorder.fired == ["soon", "later"]


async def test_a_step_interrupted_by_a_crash_runs_again_at_start(db: Database) -> None:
    started = asyncio.Event()

    async def dies_midway(timer: Timer) -> None:
        started.set()
        await asyncio.Event().wait()

    first = Scheduler(db)
    first.on("test", dies_midway)
    await first.start()
    async with db.session() as session:
        await first.arm(session, "test", "step", utcnow())
    await asyncio.wait_for(started.wait(), 5)
    first.kill()  # the process "dies" with the step claimed but not completed

    recorder = Recorder()
    second = Scheduler(db)
    second.on("test", recorder)
    assert await second.start() == 1
    await asyncio.wait_for(recorder.event.wait(), 5)
    await second.stop()
    assert recorder.fired == ["step"]


async def test_timer_armed_in_a_rolled_back_transaction_never_fires(db: Database) -> None:
    recorder = Recorder()
    scheduler = Scheduler(db)
    scheduler.on("test", recorder)
    await scheduler.start()
    with pytest.raises(RuntimeError):
        async with db.session() as session:
            await scheduler.arm(session, "test", "ghost", utcnow())
            raise RuntimeError("the command failed after arming")
    await asyncio.sleep(0.3)
    await scheduler.stop()
    assert recorder.fired == []
    assert scheduler.aps.get_jobs() == []


async def test_failing_handler_is_retried_and_cancel_stops_a_timer(db: Database) -> None:
    recorder = Recorder(fail_times=1)
    scheduler = Scheduler(db, retry_after=timedelta(milliseconds=200))
    scheduler.on("test", recorder)
    await scheduler.start()
    async with db.session() as session:
        await scheduler.arm(session, "test", "flaky", utcnow())
        await scheduler.arm(session, "test", "page:1:stop", utcnow() + timedelta(seconds=1))
    async with db.session() as session:
        assert await scheduler.cancel(session, "page:1:", kind="test") == 1
    await asyncio.wait_for(recorder.event.wait(), 5)
    await asyncio.sleep(1.2)
    await scheduler.stop()
    assert recorder.fired == ["flaky"]


async def test_timers_due_together_reach_a_batch_handler_together_and_retry_together(
    db: Database,
) -> None:
    calls: list[list[str]] = []
    retried = asyncio.Event()

    async def escalate_all(timers: list[Timer]) -> list[Timer]:
        calls.append(sorted(t.key for t in timers))
        if len(calls) == 1:
            raise RuntimeError("homeserver said 500")
        if len(calls) == 2:
            return [t for t in timers if t.key < "s05"]  # one page of the group failed
        retried.set()
        return []

    recorder = Recorder()
    scheduler = Scheduler(db, retry_after=timedelta(milliseconds=200))
    scheduler.on_batch("step", escalate_all)
    scheduler.on("single", recorder)
    await scheduler.start()
    due = utcnow() + timedelta(milliseconds=300)
    keys = sorted(f"s{n:02d}" for n in range(20))
    async with db.session() as session:
        for key in keys:
            await scheduler.arm(session, "step", key, due)
        await scheduler.arm(session, "single", "alone", due)
    await asyncio.wait_for(retried.wait(), 5)
    await asyncio.wait_for(recorder.event.wait(), 5)
    await scheduler.stop()
    # One call for the twenty; the call that raised again, whole; then only what it said failed.
    assert calls == [keys, keys, keys[:5]]
    assert recorder.fired == ["alone"]  # another kind, due at the same moment: its own handler
    async with db.session() as session:
        timers = (await session.exec(select(Timer))).all()
    assert all(t.completed_at is not None for t in timers)


async def _activation(
    session: AsyncSession, number: int, *, opened_by_event: str | None = None
) -> ActivationRow:
    activation = ActivationRow(
        ref=make_ref(exercise=False, year=2026, number=number),
        year=2026,
        number=number,
        title=f"Activation {number}",
        level="monitoring",
        tlp="TLP:AMBER",
        lead="@a:x",
        opened_by_event=opened_by_event or f"$open{number}",
        opened_at=utcnow(),
    )
    session.add(activation)
    await session.flush()
    return activation


async def test_activations_opened_at_once_each_get_their_own_number(db: Database) -> None:
    """Twenty activations opened in the same second, each in one transaction as
    `Activations.open` does it: every one gets the next number. Before `next_number` held the
    numbering, two could take the same one, and the second failed on the unique number."""

    async def open_one(n: int) -> None:
        async with db.session() as session:
            assert await activation_store.by_opening_event(session, f"$open{n}") is None
            number = await activation_store.next_number(session, exercise=False, year=2026)
            await _activation(session, number, opened_by_event=f"$open{n}")

    await asyncio.gather(*(open_one(n) for n in range(20)))
    async with db.session() as session:
        numbers = (await session.exec(select(ActivationRow.number))).all()
    assert sorted(numbers) == list(range(1, 21))


async def test_a_committed_write_to_a_table_is_told_to_whoever_keeps_a_copy_of_it(
    db: Database,
) -> None:
    """`on_written`: after each commit that added, changed or deleted rows of the table, through
    the ORM or a statement; not after a rollback, nor after a write to another table, nor after
    a statement that writes nothing (SQLite's lock on an activation)."""
    told: list[str] = []
    db.on_written(ActivationRow, lambda: told.append("written"))
    async with db.session() as session:
        activation = await _activation(session, 1)
    assert told == ["written"]  # added (ORM)
    async with db.session() as session:
        await activation_store.set_fields(session, activation.id, level="full")
    assert told == ["written"] * 2  # an UPDATE statement
    async with db.session() as session:
        loaded = await activation_store.by_id(session, activation.id)
        assert loaded is not None
        loaded.title = "Renamed"
        session.add(loaded)
    assert told == ["written"] * 3  # changed (ORM)

    with pytest.raises(RuntimeError):
        async with db.session() as session:
            await activation_store.set_fields(session, activation.id, level="monitoring")
            raise RuntimeError("rolled back")
    async with db.session() as session:
        await activation_store.lock_activation(session, activation.id)
        await core.record_inbox(session, [inbox("$other-table")])
        assert await activation_store.by_id(session, activation.id) is not None
    assert told == ["written"] * 3


@contextmanager
def _queries(db: Database) -> Iterator[list[str]]:
    """Every statement sent to the database while the block runs."""
    sent: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        sent.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def _fill(
    session: AsyncSession, activation: ActivationRow, pages: int, tag: str = ""
) -> None:
    """A different number of each, so that no count can stand in for another: `pages` pages of
    two people each, one request more (two people asked, two versions of one answer), one
    schedule in force more again (besides a cancelled one and a single round), one sitrep more
    again (the highest number written first) and one log entry more again, two of them
    decisions."""
    aid: int = activation.id  # type: ignore[assignment]
    now = utcnow()
    person = {"matrix_id": "@p:x", "organisation": "O", "language": "en", "timezone": "UTC"}
    for n in range(pages + 4):
        kind = "decision" if n < 2 else "info"
        await chain.append(
            session, activation, kind=kind, text=f"e{n}", author="@a:x", author_role="lead"
        )
    for n in range(pages + 3):
        session.add(
            SitrepRow(
                activation_id=aid,
                number=n + 1 + len(tag) * 100,
                period_start=now,
                period_end=now,
                prepared_by="@a:x",
                body=f"sitrep {n + 1}",
                created_at=now - timedelta(minutes=n),
            )
        )
    for n in range(pages):
        page = PageRow(
            activation_id=aid,
            sender="@a:x",
            text=f"page {n}",
            ack_window_s=600,
            opened_by_event=f"$page{aid}{tag}-{n}",
            created_at=now,
        )
        session.add(page)
        await session.flush()
        session.add_all(
            PageTargetRow(page_id=page.id, handle=handle, name=handle, deadline=now, **person)
            for handle in ("anna", "ben")
        )
    for n in range(pages + 1):
        request = InputRequestRow(
            activation_id=aid,
            sender="@a:x",
            question=f"q{n}",
            deadline=now,
            opened_by_event=f"$rq{aid}{tag}-{n}",
            created_at=now,
        )
        session.add(request)
        await session.flush()
        asked = [
            RequestTargetRow(request_id=request.id, handle=handle, name=handle, **person)
            for handle in ("anna", "ben")
        ]
        session.add_all(asked)
        await session.flush()
        session.add_all(
            InputAnswerRow(
                request_id=request.id,  # type: ignore[arg-type]
                target_id=asked[0].id,  # type: ignore[arg-type]
                text=f"v{version}",
                version=version,
                answered_at=now + timedelta(seconds=version),
                via="dm",
                event_id=f"$answer{asked[0].id}-{version}",
            )
            for version in (1, 2)
        )
    schedules = [("0 9 * * *", None)] * (pages + 2) + [(None, None), ("0 9 * * *", now)]
    for n, (cron, cancelled) in enumerate(schedules):
        session.add(
            RoundSeriesRow(
                activation_id=aid,
                room_id="!r:x",
                when_text="daily 09:00",
                cron=cron,
                timezone="UTC",
                window_s=600,
                created_by="@a:x",
                opened_by_event=f"$round{aid}{tag}-{n}",
                created_at=now,
                cancelled_at=cancelled,
            )
        )
    await session.flush()


async def test_an_activation_is_read_whole_in_a_fixed_number_of_queries(db: Database) -> None:
    """`status`, sitrep and the record read an activation's pages and requests in a fixed number
    of queries (a page or request each was a round trip each); each count, list and answer is
    its own activation's and no other's."""
    async with db.session() as session:
        quiet = await _activation(session, 1)
        busy = await _activation(session, 2)
        other = await _activation(session, 3)
        await _fill(session, busy, 3)
        await _fill(session, other, 2)
    async with db.session() as session:
        with _queries(db) as queries:
            empty = await activation_store.tally(session, quiet.id)  # type: ignore[arg-type]
            assert await page_store.pages_with_targets(session, quiet.id) == []  # type: ignore[arg-type]
            assert await request_states(session, quiet.id) == []  # type: ignore[arg-type]
            assert len(queries) == 3  # the tally, and one each to find there is nothing
            tally = await activation_store.tally(session, busy.id)  # type: ignore[arg-type]
            pages = await page_store.pages_with_targets(session, busy.id)  # type: ignore[arg-type]
            states = await request_states(session, busy.id)  # type: ignore[arg-type]
            assert len(queries) == 3 + 1 + 2 + 3
        assert empty == activation_store.Tally(0, 0, None, None, 0, 0, 0)
        assert (tally.entries, tally.decisions) == (7, 2)
        assert (tally.pages, tally.requests, tally.scheduled_rounds) == (3, 4, 5)
        sitreps = await activation_store.sitreps(session, busy.id)  # type: ignore[arg-type]
        assert tally.last_sitrep == 6  # the highest number, though not the latest written
        assert tally.last_sitrep_at == sitreps[-1].created_at  # UTC-aware, like every datetime
        assert [(p.text, [t.handle for t in rows]) for p, rows in pages] == [
            (f"page {n}", ["anna", "ben"]) for n in range(3)
        ]
        assert all(t.page_id == p.id for p, rows in pages for t in rows)
        assert [s.request.question for s in states] == ["q0", "q1", "q2", "q3"]
        for state in states:
            assert [t.handle for t in state.targets] == ["anna", "ben"]
            assert {t.request_id for t in state.targets} == {state.request.id}
            assert [a.text for a in state.answers] == ["v1", "v2"]
            assert [a.text for a in state.latest.values()] == ["v2"]
            assert [t.handle for t in state.missing] == ["ben"]
        series = await round_store.scheduled_for_activation(session, busy.id)  # type: ignore[arg-type]
        assert [s.activation_id for s in series] == [busy.id] * 5


async def test_what_is_added_between_an_activations_two_reads_waits_for_the_next(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages and their people (requests and theirs) are two queries, each seeing what is
    committed when it runs: a page added in between has people whose page the first query did
    not see. They are left for the next read; they once made status fail with a KeyError."""
    async with db.session() as session:
        busy = await _activation(session, 1)
        await _fill(session, busy, 1)
    reads = {"pages": page_store.pages_of, "requests": input_store.requests_of}

    def then_more(name: str) -> Any:
        async def read(session: AsyncSession, activation_id: int) -> list[Any]:
            found = await reads[name](session, activation_id)
            async with db.session() as meanwhile:
                await _fill(meanwhile, busy, 1, tag=name)
            return found

        return read

    monkeypatch.setattr(page_store, "pages_of", then_more("pages"))
    monkeypatch.setattr(input_store, "requests_of", then_more("requests"))
    async with db.session() as session:
        pages = await page_store.pages_with_targets(session, busy.id)  # type: ignore[arg-type]
        states = await request_states(session, busy.id)  # type: ignore[arg-type]
    assert [(p.text, len(rows)) for p, rows in pages] == [("page 0", 2)]
    # The two requests from before, and the two added while pages were read.
    assert [(s.request.question, len(s.targets), len(s.answers)) for s in states] == [
        ("q0", 2, 2),
        ("q1", 2, 2),
    ] * 2


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_sqlite_database_and_its_side_files_are_owner_only(
    database_url: str, tmp_path: Path
) -> None:
    """The database holds the cell's pages, answers and logbook: 0600 from its first byte, its
    WAL and shared-memory files too (SQLite gives them the main file's mode), and files left
    0644 (by an older bot, or copied in) are tightened at start. SQLite's question only."""
    if not database_url.startswith("sqlite"):
        pytest.skip("a PostgreSQL database has no file of ours")
    path = tmp_path / "new" / "icc.db"
    first = Database(f"sqlite:///{path}")
    try:
        assert _mode(path) == 0o600  # before SQLite ever opened it
        await first.upgrade()
        async with first.session() as session:
            await core.record_inbox(session, [inbox("$1")])
        files = sorted(path.parent.iterdir())
        assert {f.name: _mode(f) for f in files} == {
            n: 0o600 for n in ("icc.db", "icc.db-shm", "icc.db-wal")
        }
        for file in files:
            file.chmod(0o644)
        second = Database(f"sqlite:///{path}")
        try:
            assert [_mode(f) for f in files] == [0o600] * 3
            async with second.session() as session:
                assert [e.event_id for e in await core.pending_inbox(session)] == ["$1"]
        finally:
            await second.dispose()
    finally:
        await first.dispose()


async def test_a_sqlite_database_keeps_a_write_ahead_log_synced_at_checkpoints(
    database_url: str, tmp_path: Path
) -> None:
    """Every connection to a SQLite file: WAL (readers never wait for the writer), foreign keys
    enforced, and the log synced at checkpoints (NORMAL), not at each commit: a power cut loses
    whole last transactions, never the file's consistency (bot.storage.db says why that is safe
    for the bot). SQLite's question only."""
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL's durability is its server's settings")
    database = Database(f"sqlite:///{tmp_path / 'icc.db'}")
    try:
        async with database.session() as session:
            pragmas = [
                (await session.exec(text(f"PRAGMA {name}"))).scalar()  # type: ignore[call-overload]
                for name in ("journal_mode", "foreign_keys", "synchronous")
            ]
        assert pragmas == ["wal", 1, 1]  # synchronous: 1 is NORMAL, 2 FULL
    finally:
        await database.dispose()

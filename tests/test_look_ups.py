"""Look-ups (`help`, `status`, `pages`…) are answered while the sync batch that brought them is
being recorded (bot/matrix/sync.py, `early`): what that rests on — a look-up writes nothing — and
what it must not break — every command recorded and marked, none answered twice, none overtaken.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from bot.app import answerable_early
from bot.matrix import sync as sync_module
from bot.matrix.sync import SyncLoop
from bot.storage import core
from bot.storage.models import InboxEvent, InboxStatus, Outcome
from bot.timeutil import utcnow
from tests.support.cast import desk_cast
from tests.support.databases import BACKENDS
from tests.support.desk import Desk
from tests.support.homeserver import ScriptedClient
from tests.support.invariants import contents

on_both = pytest.mark.parametrize("database_url", BACKENDS, indirect=True)


@pytest.fixture
def desk_env() -> dict[str, str]:
    """No rate limit: a test here asks many times in a row."""
    return {"ICC_RATE_LIMIT": "100000/1m"}


async def inbox_row(desk: Desk, event_id: str) -> InboxEvent | None:
    async with desk.services.db.session() as session:
        return await core.inbox_event(session, event_id)


@on_both
async def test_every_look_up_writes_nothing(desk: Desk) -> None:
    """Whatever a command declared `reads_only` is asked, bare or as its example, in an
    activation's room or elsewhere, no row of the bot's domain changes: a look-up answered again
    after a crash changes nothing either."""
    lobby = desk.room("lead", "member", "partner")
    _, room, _ = await desk.open_activation("lead", lobby)
    await desk.ask("lead", room, "!icc page partner Meuse at 5.2 m --ack 10m")
    await desk.ask("lead", room, "!icc action Draft the consular advice --owner member")
    await desk.ask("lead", room, "!icc round schedule daily 09:00 --with member")
    await desk.ask("lead", room, "!icc log Pumping modules en route")
    look_ups = [spec for spec in desk.services.registry if spec.reads_only]
    assert {"help", "status", "pages"} <= {spec.name for spec in look_ups}

    before = await contents(desk.services.db)
    for spec in look_ups:
        for where in (room, lobby):
            for typed in (spec.name, spec.example):
                assert await desk.say("lead", where, f"!icc {typed}"), typed
    assert await contents(desk.services.db) == before


@on_both
async def test_a_look_up_answered_early_marks_its_row_once_recorded(desk: Desk) -> None:
    """Its answer goes out at once; its row, recorded meanwhile, is marked only then."""
    room = desk.room("lead", "member")
    item = desk.inbox_event("lead", room, {"msgtype": "m.text", "body": "!icc help"})
    assert item is not None
    assert desk.runner.reads_only(item)
    recorded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    answered = asyncio.Event()
    running = asyncio.create_task(desk.runner.run(item, recorded=recorded, answered=answered))
    await answered.wait()
    await asyncio.sleep(0.05)
    assert not running.done()  # waiting for its row
    assert [r.reply_to for r in desk.messenger.events(room)] == [item.event_id]

    async with desk.services.db.session() as session:
        await core.record_inbox(session, [item])
    recorded.set_result(None)
    await running
    row = await inbox_row(desk, item.event_id)
    assert row is not None
    assert row.status == Outcome.DONE


def test_look_ups_never_overtake_what_was_typed_before_them_in_their_room() -> None:
    def typed(room: str, text: str) -> InboxEvent:
        return InboxEvent(
            event_id=f"${room}-{text}",
            room_id=room,
            sender="@lead:test",
            origin_ts=utcnow(),
            received_at=utcnow(),
            content={"body": text},
            event_type="m.room.message",
        )

    writing = typed("!a", "log x")
    after_it = typed("!a", "status")
    alone = typed("!b", "help")
    behind_a_page = typed("!c", "status")
    batch = [writing, after_it, alone, behind_a_page]
    early = answerable_early(
        batch,
        reads_only=lambda item: not item.content["body"].startswith("log"),
        idle=lambda room: room != "!c",  # a page typed earlier in !c is still being sent
    )
    assert early == [alone]


class Loop:
    """The real sync loop over a scripted homeserver and the desk's database, with an `early`
    that notes what it was given, and whether its rows existed yet."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        cast = desk_cast()
        members = [cast.lead.user_id, cast.member.user_id]
        self.room = desk.messenger.add_room(members=members)
        self.client = ScriptedClient(desk.settings.user_id, self.room, members)
        self.early: list[tuple[str, bool]] = []  # (event ID, its row existed when asked)
        self.recorded: list[asyncio.Future[None]] = []
        self.dispatched: list[str] = []
        self.sync = SyncLoop(
            self.client,
            desk.services.db,
            wants=desk.runner.wants,
            dispatch=lambda items: self.dispatched.extend(i.event_id for i in items),
            early=self._early,
            on_invite=lambda *_: asyncio.sleep(0),
            on_ready=lambda: asyncio.sleep(0),
            timeout_ms=0,
            backoff=(0.01, 0.05),
        )
        self.task: asyncio.Task[None] | None = None

    async def _early(self, items: list[InboxEvent], recorded: asyncio.Future[None]) -> set[str]:
        taken = [item for item in items if self.desk.runner.reads_only(item)]
        for item in taken:
            self.early.append(
                (item.event_id, await inbox_row(self.desk, item.event_id) is not None)
            )
        self.recorded.append(recorded)
        return {item.event_id for item in taken}

    async def start(self) -> None:
        self.task = asyncio.create_task(self.sync.run())
        await self.client.deliver([], self.task)  # the first sync: history

    async def typed(self, *texts: str) -> list[str]:
        assert self.task is not None
        events = [
            self.client.event(
                "m.room.message", desk_cast().lead.user_id, {"msgtype": "m.text", "body": t}
            )
            for t in texts
        ]
        await self.client.deliver(events, self.task)
        return [e["event_id"] for e in events]

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.client.close()


@pytest.fixture
async def scripted(desk: Desk) -> AsyncIterator[Loop]:
    running = Loop(desk)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@on_both
async def test_a_look_up_is_handed_over_before_its_batch_is_recorded(scripted: Loop) -> None:
    """`status` goes to `early` before its row exists; the row is recorded with the batch, the
    future says so, and the look-up is not dispatched a second time. `log` waits for the row."""
    status, log = await scripted.typed("!icc status", "!icc log Pumps en route")
    assert scripted.early == [(status, False)]
    assert all(recorded.done() for recorded in scripted.recorded)
    assert scripted.dispatched == [log]
    row = await inbox_row(scripted.desk, status)
    assert row is not None
    assert row.status == InboxStatus.PENDING


@on_both
async def test_a_look_up_is_answered_once_when_its_batch_is_recorded_only_later(
    scripted: Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database fails as the batch is recorded: the homeserver serves the same batch again,
    and the look-up already answered is neither answered nor dispatched again; its row is
    recorded then, and only then does its future say so."""
    record = core.record_inbox
    failures = [OperationalError("INSERT", {}, Exception("disk I/O error"))]

    async def failing_once(session: Any, events: Any) -> list[InboxEvent]:
        if failures:
            raise failures.pop()
        return await record(session, events)

    monkeypatch.setattr(sync_module.core, "record_inbox", failing_once)
    [help_] = await scripted.typed("!icc help")
    assert scripted.early == [(help_, False)]
    [recorded] = scripted.recorded
    assert recorded.done()
    assert not failures
    assert scripted.dispatched == []
    assert await inbox_row(scripted.desk, help_) is not None


@on_both
async def test_nothing_is_answered_early_after_a_gap(scripted: Loop) -> None:
    """A batch with a gap (a limited timeline) may bring back commands handled before it: all of
    them wait for the batch to be recorded, which tells the new from the old."""
    original = scripted.client.sync

    async def limited(*args: Any, **kwargs: Any) -> Any:
        response = await original(*args, **kwargs)
        for info in response.rooms.join.values():
            info.timeline.limited = True
            info.timeline.prev_batch = None  # nothing to read back: the gap is all there is
        return response

    scripted.client.sync = limited  # type: ignore[method-assign]
    await scripted.typed()  # the sync asked for before the gap
    [help_] = await scripted.typed("!icc help")
    assert scripted.early == []
    assert scripted.dispatched == [help_]


@on_both
async def test_a_failure_to_answer_early_leaves_the_look_up_to_the_usual_way(
    scripted: Loop,
) -> None:
    """Whatever goes wrong in `early`, the sync loop goes on, and the look-up is recorded and
    dispatched as any command is."""

    async def failing(items: list[InboxEvent], recorded: asyncio.Future[None]) -> set[str]:
        raise RuntimeError("a bug in early")

    scripted.sync._early = failing
    [help_] = await scripted.typed("!icc help")
    assert scripted.dispatched == [help_]
    [status] = await scripted.typed("!icc status")
    assert scripted.dispatched == [help_, status]

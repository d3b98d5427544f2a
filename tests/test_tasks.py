"""Background tasks: one room's commands in order, rooms side by side, failures contained."""

from __future__ import annotations

import asyncio
import gc
import inspect
import time
import weakref

from bot.runtime.heap import freeze_heap
from bot.runtime.tasks import (
    Foreground,
    Grouped,
    Paced,
    TaskSupervisor,
    first_ahead,
    leave_slot,
)
from tests.support.desk import Desk
from tests.support.pacing import between_two_runs


async def test_same_lane_runs_in_spawn_order_other_lanes_in_parallel() -> None:
    tasks = TaskSupervisor()
    finished: list[str] = []

    async def work(name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        finished.append(name)

    tasks.spawn("a1", work("a1", 0.15), lane="!a")
    tasks.spawn("a2", work("a2", 0.01), lane="!a")
    tasks.spawn("b1", work("b1", 0.05), lane="!b")
    tasks.spawn("a3", work("a3", 0.0), lane="!a")
    await tasks.drain(5)
    assert finished == ["b1", "a1", "a2", "a3"]
    assert tasks._lanes == {}


async def test_duplicate_names_run_once_and_failures_do_not_spread() -> None:
    tasks = TaskSupervisor()
    ran: list[str] = []

    async def fail() -> None:
        raise RuntimeError("boom")

    async def ok() -> None:
        ran.append("ok")

    assert tasks.spawn("x", fail(), lane="!a")
    assert not tasks.spawn("x", ok(), lane="!a")
    assert tasks.spawn("y", ok(), lane="!a")
    await tasks.drain(5)
    assert ran == ["ok"]


async def test_a_task_waiting_on_the_homeserver_gives_its_slot_to_the_next() -> None:
    """One slot: the first task's answer waits for the homeserver, which only the second task
    lets go; it runs because the first left its slot. Left once, the slot is not freed twice:
    a third and fourth task still run one at a time."""
    tasks = TaskSupervisor(concurrency=1)
    homeserver_took_it = asyncio.Event()
    running: list[str] = []
    overlapped: list[str] = []

    async def answering() -> None:
        leave_slot()
        leave_slot()  # twice: still one slot given back
        await homeserver_took_it.wait()

    async def next_ack() -> None:
        homeserver_took_it.set()

    async def one_at_a_time(name: str) -> None:
        if running:
            overlapped.append(name)
        running.append(name)
        await asyncio.sleep(0.05)
        running.remove(name)

    tasks.spawn("answer", answering())
    tasks.spawn("next", next_ack())
    await asyncio.wait_for(homeserver_took_it.wait(), 2)
    await tasks.drain(5)
    tasks.spawn("third", one_at_a_time("third"))
    tasks.spawn("fourth", one_at_a_time("fourth"))
    await tasks.drain(5)
    assert overlapped == []


async def test_handlers_cancelled_before_they_started_are_closed_not_left_unawaited() -> None:
    """At shutdown, a handler still waiting for its room's lane, or for a slot, never ran: its
    coroutine is closed with its task (no "never awaited" warning), and nothing of it ran."""
    tasks = TaskSupervisor(concurrency=1)
    ran: list[str] = []

    async def handler(name: str) -> None:
        ran.append(name)
        await asyncio.Event().wait()

    running, in_lane, for_slot = handler("running"), handler("in lane"), handler("for slot")
    tasks.spawn("running", running, lane="!a")
    tasks.spawn("in lane", in_lane, lane="!a")
    tasks.spawn("for slot", for_slot, lane="!b")
    await asyncio.sleep(0.05)
    not_begun = handler("not begun")
    tasks.spawn("not begun", not_begun, lane="!c")
    tasks.cancel_all()  # "not begun" before its task's first step
    await tasks.drain(0.05)
    assert ran == ["running"]
    for coro in (running, in_lane, for_slot, not_begun):
        assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
    await asyncio.sleep(0)  # the tasks' done callbacks
    assert tasks._lanes == {}


async def test_the_first_job_runs_alone_until_it_is_done_then_the_rest_together() -> None:
    log: list[str] = []

    async def job(name: str) -> str:
        log.append(f"{name} starts")
        await asyncio.sleep(0.01)  # a homeserver's round trip
        log.append(f"{name} done")
        return name

    results = await first_ahead([job("a"), job("b"), job("c")], most=5)
    assert results == ["a", "b", "c"]
    assert log[:3] == ["a starts", "a done", "b starts"]
    assert log[3] == "c starts", "the rest did not start together"


async def test_a_first_job_slower_than_most_holds_the_rest_back_no_longer() -> None:
    first_may_end = asyncio.Event()
    log: list[str] = []

    async def slow_first() -> str:
        log.append("first starts")
        await first_may_end.wait()
        log.append("first done")
        return "first"

    async def other() -> str:
        log.append("other starts")
        first_may_end.set()
        return "other"

    assert await first_ahead([slow_first(), other()], most=0.05) == ["first", "other"]
    assert log == ["first starts", "other starts", "first done"]


async def test_first_ahead_cancelled_while_the_first_runs_leaves_nothing_unawaited() -> None:
    started = asyncio.Event()

    async def hangs() -> None:
        started.set()
        await asyncio.Event().wait()

    rest = [hangs() for _ in range(2)]
    waiting = asyncio.create_task(first_ahead([hangs(), *rest], most=60))
    await started.wait()
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert all(inspect.getcoroutinestate(job) == inspect.CORO_CLOSED for job in rest)


async def test_drain_cancels_what_outlives_the_deadline() -> None:
    tasks = TaskSupervisor()
    tasks.spawn("stuck", asyncio.Event().wait())
    await tasks.drain(0.05)
    assert not tasks.running("stuck")


async def test_paced_work_runs_at_once_then_folds_what_comes_in_its_pause_into_one_run() -> None:
    paced = Paced(gap=0.2, share=0)
    state = {"changes": 0}
    runs: list[tuple[int, float]] = []

    async def edit() -> None:
        seen = state["changes"]
        await asyncio.sleep(0.02)  # an edit in flight while more changes arrive
        runs.append((seen, time.monotonic()))

    began = time.monotonic()
    for _ in range(50):
        state["changes"] += 1
        paced.soon("board:1", edit)  # returns at once: the answer does not wait for the board
        await asyncio.sleep(0.002)
    await paced.settle()
    assert [seen for seen, _ in runs] == [1, 50]  # the first change at once; then every change
    assert runs[0][1] - began < 0.1
    assert runs[1][1] - runs[0][1] >= 0.2  # no sooner than the pause after the first run
    await paced.stop(1)


async def test_a_paced_run_that_fails_is_logged_and_runs_again_when_next_asked() -> None:
    paced = Paced(gap=0, share=0)
    runs: list[str] = []

    async def failing() -> None:
        runs.append("failed")
        raise RuntimeError("homeserver said no")

    async def edit() -> None:
        runs.append("edited")

    paced.soon("board:2", failing)
    await paced.settle()
    await paced.stop(1)
    paced.soon("board:2", edit)
    await paced.settle()
    assert runs == ["failed", "edited"]
    await paced.stop(1)


async def test_the_pause_after_a_run_is_share_times_what_it_took_when_that_is_longer() -> None:
    paced = Paced(gap=0.01, share=3)
    assert await between_two_runs(paced, "board:3", took=0.1) >= 0.3 + 0.1  # 3 × 0.1 s, a run


async def test_the_pause_is_never_longer_than_most_however_long_the_run_took() -> None:
    """An edit that waited on a busy homeserver does not hold the next back three times that."""
    paced = Paced(gap=0.01, share=3, most=0.15)
    waited = await between_two_runs(paced, "board:4", took=0.3)
    assert 0.15 + 0.3 <= waited < 0.9 + 0.3  # the capped pause, not 3 × 0.3 s


async def test_calls_made_while_a_group_is_written_are_written_together_as_the_next() -> None:
    groups: list[list[int]] = []

    async def write(items: list[int]) -> list[int | Exception]:
        groups.append(items)
        await asyncio.sleep(0.05)  # the transaction
        return [item * 10 for item in items]

    grouped: Grouped[int, int] = Grouped(write)
    first = asyncio.create_task(grouped.submit(1))
    await asyncio.sleep(0.01)  # the first group is being written
    rest = [asyncio.create_task(grouped.submit(n)) for n in range(2, 30)]
    assert [await first, *[await r for r in rest]] == [n * 10 for n in range(1, 30)]
    assert groups == [[1], list(range(2, 30))]


async def test_one_callers_refusal_is_theirs_and_a_failed_write_fails_its_whole_group() -> None:
    async def write(items: list[int]) -> list[int | Exception]:
        if 0 in items:
            raise RuntimeError("database is locked")
        return [ValueError(f"no page {n}") if n < 0 else n for n in items]

    grouped: Grouped[int, int] = Grouped(write)
    ok, refused = grouped.submit(5), grouped.submit(-1)
    outcomes = await asyncio.gather(ok, refused, return_exceptions=True)
    assert outcomes[0] == 5
    assert isinstance(outcomes[1], ValueError)
    failed = await asyncio.gather(grouped.submit(0), grouped.submit(7), return_exceptions=True)
    assert all(isinstance(f, RuntimeError) for f in failed)
    assert await grouped.submit(8) == 8  # the next group is written as usual


async def test_a_task_spawned_first_takes_the_next_slot_before_those_already_waiting() -> None:
    tasks = TaskSupervisor(concurrency=2)
    started: list[str] = []
    release = asyncio.Event()

    async def work(name: str) -> None:
        started.append(name)
        await release.wait()

    for n in range(6):  # two run, four wait: answers in direct rooms
        tasks.spawn(f"ack{n}", work(f"ack{n}"), lane=f"!dm{n}")
    await asyncio.sleep(0.01)
    tasks.spawn("status", work("status"), lane="!activation", first=True)
    await asyncio.sleep(0.01)
    assert started == ["ack0", "ack1"]
    release.set()
    await tasks.drain(1)
    assert started[2] == "status"
    assert sorted(started[3:]) == ["ack2", "ack3", "ack4", "ack5"]


async def test_the_cell_goes_first_in_every_room_partners_answers_in_theirs_wait(
    desk: Desk,
) -> None:
    """What is spawned `first`: everything typed in a room that is not a direct room, and what
    the lead, members and DGs type in their direct rooms; not a partner's answer in theirs."""
    lobby = desk.room("lead", "member", "partner")
    dms = {person: desk.room(person) for person in ("lead", "member", "dg", "partner")}
    direct = set(dms.values())  # the bot's direct rooms with each

    def first(person: str, room_id: str) -> bool:
        item = desk.inbox_event(person, room_id, {"msgtype": "m.text", "body": "!icc status"})
        assert item is not None
        return desk.runner.goes_first(item, direct)

    assert first("partner", lobby)
    assert all(first(person, dms[person]) for person in ("lead", "member", "dg"))
    assert not first("partner", dms["partner"])


def test_the_heap_is_frozen_after_its_garbage_is_collected() -> None:
    """`freeze_heap` (after start-up, after a directory reload): a reference cycle dropped before
    it is freed, not frozen for the life of the process; what lives on is frozen, out of the
    collector's walks."""

    class Node:
        peer: object

    dropped = Node()
    dropped.peer = dropped
    gone = weakref.ref(dropped)
    del dropped
    try:
        freeze_heap()
        assert gone() is None
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


async def test_background_work_lets_a_command_in_flight_finish_first() -> None:
    """A task spawned `first` (a command typed in the cell's rooms) is foreground while it runs:
    background work waiting on `Foreground.after` goes on once it has finished."""
    tasks = TaskSupervisor()
    order: list[str] = []
    command_may_end = asyncio.Event()

    async def command() -> None:
        order.append("command starts")
        await command_may_end.wait()
        order.append("command ends")

    async def background() -> None:
        await tasks.foreground.after()
        order.append("background runs")

    tasks.spawn("status", command(), first=True)
    await asyncio.sleep(0)
    waiting = asyncio.create_task(background())
    await asyncio.sleep(0.05)
    assert order == ["command starts"]
    command_may_end.set()
    await waiting
    assert order == ["command starts", "command ends", "background runs"]


async def test_background_work_waits_for_commands_no_longer_than_its_patience() -> None:
    """However long commands keep coming, background work waits `patience` at most: delayed,
    never starved."""
    foreground = Foreground(patience=0.1)
    with foreground.serving():
        began = time.monotonic()
        await foreground.after()
        assert 0.09 <= time.monotonic() - began < 5


async def test_a_task_not_spawned_first_is_background() -> None:
    """Answers in direct rooms and other tasks not spawned `first` hold nothing back."""
    tasks = TaskSupervisor()
    running = asyncio.Event()

    async def answer() -> None:
        running.set()
        await asyncio.sleep(10)

    tasks.spawn("answer", answer())
    await running.wait()
    async with asyncio.timeout(1):
        await tasks.foreground.after()
    tasks.cancel_all()


async def test_a_paced_run_lets_a_command_in_flight_finish_first() -> None:
    """A board edit asked for while a command runs waits for it (within the patience)."""
    foreground = Foreground(patience=10)
    paced = Paced(gap=0, share=0, foreground=foreground)
    runs: list[str] = []

    async def edit() -> None:
        runs.append("edit")

    with foreground.serving():
        paced.soon("board:1", edit)
        await asyncio.sleep(0.05)
        assert runs == []
    await paced.settle(5)
    assert runs == ["edit"]
    await paced.stop(1)

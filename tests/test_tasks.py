"""Background tasks: one room's commands in order, rooms side by side, failures contained."""

from __future__ import annotations

import asyncio

import pytest

from bot.runtime.tasks import KeyedLocks, TaskSupervisor


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


async def test_drain_cancels_what_outlives_the_deadline() -> None:
    tasks = TaskSupervisor()
    tasks.spawn("stuck", asyncio.Event().wait())
    await tasks.drain(0.05)
    assert not tasks.running("stuck")


async def test_coalesce_folds_calls_that_queue_into_one_run_that_sees_them_all() -> None:
    locks = KeyedLocks()
    state = {"changes": 0}
    runs: list[int] = []

    async def edit() -> None:
        seen = state["changes"]
        await asyncio.sleep(0.05)  # an edit in flight while more changes arrive
        runs.append(seen)

    async def change_then_refresh() -> None:
        state["changes"] += 1
        await locks.coalesce("board:1", edit)

    await asyncio.gather(*(change_then_refresh() for _ in range(50)))
    assert len(runs) == 2  # the first change's edit, then one edit for the 49 that queued
    assert runs[-1] == 50  # the last edit shows every change

    async def failing() -> None:
        raise RuntimeError("homeserver said no")

    with pytest.raises(RuntimeError):
        await locks.coalesce("board:2", failing)
    await locks.coalesce("board:2", edit)  # a failed run covers nobody: the next one runs
    assert len(runs) == 3

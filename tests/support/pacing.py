"""Timing `Paced` (bot.runtime.tasks): what it waits between two runs of one key."""

from __future__ import annotations

import asyncio
import time

from bot.runtime.tasks import Paced


async def between_two_runs(paced: Paced, key: str, took: float) -> float:
    """Seconds from the end of a run that takes `took` to the end of the one asked for while
    it ran (the pause after the first, then the second run itself)."""
    runs: list[float] = []

    async def edit() -> None:
        await asyncio.sleep(took)
        runs.append(time.monotonic())

    paced.soon(key, edit)
    await asyncio.sleep(took / 2)
    paced.soon(key, edit)  # asked during the first run
    await paced.settle()
    await paced.stop(1)
    assert len(runs) == 2, runs
    return runs[1] - runs[0]

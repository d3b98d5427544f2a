"""Rounds (issues 7 and 9) on one local Synapse.

1. Start accuracy: 20 rounds armed for slots 1.5 s apart through the real round machinery; the
   lateness of each prompt is its `origin_server_ts` minus its slot (the homeserver's clock).
   Baseline: a bare nio client that sleeps until its own slots (half-way between the bot's) and
   sends one message each. Goal: p95 ≤ 2 s.
2. Idle cost: the bot's CPU time over an idle period with no schedule, then with 50 schedules
   (none due). Goal: no measurable difference.

Run on its own: .venv/bin/python -m bench.bench_rounds [--quick]
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from pathlib import Path

from bench.harness import (
    Backend,
    Figure,
    Section,
    directory,
    lateness_figures,
    login,
    on_database,
    server_ts,
    standalone,
    start_bot,
)
from bot.activations.asked import Asked
from bot.devserver import DevServer
from bot.rounds.runs import Rounds
from bot.storage import round_store
from bot.timeutil import utcnow

SPACING, SCHEDULES, GOAL = 1.5, 50, 2.0


@on_database("rounds")
async def measure(
    server: DevServer, work: Path, quick: bool, backend: Backend, url: str
) -> Section:
    runs, idle = (5, 5.0) if quick else (20, 20.0)
    lead_id = server.register(backend.user("lead-rounds"), "bench-password-2")
    app, task, bot_id = await start_bot(
        server,
        work,
        directory(lead_id, {}),
        name=backend.user("iccbot-rounds"),
        database_url=url,
    )
    lead = await login(server.base_url, lead_id)
    try:
        room = (await lead.room_create(invite=[bot_id])).room_id
        await asyncio.sleep(1.5)  # the bot accepts the invite
        assert app.services is not None
        rounds = app.services.rounds
        person = app.services.directory.contacts["lead"]
        series = await _series(rounds, room, person, lead_id, "bench", None, "$bench-accuracy")
        start = utcnow() + timedelta(seconds=3)
        slots = [start + timedelta(seconds=SPACING * n) for n in range(runs)]
        async with app.services.db.session() as session:
            for slot in slots:
                await rounds._arm_run(session, series, None, slot)
        bare = [s + timedelta(seconds=SPACING / 2) for s in slots]
        bare_lateness = await _bare(lead, room, bare)
        await asyncio.sleep((slots[-1] - utcnow()).total_seconds() + 3)
        lateness = await _lateness(app, lead, room, series.id, slots)

        # Idle cost: CPU seconds of this process (bot + idle homeserver client) per idle period.
        await asyncio.sleep(5)
        idle_none = await _cpu(idle)
        for n in range(SCHEDULES):
            cron = f"{(7 * n) % 60} {n % 24} * * *"
            await _series(rounds, room, person, lead_id, f"daily {n}", cron, f"$bench-idle-{n}")
        await asyncio.sleep(2)
        idle_fifty = await _cpu(idle)
    finally:
        await lead.close()
        app.stop()
        await task
    return _section(lateness, bare_lateness, idle, idle_none, idle_fifty)


async def _series(rounds: Rounds, room, person, lead_id, when, cron, event_id):  # type: ignore[no-untyped-def]
    asked = Asked(
        room_id=room,
        people=[person],
        window=timedelta(minutes=30),
        by=lead_id,
        event_id=event_id,
    )
    series, _ = await rounds.create(
        "round", None, asked, when=when, cron=cron, timezone="Europe/Brussels"
    )
    return series


async def _bare(client, room: str, slots: list[datetime]) -> list[float]:  # type: ignore[no-untyped-def]
    """A bare client sends one message at each slot; lateness by the homeserver's clock."""
    lateness = []
    for slot in slots:
        await asyncio.sleep(max(0.0, (slot - utcnow()).total_seconds()))
        sent = await client.room_send(
            room, "m.room.message", {"msgtype": "m.notice", "body": "bare timer"}
        )
        lateness.append(await server_ts(client, room, sent.event_id) / 1000 - slot.timestamp())
    return lateness


async def _lateness(app, lead, room: str, series_id: int, slots: list[datetime]) -> list[float]:  # type: ignore[no-untyped-def]
    lateness = []
    async with app.services.db.session() as session:
        for slot in slots:
            run_row = await round_store.run_for_slot(session, series_id, slot)
            if run_row is None or not run_row.prompt_event_id:
                raise RuntimeError(f"no round started for {slot}")
            stamp = await server_ts(lead, room, run_row.prompt_event_id)
            lateness.append(stamp / 1000 - slot.timestamp())
    return lateness


async def _cpu(seconds: float) -> float:
    before = time.process_time()
    await asyncio.sleep(seconds)
    return time.process_time() - before


def _section(
    lateness: list[float], bare: list[float], idle: float, idle_none: float, idle_fifty: float
) -> Section:
    runs = len(lateness)
    figures = [
        *lateness_figures("round start lateness", lateness, bare, "bare client timer", GOAL),
        Figure(
            f"bot CPU while idle {idle:.0f} s with {SCHEDULES} schedules",
            idle_fifty,
            baseline=max(idle_none, 1e-3),
            baseline_name="no schedule (floor 1 ms)",
            goal="no measurable increase",
            met=idle_fifty <= max(idle_none, 1e-3) * 2 + 0.005,
        ),
    ]
    return Section(
        "Scheduler accuracy: rounds",
        f"{runs} rounds armed {SPACING} s apart through the real round machinery (bot in-process); "
        "lateness = the prompt's `origin_server_ts` − its slot. The baseline is a bare nio client "
        "sleeping until its own slots, half-way between the bot's, and sending one message. Idle "
        "CPU is this process's CPU time (bot and an idle client).",
        figures,
        details=[
            "round lateness: " + ", ".join(f"{t:.3f}" for t in lateness) + " s",
            "bare timer lateness: " + ", ".join(f"{t:.3f}" for t in bare) + " s",
            f"idle CPU: {idle_none * 1000:.1f} ms without schedules, "
            f"{idle_fifty * 1000:.1f} ms with {SCHEDULES}",
        ],
        data={"rounds": {"bot": lateness, "bare": bare}},
    )


if __name__ == "__main__":
    standalone(measure)

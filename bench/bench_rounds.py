"""Rounds benchmark (issue 7) on one local Synapse.

1. Start accuracy: 20 rounds armed for slots 1.5 s apart through the real round machinery; the
   lateness of each prompt is its `origin_server_ts` minus its slot (the homeserver's clock).
   Goal: p95 ≤ 2 s.
2. Idle cost: the bot's CPU time over an idle period with no schedule, then with 50 schedules
   (none due). Goal: no measurable difference.

Run: .venv/bin/python -m bench.bench_rounds   (writes bench/results/rounds.md)
"""

from __future__ import annotations

import asyncio
import platform
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.harness import login, server_ts, start_bot
from bot.devserver import start_synapse
from bot.rounds import Rounds
from bot.storage import round_store
from bot.timeutil import utcnow

RESULTS = Path(__file__).parent / "results" / "rounds.md"
RUNS, SPACING, IDLE_SECONDS, SCHEDULES = 20, 1.5, 20.0, 50


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = start_synapse(work / "synapse")
        try:
            await run(server, work)
        finally:
            server.stop()


async def run(server, work: Path) -> None:  # type: ignore[no-untyped-def]
    lead_id = server.register("lead", "bench-password-2")
    directory = {
        "organisations": [{"key": "nccn", "name": "NCCN", "kind": "national"}],
        "contacts": [
            {"handle": "lead", "matrix_id": lead_id, "organisation": "nccn", "role": "icc-lead"}
        ],
    }
    app, task, bot_id = await start_bot(server, work, directory)
    lead = await login(server.base_url, lead_id, "bench-password-2")
    try:
        room = (await lead.room_create(invite=[bot_id])).room_id
        await asyncio.sleep(1.5)  # the bot accepts the invite
        deps = app.deps
        assert deps is not None
        rounds = Rounds(deps)
        person = deps.directory.contacts["lead"]

        # 1. Start accuracy.
        series, _ = await rounds.create(
            activation=None,
            room_id=room,
            when="bench",
            cron=None,
            timezone="Europe/Brussels",
            window=timedelta(minutes=30),
            agenda=None,
            participants=[person],
            created_by=lead_id,
            event_id="$bench-accuracy",
        )
        start = utcnow() + timedelta(seconds=3)
        slots = [start + timedelta(seconds=SPACING * n) for n in range(RUNS)]
        async with deps.db.session() as session:
            for slot in slots:
                await rounds._arm_run(session, series, None, slot)
        await asyncio.sleep((slots[-1] - utcnow()).total_seconds() + 3)
        lateness = []
        async with deps.db.session() as session:
            for slot in slots:
                run_row = await round_store.run_for_slot(session, series.id, slot)  # type: ignore[arg-type]
                if run_row is None or not run_row.prompt_event_id:
                    raise RuntimeError(f"no round started for {slot}")
                stamp = await server_ts(lead, room, run_row.prompt_event_id)
                lateness.append(stamp / 1000 - slot.timestamp())

        # 2. Idle cost: CPU seconds of this process (bot + idle homeserver client) per idle period.
        await asyncio.sleep(35)  # the first run's close timers are far away; let things settle
        before = time.process_time()
        await asyncio.sleep(IDLE_SECONDS)
        idle_none = time.process_time() - before
        for n in range(SCHEDULES):
            await rounds.create(
                activation=None,
                room_id=room,
                when=f"daily {n % 24:02d}:{(7 * n) % 60:02d}",
                cron=f"{(7 * n) % 60} {n % 24} * * *",
                timezone="Europe/Brussels",
                window=timedelta(minutes=30),
                agenda=None,
                participants=[person],
                created_by=lead_id,
                event_id=f"$bench-idle-{n}",
            )
        await asyncio.sleep(2)
        before = time.process_time()
        await asyncio.sleep(IDLE_SECONDS)
        idle_fifty = time.process_time() - before
    finally:
        await lead.close()
        app.stop()
        await task

    ordered = sorted(lateness)
    p50 = statistics.median(ordered)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    lines = [
        "# Rounds benchmark",
        "",
        f"Machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}; "
        "one local Synapse (SQLite). Regenerate: `.venv/bin/python -m bench.bench_rounds`.",
        "",
        "| measurement | value | goal | ratio to goal |",
        "| --- | --- | --- | --- |",
        f"| round start lateness, p50 over {RUNS} (prompt on the homeserver − slot) | {p50:.3f} s | — | — |",
        f"| round start lateness, p95 over {RUNS} | {p95:.3f} s | ≤ 2 s | {p95 / 2:.2f} |",
        f"| bot CPU while idle for {IDLE_SECONDS:.0f} s, no schedule | {idle_none * 1000:.1f} ms | — | — |",
        f"| bot CPU while idle for {IDLE_SECONDS:.0f} s, {SCHEDULES} schedules | {idle_fifty * 1000:.1f} ms | no measurable increase | {idle_fifty / max(idle_none, 1e-3):.2f}× |",
    ]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())

"""Paging fan-out benchmark (issue 5), side by side in one run on one local Synapse.

The bot pages 100 people who already have DM rooms with it; the time from the command reaching
the homeserver to the last page stored there is compared with a bare matrix-nio client sending
the same 100 messages to the same rooms concurrently. Goal: ratio ≤ 1.5; first page out ≤ 1 s.
Both are measured with the homeserver's own timestamps (`origin_server_ts`).

Run: .venv/bin/python -m bench.bench_paging [people]   (writes bench/results/paging.md)
"""

from __future__ import annotations

import asyncio
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import BOT_PASSWORD, login, server_ts, start_bot
from bot.app import App, Tuning
from bot.devserver import start_synapse
from bot.storage import page_store

RESULTS = Path(__file__).parent / "results" / "paging.md"
RUNS = 9


async def wait_delivered(app: App, page_id: int, people: int, timeout: float = 120) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with app.deps.db.session() as session:  # type: ignore[union-attr]
            rows = await page_store.targets(session, page_id)
        if len(rows) == people and all(r.event_id for r in rows):
            return rows
        await asyncio.sleep(0.05)
    raise TimeoutError(f"page {page_id} not delivered to {people} people in {timeout}s")


async def main(people: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = start_synapse(work / "synapse")
        try:
            await run(server, work, people)
        finally:
            server.stop()


async def run(server, work: Path, people: int) -> None:  # type: ignore[no-untyped-def]
    lead_id = server.register("lead", "bench-password-2")
    partners = [server.register(f"p{n:03d}", "bench-password-3") for n in range(people)]
    directory = {
        "organisations": [{"key": "nccn", "name": "NCCN", "kind": "national"}],
        "groups": {"all": "everyone"},
        "contacts": [
            {"handle": "lead", "matrix_id": lead_id, "organisation": "nccn", "role": "icc-lead"}
        ]
        + [
            {"handle": f"p{n:03d}", "matrix_id": m, "organisation": "nccn", "groups": ["all"]}
            for n, m in enumerate(partners)
        ],
    }
    app, task, bot_id = await start_bot(server, work, directory, Tuning(sync_timeout_ms=5_000))
    lead = await login(server.base_url, lead_id, "bench-password-2")
    try:
        control = (await lead.room_create(invite=[bot_id])).room_id
        await asyncio.sleep(1.5)  # the bot accepts the invite
        await lead.room_send(
            control, "m.room.message", {"msgtype": "m.text", "body": "!icc activate Bench"}
        )
        room = None
        while room is None:
            await lead.sync(timeout=1000)
            room = next(iter(lead.invited_rooms), None)
        await lead.join(room)
        await lead.sync(timeout=0)

        async def page(text: str) -> tuple[int, list]:
            sent = await lead.room_send(
                room,
                "m.room.message",
                {"msgtype": "m.text", "body": f"!icc page all {text} --ack 1h"},
            )
            command_ts = await server_ts(lead, room, sent.event_id)
            while True:
                async with app.deps.db.session() as session:  # type: ignore[union-attr]
                    found = await page_store.page_by_event(session, sent.event_id)
                if found:
                    break
                await asyncio.sleep(0.02)
            rows = await wait_delivered(app, found.id, people)  # type: ignore[arg-type]
            bot_client = app.deps.messenger._client  # type: ignore[union-attr]
            stamps = await asyncio.gather(
                *(server_ts(bot_client, r.dm_room_id, r.event_id) for r in rows)
            )
            return command_ts, sorted(stamps)

        await page("warm-up: creates the DM rooms")
        await asyncio.sleep(3)  # let the bot's sync digest the hundred new rooms first
        bot_times, first_times = [], []
        for n in range(RUNS):
            command_ts, stamps = await page(f"measured run {n}")
            bot_times.append((stamps[-1] - command_ts) / 1000)
            first_times.append((stamps[0] - command_ts) / 1000)

        async with app.deps.db.session() as session:  # type: ignore[union-attr]
            rooms = [(await page_store.dm_room(session, m)).room_id for m in partners]  # type: ignore[union-attr]
        bare = await login(server.base_url, bot_id, BOT_PASSWORD)
        await bare.sync(timeout=0)
        bare_times = []
        for n in range(RUNS):
            start_ms = time.time() * 1000
            responses = await asyncio.gather(
                *(
                    bare.room_send(
                        r,
                        "m.room.message",
                        {"msgtype": "m.text", "body": f"bare run {n}", "m.mentions": {}},
                    )
                    for r in rooms
                )
            )
            stamps = await asyncio.gather(
                *(
                    server_ts(bare, r, resp.event_id)
                    for r, resp in zip(rooms, responses, strict=True)
                )
            )
            bare_times.append((max(stamps) - start_ms) / 1000)
        await bare.close()
    finally:
        await lead.close()
        app.stop()
        await task

    bot_median, bare_median = statistics.median(bot_times), statistics.median(bare_times)
    lines = [
        "# Paging fan-out benchmark",
        "",
        f"Machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}; "
        f"{people} people with existing DM rooms; {RUNS} runs each, side by side on one local Synapse "
        "(SQLite). Regenerate: `.venv/bin/python -m bench.bench_paging`.",
        "",
        "| measurement | median | runs | goal | ratio |",
        "| --- | --- | --- | --- | --- |",
        f"| bot: command → last page on the homeserver | {bot_median:.3f} s | {', '.join(f'{t:.3f}' for t in bot_times)} | ≤ 1.5× bare | {bot_median / bare_median:.2f} |",
        f"| bare nio client: the same {people} messages, concurrently | {bare_median:.3f} s | {', '.join(f'{t:.3f}' for t in bare_times)} | baseline | 1.00 |",
        f"| bot: command → first page on the homeserver | {statistics.median(first_times):.3f} s | {', '.join(f'{t:.3f}' for t in first_times)} | ≤ 1 s | {statistics.median(first_times):.2f} |",
    ]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100))

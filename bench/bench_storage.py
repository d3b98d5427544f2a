"""Storage growth: what `sitrep`, `pages`, `log export` (and `status`) cost as the logbook grows.

One real `icc-bot run` process, one activation per size, each logbook filled to 10, 1,000 and
100,000 entries (10,000 with --quick) through the storage layer, hash chain intact. Each command's
round trip (sent → the reply in the sender's client) is timed at each size. The first `sitrep`
of an activation covers its whole logbook, so it is timed once per size; the next ones cover the
time since the previous one. Goal: cost flat or linear in the entries, never worse — the
growth exponent k (time ∝ entries^k, between the two largest sizes) at most 1.1.

Run on its own: .venv/bin/python -m bench.bench_storage [--quick]
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from bench.harness import (
    BOT_PASSWORD,
    Backend,
    BotProcess,
    Figure,
    ReplyWatcher,
    Section,
    activate,
    bot_env,
    directory,
    login,
    median,
    on_database,
    seed_logbook,
    standalone,
    wait_joined,
)
from bot.devserver import DevServer
from bot.storage import activation_store
from bot.storage.db import Database

EXPONENT_GOAL = 1.1
REPEATED = ("sitrep", "pages", "status", "log export")


@on_database("storage")
async def measure(
    server: DevServer, work: Path, quick: bool, backend: Backend, url: str
) -> Section:
    sizes = (10, 1_000, 10_000) if quick else (10, 1_000, 100_000)
    runs = 2 if quick else 5
    bot_id = server.register(backend.user("iccbot-storage"), BOT_PASSWORD)
    lead_id = server.register(backend.user("lead-storage"), "bench-password-2")
    env = bot_env(server, work / "bot", bot_id, directory(lead_id, {}), url)
    bot = BotProcess(env, work / "bot")
    watcher = ReplyWatcher(await login(server.base_url, lead_id))
    db = Database(env["ICC_DATABASE_URL"])
    times: dict[str, dict[int, list[float]]] = {}
    seeding: dict[int, float] = {}
    try:
        bot.start()
        await bot.wait_output("bot.app: ready", timeout=120)
        await watcher.start()
        control = (await watcher.client.room_create(invite=[bot_id])).room_id
        await wait_joined(watcher, control, bot_id)
        for size in sizes:
            room = await activate(watcher, control, f"Storage bench {size}")
            seeding[size] = await _seed(db, watcher, room, size)
            first = await watcher.round_trip(room, "!icc sitrep", timeout=300)
            times.setdefault("sitrep (first: the whole logbook)", {})[size] = [first]
            for _ in range(runs):
                for command in REPEATED:
                    took = await watcher.round_trip(room, f"!icc {command}", timeout=300)
                    name = "sitrep (next: since the last one)" if command == "sitrep" else command
                    times.setdefault(name, {}).setdefault(size, []).append(took)
        bot.check_alive()
    finally:
        await watcher.stop()
        await watcher.client.close()
        await db.dispose()
        bot.stop()
    return _section(times, seeding, sizes, runs)


async def _seed(db: Database, watcher: ReplyWatcher, room: str, size: int) -> float:
    """Fill the room's activation logbook up to `size` entries; returns the seconds it took."""
    started = time.perf_counter()
    async with db.session() as session:
        activation = await activation_store.by_room(session, room)
        assert activation is not None
        assert activation.id is not None
        existing = await activation_store.last_log_entry(session, activation.id)
    await seed_logbook(db, activation.ref, size - (existing[0] if existing else 0), "@bench")
    return time.perf_counter() - started


def exponent(sizes: tuple[int, ...], seconds: dict[int, float]) -> float:
    """k in time ∝ entries^k between the two largest sizes (0: flat, 1: linear)."""
    small, large = sizes[-2], sizes[-1]
    return math.log(seconds[large] / seconds[small]) / math.log(large / small)


def _section(
    times: dict[str, dict[int, list[float]]],
    seeding: dict[int, float],
    sizes: tuple[int, ...],
    runs: int,
) -> Section:
    figures = []
    medians = {name: {s: median(v) for s, v in by_size.items()} for name, by_size in times.items()}
    for name, by_size in medians.items():
        k = exponent(sizes, by_size)
        figures.append(
            Figure(
                f"`{name}` at {sizes[-1]:,} entries (growth exponent k = {k:.2f})",
                by_size[sizes[-1]],
                baseline=by_size[sizes[0]],
                baseline_name=f"{sizes[0]} entries",
                goal=f"k ≤ {EXPONENT_GOAL}",
                met=k <= EXPONENT_GOAL,
            )
        )
    header = "| command | " + " | ".join(f"{s:,} entries" for s in sizes) + " |"
    rows = [header, "|" + " --- |" * (len(sizes) + 1)]
    for name, by_size in medians.items():
        rows.append(f"| `{name}` | " + " | ".join(f"{by_size[s]:.3f} s" for s in sizes) + " |")
    rows.append(
        "| (seeding the logbook, not a command) | "
        + " | ".join(f"{seeding[s]:.1f} s" for s in sizes)
        + " |"
    )
    return Section(
        "Storage growth",
        f"Round trip of each command (median of {runs}; the first sitrep once) in an activation "
        "whose logbook holds the given number of entries, the real `icc-bot run`. The "
        "baseline is the same command at the smallest size; k is the growth exponent between the "
        "two largest sizes (time ∝ entries^k).",
        figures,
        details=rows,
        data={"storage": {"sizes": list(sizes), "medians": medians}},
    )


if __name__ == "__main__":
    standalone(measure)

"""The situation board under load (issue 23): fifty boards open on one activation while the
three hundred people of a page acknowledge it.

The real `icc-bot run` (a process, on SQLite or PostgreSQL, its web endpoint on loopback) and the echo bot run on
one Synapse. The lead pages 300 partners in one activation; once every page is delivered, fifty
boards follow the activation over server-sent events (aiohttp clients in this process, each
reading its own stream as a browser would). Then the 300 acknowledge over 30 s, one every
0.1 s whatever the bot's pace (a busy page's answers come in a few minutes; at once they are
the storm `bench_storm` measures, which saturates the bot by design and so measures its
throughput, not what the boards cost), through their acknowledgement links (`POST /ack/<token>`, the bot's own path for people off Matrix:
the same `Answers.answer`, logbook entry and board edit as an ack typed in Matrix, without
three hundred Matrix clients on a 2-core machine). Meanwhile the lead's client times `status`
round trips to the bot and to the echo bot, interleaved, as `bench_latency` does when all is
quiet (measured first, for reference).

Figures: per board, from the last acknowledgement (its link's `POST` leaving the client) to
the board showing `300/300 acknowledged` — the slowest of the fifty, goal ≤ 2 s; and `status` during the acknowledgements against the echo bot, goal ≤ 1.3×.

Run on its own: .venv/bin/python -m bench.bench_board [--quick]
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from aiohttp import ClientSession, ClientTimeout, TCPConnector

from bench.harness import (
    BOT_PASSWORD,
    Backend,
    Board,
    BotProcess,
    Figure,
    ReplyWatcher,
    Section,
    bot_env,
    bot_query,
    directory,
    echo_process,
    login,
    median,
    on_database,
    page_delivered,
    percentile,
    quiet,
    register_many,
    samples_line,
    side_by_side,
    standalone,
)
from bot.devserver import DevServer, free_port
from bot.reach.links import link_key, sign
from bot.settings import Settings, load_settings
from bot.situation_board.links import board_token

GOAL_LAG, GOAL_RATIO = 2.0, 1.3
SAMPLES = ("quiet status", "quiet echo", "bare status", "bare echo", "boards status", "boards echo")
ACKS_PER_SECOND = 10


@on_database("board")
async def measure(
    server: DevServer, work: Path, quick: bool, backend: Backend, database: str
) -> Section:
    people, boards_open, quiet_runs = (100, 20, 5) if quick else (300, 50, 20)
    bot_id = server.register(backend.user("iccbot-board"), BOT_PASSWORD)
    echo_id = server.register(backend.user("echo-board"), BOT_PASSWORD)
    lead_id = server.register(backend.user("lead-board"), "bench-password-2")
    handles = [f"b{n:03d}" for n in range(people)]
    partners = dict(zip(handles, register_many(server, handles), strict=True))
    port = free_port()
    dir_data = directory(lead_id, partners, groups={"everyone": handles})
    env = bot_env(server, work / "bot", bot_id, dir_data, database) | {
        "ICC_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "ICC_WEB_ADDR": f"127.0.0.1:{port}",
    }
    settings = load_settings(env)
    bot = BotProcess(env, work / "bot")
    echo = echo_process(server, work / "echo", echo_id)
    watcher = ReplyWatcher(await login(server.base_url, lead_id))
    samples: dict[str, list[float]] = {k: [] for k in SAMPLES}
    http = ClientSession(connector=TCPConnector(limit=0), timeout=ClientTimeout(total=None))
    boards: list[Board] = []

    async def status_while(job: asyncio.Task[float], kind: str) -> float:
        """`status` round trips to the bot and the echo bot, in turn, while `job` runs."""
        while not job.done():
            samples[f"{kind} status"].append(await watcher.round_trip(room, "!icc status"))
            samples[f"{kind} echo"].append(await watcher.round_trip(echo_room, "!icc status"))
        return await job

    try:
        room, echo_room = await side_by_side(bot, echo, watcher, (bot_id, echo_id), "Board bench")
        for _ in range(quiet_runs):
            samples["quiet status"].append(await watcher.round_trip(room, "!icc status"))
            samples["quiet echo"].append(await watcher.round_trip(echo_room, "!icc status"))
        # The control: the same acknowledgements of a first page, no board open.
        await watcher.send(room, "!icc page everyone Are your teams deployable? --ack 1h")
        _page, rows = await page_delivered(database, people)
        assert bot.process is not None
        await quiet(bot.process.pid, server.process.pid)  # the 300 new direct rooms settle
        await status_while(asyncio.create_task(_acknowledge(http, port, settings, rows)), "bare")
        # The measure: a second page, fifty boards open.
        await watcher.send(room, "!icc page everyone Can you host evacuees? --ack 1h")
        page, rows = await page_delivered(database, people)
        [(activation_id,)] = bot_query(
            database, "SELECT id FROM activation WHERE room_id = ?", room
        )
        events = f"http://127.0.0.1:{port}/board/{board_token(settings, activation_id, 0)}/events"
        done = f"PG-{page}</span>"
        boards = [Board(http, events, done, f"{people}/{people} ack") for _ in range(boards_open)]
        await asyncio.wait_for(asyncio.gather(*(b.connected.wait() for b in boards)), 60)
        await quiet(bot.process.pid, server.process.pid)  # the page's own board edit settles
        acking = asyncio.create_task(_acknowledge(http, port, settings, rows))
        last_ack = await status_while(acking, "boards")
        with contextlib.suppress(TimeoutError):  # a board that never shows it: an infinite lag
            await asyncio.wait_for(asyncio.gather(*(b.shown.wait() for b in boards)), 30)
        bot.check_alive()
    finally:
        await Board.close_all(boards)
        await http.close()
        await watcher.stop()
        await watcher.client.close()
        bot.stop()
        echo.stop()
    lags = [(b.shown_at - last_ack) if b.shown_at else float("inf") for b in boards]
    return _section(samples, lags, [b.updates for b in boards], people, boards_open)


async def _acknowledge(
    http: ClientSession, port: int, settings: Settings, rows: list[int]
) -> float:
    """Every row acknowledged through its link, `ACKS_PER_SECOND` pressed a second whether or
    not the earlier ones were answered; when the last one was pressed (perf_counter as its
    `POST` left): the ack every board must show, from then on. (Not its answer: a board may
    show the ack before the person's page says so.)"""
    key = link_key(settings)
    pressed: list[float] = []
    start = time.perf_counter()

    async def one(n: int, row: int) -> None:
        await asyncio.sleep(max(0.0, start + n / ACKS_PER_SECOND - time.perf_counter()))
        pressed.append(time.perf_counter())
        async with http.post(f"http://127.0.0.1:{port}/ack/{sign(key, row)}") as answer:
            if answer.status != 200:
                raise RuntimeError(f"ack link of row {row}: HTTP {answer.status}")

    await asyncio.gather(*(one(n, row) for n, row in enumerate(rows)))
    return max(pressed)


def _section(
    samples: dict[str, list[float]],
    lags: list[float],
    updates: list[int],
    people: int,
    boards: int,
) -> Section:
    slowest = max(lags)
    storm, floor = samples["boards status"], samples["boards echo"]
    figures = [
        Figure(
            f"last of {people} acks → on all {boards} open boards (slowest board)",
            slowest,
            goal=f"≤ {GOAL_LAG:.0f} s",
            met=slowest <= GOAL_LAG,
        ),
        Figure(f"last ack → on the board, median of {boards} boards", median(lags)),
        Figure(
            f"`status` round trip during the acks, {boards} boards open, median of {len(storm)}",
            median(storm),
            baseline=median(floor),
            baseline_name="echo bot",
            goal=f"≤ {GOAL_RATIO}× echo",
            met=median(storm) <= GOAL_RATIO * median(floor),
        ),
        Figure(
            f"`status` round trip during the acks, {boards} boards open, p95 of {len(storm)}",
            percentile(storm, 0.95),
            baseline=percentile(floor, 0.95),
            baseline_name="echo bot",
        ),
    ]
    for kind, label in (("bare", "during the acks, no board open"), ("quiet", "quiet")):
        mine = samples[f"{kind} status"]
        figures.append(
            Figure(
                f"`status` round trip {label}, median of {len(mine)}",
                median(mine),
                baseline=median(samples[f"{kind} echo"]),
                baseline_name="echo bot",
            )
        )
    return Section(
        "Situation board",
        f"{boards} boards follow one activation over server-sent events while the {people} "
        f"people of a page acknowledge it through their links ({ACKS_PER_SECOND} a second); "
        "`status` round "
        "trips to the bot and the echo bot, in turn, meanwhile — and, for comparison, while "
        "the same people acknowledge an earlier page with no board open, and before, quiet. "
        "Both bots are processes; the boards are aiohttp streams in the benchmark's process.",
        figures,
        details=[
            *(samples_line(k, v) for k, v in samples.items()),
            samples_line("last ack → board", lags),
            f"updates each board received: {min(updates)}–{max(updates)}",
        ],
        data={"board": {"lags": lags, **samples}},
    )


if __name__ == "__main__":
    standalone(measure)

"""Command latency: `help` and `status` round trips against a bare matrix-nio echo bot.

Both bots run as their own processes on the same Synapse: the real `icc-bot run` (on SQLite or
PostgreSQL, `--db`) and
bench.echo_bot, which answers every command at once with no work at all. One person's client
sends each command and times it until its own /sync returns the reply (what the person sees).
The two are interleaved (help to the bot, help to the echo bot, status to the bot, status to the
echo bot, …) so that drift on a shared machine falls on both. `status` is asked in an
activation's room. Goal: median ≤ 1.15× the echo bot (issue 26).

Run on its own: .venv/bin/python -m bench.bench_latency [--quick]
"""

from __future__ import annotations

from pathlib import Path

from bench.harness import (
    BOT_PASSWORD,
    Backend,
    BotProcess,
    Figure,
    ReplyWatcher,
    Section,
    bot_env,
    directory,
    echo_process,
    login,
    median,
    on_database,
    percentile,
    samples_line,
    side_by_side,
    standalone,
)
from bot.devserver import DevServer

GOAL = 1.15  # issue 26 (was 1.3)
WARM_UP = 5


@on_database("latency")
async def measure(
    server: DevServer, work: Path, quick: bool, backend: Backend, url: str
) -> Section:
    runs = 10 if quick else 50
    bot_id = server.register(backend.user("iccbot-latency"), BOT_PASSWORD)
    echo_id = server.register(backend.user("echo-latency"), BOT_PASSWORD)
    lead_id = server.register(backend.user("lead-latency"), "bench-password-2")
    env = bot_env(server, work / "bot", bot_id, directory(lead_id, {}), url)
    bot = BotProcess(env, work / "bot")
    echo = echo_process(server, work / "echo", echo_id)
    watcher = ReplyWatcher(await login(server.base_url, lead_id))
    samples: dict[str, list[float]] = {
        k: [] for k in ("help", "status", "echo help", "echo status")
    }
    try:
        room, echo_room = await side_by_side(bot, echo, watcher, (bot_id, echo_id), "Latency bench")
        for n in range(WARM_UP + runs):
            for command in ("help", "status"):
                mine = await watcher.round_trip(room, f"!icc {command}")
                floor = await watcher.round_trip(echo_room, f"!icc {command}")
                if n >= WARM_UP:
                    samples[command].append(mine)
                    samples[f"echo {command}"].append(floor)
        bot.check_alive()
    finally:
        await watcher.stop()
        await watcher.client.close()
        bot.stop()
        echo.stop()
    return _section(samples, runs)


def _section(samples: dict[str, list[float]], runs: int) -> Section:
    figures = []
    for command in ("help", "status"):
        mine, floor = samples[command], samples[f"echo {command}"]
        figures.append(
            Figure(
                f"`{command}` round trip, median of {runs}",
                median(mine),
                baseline=median(floor),
                baseline_name="echo bot",
                goal=f"≤ {GOAL}× echo",
                met=median(mine) <= GOAL * median(floor),
            )
        )
        figures.append(
            Figure(
                f"`{command}` round trip, p95 of {runs}",
                percentile(mine, 0.95),
                baseline=percentile(floor, 0.95),
                baseline_name="echo bot",
            )
        )
    return Section(
        "Command latency",
        "Command sent → reply received by the sender's client (its /sync), `!icc help` and "
        "`!icc status` (in an activation room), against a bare matrix-nio echo bot on the same "
        "homeserver; both bots are processes of their own, their round trips interleaved.",
        figures,
        details=[samples_line(k, v) for k, v in samples.items()],
        data={"latency": samples},
    )


if __name__ == "__main__":
    standalone(measure)

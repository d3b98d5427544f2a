"""An acknowledgement storm (issue 26): the three hundred people of a page all answer it within
one second, on Matrix — a third typing `ack`, a third reacting ✅ to the page, a third replying
"ack" to it — while the lead keeps asking for `status`.

The real `icc-bot run` (a process, on SQLite or PostgreSQL) and the echo bot run on one
Synapse. The lead pages 300 partners in one activation; once every page is delivered, each
partner joins the direct room the bot invited them to, and then all of them answer, one every
1/300 s, each through the client-server API with their own access token (plain HTTP from
this process: 300 syncing nio clients would not fit a 2-core machine, and the bot sees the same
events either way). Meanwhile the lead's client times `status` round trips to the bot and to
the echo bot, interleaved (each first every other time), as before the storm when all was quiet.

Figures: every ack recorded; from each answer leaving its sender to its logbook entry's
`recorded_at` (the moment the bot wrote it), p95 ≤ 1 s, and the bot's own share of it (from its
inbox row's `received_at` to that entry) held to the same second, to tell it from the homeserver's
on a machine where Synapse shares two cores with everything; from the last answer sent to the page's
board in the activation room showing `300/300 acknowledged` (the edit reaching the lead's
client), ≤ 2 s; `status` during the storm against `status` when quiet, ≤ 2×.

Run on its own: .venv/bin/python -m bench.bench_storm [--quick] [--db sqlite|postgresql]
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from aiohttp import ClientSession, TCPConnector

from bench.harness import (
    BOT_PASSWORD,
    PASSWORD,
    SQLITE,
    Backend,
    BotProcess,
    Figure,
    ReplyWatcher,
    Section,
    bot_env,
    bot_query,
    bounded,
    cpu_seconds,
    directory,
    echo_process,
    login,
    median,
    page_delivered,
    percentile,
    postgres_database,
    quiet,
    register_many,
    samples_line,
    side_by_side,
    standalone,
)
from bot.devserver import DevServer, start_synapse

GOAL_RECORDED, GOAL_BOARD, GOAL_STATUS = 1.0, 2.0, 2.0
STORM_SECONDS = 1.0
WAYS = ("command", "reaction", "reply")


class Partner:
    """One person paged: their token, their direct room with the bot and the page in it."""

    def __init__(self, http: ClientSession, base_url: str, handle: str, token: str) -> None:
        self.http, self.base_url, self.handle, self.token = http, base_url, handle, token
        self.room_id, self.page_event = "", ""
        self.sent_at = self.sent_perf = 0.0  # time.time() and perf_counter() as it left

    async def _call(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}/_matrix/client/v3{path}"
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.http.request(method, url, json=body, headers=headers) as response:
            answer = await response.json()
            if response.status != 200:
                raise RuntimeError(f"{self.handle} {method} {path}: {response.status} {answer}")
            return dict(answer)

    async def join(self) -> None:
        await self._call("POST", f"/join/{quote(self.room_id)}", {})

    async def answer(self, way: str, bot_id: str) -> None:
        """Acknowledge the page `way`: a command, a ✅ on it, or a reply to it."""
        if way == "reaction":
            kind = "m.reaction"
            content: dict[str, Any] = {
                "m.relates_to": {
                    "rel_type": "m.annotation",
                    "event_id": self.page_event,
                    "key": "✅",
                }
            }
        elif way == "reply":
            kind = "m.room.message"
            content = {
                "msgtype": "m.text",
                "body": f"> <{bot_id}> …\n\nack",
                "m.relates_to": {"m.in_reply_to": {"event_id": self.page_event}},
            }
        else:
            kind, content = "m.room.message", {"msgtype": "m.text", "body": "!icc ack"}
        txn = f"storm-{self.handle}-{time.monotonic_ns()}"
        self.sent_at, self.sent_perf = time.time(), time.perf_counter()
        await self._call("PUT", f"/rooms/{quote(self.room_id)}/send/{kind}/{txn}", content)


async def _logged_in(http: ClientSession, base_url: str, handle: str, user_id: str) -> Partner:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user_id},
        "password": PASSWORD,
    }
    async with http.post(f"{base_url}/_matrix/client/v3/login", json=body) as response:
        answer = await response.json()
    return Partner(http, base_url, handle, answer["access_token"])


async def _acks_recorded(
    database: str, activation_id: int, people: int, timeout: float = 120
) -> dict[str, float]:
    """handle → when the bot wrote its ack to the logbook (epoch seconds), once all are there."""
    deadline = time.monotonic() + timeout
    found: dict[str, float] = {}
    while time.monotonic() < deadline:
        found = {}
        for data, recorded_at in bot_query(
            database,
            "SELECT data, recorded_at FROM log_entry WHERE activation_id = ? AND kind = ?",
            activation_id,
            "system.ack",
        ):
            found[_json(data)["handle"]] = _epoch(recorded_at)
        if len(found) >= people:
            break
        await asyncio.sleep(0.25)
    return found


def _json(data: Any) -> Any:
    """A JSON column as read: text from SQLite, already decoded by psycopg."""
    return json.loads(data) if isinstance(data, str | bytes) else data


def _epoch(stamp: Any) -> float:
    """A UTC timestamp column as epoch seconds: text from SQLite, a datetime from psycopg."""
    when = stamp if isinstance(stamp, datetime) else datetime.fromisoformat(str(stamp))
    return when.replace(tzinfo=UTC).timestamp() if when.tzinfo is None else when.timestamp()


async def measure(server: DevServer, work: Path, quick: bool, backend: Backend = SQLITE) -> Section:
    """On a homeserver of its own on PostgreSQL, as production runs one (on SQLite, Synapse's
    single writer is what a storm waits for: see bench/README.md); on the suite's SQLite one
    when no PostgreSQL answers. The bot's own database is `backend`'s."""
    with backend.database(work, "storm") as url:
        try:
            with postgres_database(f"icc_bench_synapse_{os.getpid()}") as synapse_db:
                own = start_synapse(work / "synapse-postgresql", database=synapse_db)
                try:
                    return await _measure(own, work, quick, "PostgreSQL", backend, url)
                finally:
                    own.stop()
        except psycopg.OperationalError as exc:
            print(f"no PostgreSQL for the homeserver ({exc}); the storm runs on SQLite")
        return await _measure(server, work, quick, "SQLite", backend, url)


async def _measure(
    server: DevServer,
    work: Path,
    quick: bool,
    homeserver_db: str,
    backend: Backend,
    database: str,
) -> Section:
    people, quiet_runs = (60, 5) if quick else (300, 20)
    bot_id = server.register(backend.user("iccbot-storm"), BOT_PASSWORD)
    echo_id = server.register(backend.user("echo-storm"), BOT_PASSWORD)
    lead_id = server.register(backend.user("lead-storm"), PASSWORD)
    handles = [f"s{n:03d}" for n in range(people)]
    user_ids = dict(zip(handles, register_many(server, handles), strict=True))
    dir_data = directory(lead_id, user_ids, groups={"everyone": handles})
    env = bot_env(server, work / "bot", bot_id, dir_data, database)
    bot = BotProcess(env, work / "bot")
    echo = echo_process(server, work / "echo", echo_id)
    watcher = ReplyWatcher(await login(server.base_url, lead_id))
    http = ClientSession(connector=TCPConnector(limit=0))
    samples: dict[str, list[float]] = {
        k: [] for k in ("quiet", "quiet echo", "storm", "storm echo")
    }
    try:
        room, echo_room = await side_by_side(bot, echo, watcher, (bot_id, echo_id), "Storm bench")
        for _ in range(quiet_runs):
            samples["quiet"].append(await watcher.round_trip(room, "!icc status"))
            samples["quiet echo"].append(await watcher.round_trip(echo_room, "!icc status"))
        partners = await bounded(
            (_logged_in(http, server.base_url, h, user_ids[h]) for h in handles), limit=16
        )
        await watcher.send(room, "!icc page everyone Storm: confirm you read this --ack 1h")
        page, _rows = await page_delivered(database, people)
        where = dict(
            (handle, (dm, event))
            for handle, dm, event in bot_query(
                database,
                "SELECT handle, dm_room_id, event_id FROM page_target WHERE page_id = ?",
                page,
            )
        )
        for partner in partners:
            partner.room_id, partner.page_event = where[partner.handle]
        await bounded((p.join() for p in partners), limit=16)
        [(activation_id, board)] = bot_query(
            database,
            "SELECT page.activation_id, page.board_event_id FROM page WHERE page.id = ?",
            page,
        )
        assert bot.process is not None
        await quiet(bot.process.pid, server.process.pid)  # the bot has seen the 300 joins
        pids = (bot.process.pid, server.process.pid)
        cpu_before = [cpu_seconds(pid) for pid in pids]
        storm = asyncio.create_task(_storm(partners, bot_id))
        recorded = asyncio.create_task(_acks_recorded(database, activation_id, people))
        # In turn, each bot first every other time: the storm is heaviest at its start, and the
        # one asked first there waited longest (the bot, always, before).
        turns = [("storm", room), ("storm echo", echo_room)]
        while not recorded.done():
            for key, asked_in in turns:
                samples[key].append(await watcher.round_trip(asked_in, "!icc status"))
            turns.reverse()
        await storm
        written = await recorded
        cpu = [cpu_seconds(pid) - b for pid, b in zip(pids, cpu_before, strict=True)]
        arrived = _arrivals(database, set(user_ids.values()))
        last_sent = max(p.sent_perf for p in partners)
        shown = await _board_shown(watcher, board, f"{people}/{people} acknowledged", 30)
        bot.check_alive()
    finally:
        await http.close()
        await watcher.stop()
        await watcher.client.close()
        bot.stop()
        echo.stop()
    latencies = [written[p.handle] - p.sent_at for p in partners if p.handle in written]
    stages = _stages(partners, user_ids, arrived, written)
    board_lag = shown - last_sent if shown is not None else None
    if shown is not None and written:  # the lead's client's clock is this process's
        clock = partners[0].sent_at - partners[0].sent_perf
        stages["last ack recorded → the board shows it"] = [shown + clock - max(written.values())]
    section = _section(samples, latencies, len(written), people, board_lag, cpu, stages)
    section.method += f" Synapse on {homeserver_db}."
    return section


def _arrivals(database: str, senders: set[str]) -> dict[str, tuple[float, float]]:
    """sender → (the homeserver's origin_server_ts, the bot's received_at) of their answer, as
    epoch seconds, from the bot's inbox."""
    found = {}
    for sender, origin, received in bot_query(
        database, "SELECT sender, origin_ts, received_at FROM inbox_event"
    ):
        if sender in senders:
            found[sender] = (_epoch(origin), _epoch(received))
    return found


def _stages(
    partners: list[Partner],
    user_ids: dict[str, str],
    arrived: dict[str, tuple[float, float]],
    written: dict[str, float],
) -> dict[str, list[float]]:
    """Where each answer's time went: to the homeserver accepting it (its origin_server_ts),
    to the bot reading it (its inbox row), to the bot writing the ack."""
    stages: dict[str, list[float]] = {
        "sent → on the homeserver": [],
        "on the homeserver → read by the bot": [],
        "read by the bot → recorded": [],
    }
    for p in partners:
        if (times := arrived.get(user_ids[p.handle])) and p.handle in written:
            origin, received = times
            stages["sent → on the homeserver"].append(origin - p.sent_at)
            stages["on the homeserver → read by the bot"].append(received - origin)
            stages["read by the bot → recorded"].append(written[p.handle] - received)
    return stages


async def _storm(partners: list[Partner], bot_id: str) -> None:
    """Every partner answers, one every STORM_SECONDS/len(partners), in turn by way."""
    gap = STORM_SECONDS / len(partners)
    start = time.perf_counter()

    async def one(n: int, partner: Partner) -> None:
        await asyncio.sleep(max(0.0, start + n * gap - time.perf_counter()))
        await partner.answer(WAYS[n % len(WAYS)], bot_id)

    await asyncio.gather(*(one(n, p) for n, p in enumerate(partners)))


async def _board_shown(
    watcher: ReplyWatcher, board: str, text: str, timeout: float
) -> float | None:
    """perf_counter when the lead's client received the board's edit showing `text`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for arrived, body in watcher.edits.get(board, []):
            if text in body:
                return arrived
        await asyncio.sleep(0.1)
    return None


def _section(
    samples: dict[str, list[float]],
    latencies: list[float],
    written: int,
    people: int,
    board_lag: float | None,
    cpu: list[float],
    stages: dict[str, list[float]],
) -> Section:
    p95 = percentile(latencies, 0.95) if latencies else float("inf")
    bot_share = stages["read by the bot → recorded"]
    own = percentile(bot_share, 0.95) if bot_share else float("inf")
    lag = board_lag if board_lag is not None else float("inf")
    storm, quiet = median(samples["storm"]), median(samples["quiet"])
    figures = [
        Figure(
            f"acks recorded of {people} sent within {STORM_SECONDS:.0f} s "
            "(a third each: command, ✅, reply)",
            written,
            unit="",
            goal=f"{people}",
            met=written == people,
        ),
        Figure(
            "answer sent → ack recorded, p95",
            p95,
            goal=f"≤ {GOAL_RECORDED:.0f} s",
            met=p95 <= GOAL_RECORDED,
        ),
        Figure("answer sent → ack recorded, median", median(latencies) if latencies else 0.0),
        Figure(
            "of which the bot's own share: read by the bot → recorded, p95",
            own,
            goal=f"≤ {GOAL_RECORDED:.0f} s",
            met=own <= GOAL_RECORDED,
        ),
        Figure(
            f"last answer sent → the page's board shows {people}/{people}",
            lag,
            goal=f"≤ {GOAL_BOARD:.0f} s",
            met=lag <= GOAL_BOARD,
        ),
        Figure(
            f"`status` round trip during the storm, median of {len(samples['storm'])}",
            storm,
            baseline=quiet,
            baseline_name="quiet `status`",
            goal=f"≤ {GOAL_STATUS:.0f}× quiet",
            met=storm <= GOAL_STATUS * quiet,
        ),
        Figure(
            "`status` round trip during the storm, against the echo bot meanwhile",
            storm,
            baseline=median(samples["storm echo"]),
            baseline_name="echo bot",
        ),
        Figure(
            f"`status` round trip when quiet, median of {len(samples['quiet'])}",
            quiet,
            baseline=median(samples["quiet echo"]),
            baseline_name="echo bot",
        ),
    ]
    return Section(
        "Acknowledgement storm",
        f"The {people} people of a page answer it within {STORM_SECONDS:.0f} s on Matrix (a "
        "third `!icc ack` in their direct room, a third ✅ on the page, a third replying "
        "“ack” to it), each through the client-server API with their own token; the lead "
        "times `status` round trips to the bot and the echo bot, in turn, meanwhile and before. "
        "Both bots are processes.",
        figures,
        details=[
            *(samples_line(k, v) for k, v in samples.items()),
            samples_line("answer sent → recorded", latencies),
            *(samples_line(stage, times) for stage, times in stages.items()),
            f"CPU from the first answer to the last recorded: the bot {cpu[0]:.2f} s "
            f"({cpu[0] / people * 1000:.1f} ms an ack), Synapse {cpu[1]:.2f} s",
        ],
        data={"storm": {"recorded": latencies, **samples}},
    )


if __name__ == "__main__":
    standalone(measure)

"""A day compressed (issue 26): an activation's day replayed at ten times the rate, in real time.

The bot's timers run on APScheduler against the wall clock and the homeserver stamps events with
its own, so a simulated clock would need changes across the bot: the day is replayed at ten times
its rate instead. The real `icc-bot run` (a process, its web endpoint on loopback) runs one
activation for `ICC_BENCH_DAY_MINUTES` minutes of wall time (default 60 = 10 simulated hours;
144 is the whole day; `--quick`: 5):

- a page every minute (every 10 minutes of the day) to 24 people, `--ack 90s` (the default 15 m
  at 10×), each with a backup: per page and person, ~55 % acknowledge on Matrix (`!icc ack PG-n`
  in their DM, each a client of their own) at a random moment before the deadline, ~15 % after
  it (their backup has been paged by then), ~30 % never (their backup neither: the room is told);
- a round scheduled `every 6m` (hourly at 10×; `*/6 * * * *`, which cron expresses exactly),
  window 3 m (the default 30 m at 10×);
- the activation's situation board open over server-sent events throughout;
- logbook entries typed by the lead (`!icc log …`, a tenth of them `--decision`) at 2,000 per
  simulated day: one every 4.32 s.

Activity stops after the given minutes; the last pages' steps are then waited for. Figures: the
bot's resident set (VmRSS, sampled every 10 s) — growth = median of the active window's last
quarter ÷ median of its first quarter after a warm-up (a sixth of the window, at most 10 min),
goal ≤ 1.10; VmHWM; the lateness of every escalation step (its last message's
`origin_server_ts` − its timer's due time, i.e. page time + ack window; goal: none later than
2 s) and of every round start (prompt's `origin_server_ts` − its slot); acknowledgements and
notes recorded against those sent.

Run on its own: .venv/bin/python -m bench.bench_day [--quick] [--db sqlite|postgresql]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, TCPConnector
from nio import AsyncClient

from bench.harness import (
    BOT_PASSWORD,
    Backend,
    Board,
    BotProcess,
    Figure,
    ReplyWatcher,
    Section,
    activate,
    bot_env,
    bot_query,
    bounded,
    cpu_seconds,
    directory,
    login,
    median,
    on_database,
    page_delivered,
    percentile,
    register_many,
    server_event,
    server_ts,
    standalone,
    wait_joined,
)
from bot.devserver import DevServer, free_port
from bot.settings import load_settings
from bot.situation_board.links import board_token

SPEED = 10  # the day's rate
MINUTES_ENV = "ICC_BENCH_DAY_MINUTES"
PAGE_EVERY = 600 / SPEED  # seconds: every 10 minutes of the day
ACK = 900 // SPEED  # seconds: the default 15 m window
ROUND_WHEN, ROUND_WINDOW = "every 6m", "3m"  # hourly, window 30 m, at 10×
NOTES_PER_DAY = 2_000
NOTE_EVERY = 86_400 / SPEED / NOTES_PER_DAY  # 4.32 s
PEOPLE, BACKUPS, ROUNDTABLE = 24, 4, 3
ON_TIME, LATE = 0.55, 0.15  # shares of people acknowledging a page; the rest never do
SAMPLE_EVERY = 10.0
GOAL_GROWTH, GOAL_LATE = 1.10, 2.0


class Person:
    """A paged person's client: logged in, never syncing; joins their DM with the bot once."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.joined: set[str] = set()

    async def ack(self, room_id: str, ref: str) -> bool:
        if room_id not in self.joined:
            await self.client.join(room_id)
            self.joined.add(room_id)
        sent = await self.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": f"!icc ack {ref}"}
        )
        return bool(getattr(sent, "event_id", None))


def day_minutes(quick: bool) -> float:
    return float(os.environ.get(MINUTES_ENV) or (5 if quick else 60))


def _utc(value: Any) -> float:
    """A timestamp column as read beside the bot (SQLite: naive text in UTC) → epoch seconds."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return float(value.timestamp())


@on_database("day")
async def measure(
    server: DevServer, work: Path, quick: bool, backend: Backend, database: str
) -> Section:
    minutes = day_minutes(quick)
    rng = random.Random(26)
    bot_id = server.register(backend.user("iccbot-day"), BOT_PASSWORD)
    lead_id = server.register(backend.user("lead-day"), "bench-password-2")
    handles = [f"day{n:02d}" for n in range(PEOPLE)]
    backups = [f"daybk{n}" for n in range(BACKUPS)]
    ids = dict(zip(handles + backups, register_many(server, handles + backups), strict=True))
    groups = {"day": handles, "daybackups": backups, "roundtable": handles[:ROUNDTABLE]}
    dir_data = directory(lead_id, ids, groups=groups)
    for contact in dir_data["contacts"]:
        if contact["handle"] in handles:
            contact["backup"] = backups[handles.index(contact["handle"]) % BACKUPS]
    port = free_port()
    env = bot_env(server, work / "bot", bot_id, dir_data, database) | {
        "ICC_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "ICC_WEB_ADDR": f"127.0.0.1:{port}",
    }
    settings = load_settings(env)
    bot = BotProcess(env, work / "bot")
    watcher = ReplyWatcher(await login(server.base_url, lead_id))
    people = {
        h: Person(c)
        for h, c in zip(
            handles, await bounded(login(server.base_url, ids[h]) for h in handles), strict=True
        )
    }
    http = ClientSession(connector=TCPConnector(limit=0), timeout=ClientTimeout(total=None))
    board: Board | None = None
    samples: list[tuple[float, float, float, float]] = []  # (t, VmRSS, VmHWM, load 1 min)
    pages: list[tuple[int, float]] = []  # (page id, sent at)
    acks = {"sent": 0, "failed": 0}
    notes: list[str] = []
    jobs: set[asyncio.Task[None]] = set()
    try:
        bot.start()
        await watcher.start()
        control = (await watcher.client.room_create(invite=[bot_id])).room_id
        await wait_joined(watcher, control, bot_id, timeout=120)
        room = await activate(watcher, control, "A day compressed")
        # Warm-up: a page creates every DM room (nobody is timed on it; its deadline is a day).
        await watcher.send(room, "!icc page day,daybackups Day bench warm-up --ack 1d")
        warm_page, _ = await page_delivered(database, PEOPLE + BACKUPS)
        dms = dict(bot_query(database, "SELECT handle, dm_room_id FROM page_target"))
        await bounded(people[h].ack(dms[h], f"PG-{warm_page}") for h in handles)
        [(activation_id,)] = bot_query(
            database, "SELECT id FROM activation WHERE room_id = ?", room
        )
        token = board_token(settings, activation_id, 0)
        board = Board(http, f"http://127.0.0.1:{port}/board/{token}/events")
        await asyncio.wait_for(board.connected.wait(), 60)
        await watcher.round_trip(
            room,
            f"!icc round schedule {ROUND_WHEN} --with roundtable --window {ROUND_WINDOW}",
        )
        assert bot.process is not None
        pid = bot.process.pid
        cpu_before = cpu_seconds(pid)
        t0 = time.time()
        end = t0 + minutes * 60

        async def sampler() -> None:
            while True:
                rss, hwm = bot.rss_mb()
                samples.append((time.time() - t0, rss, hwm, os.getloadavg()[0]))
                await asyncio.sleep(SAMPLE_EVERY)

        async def ack_later(handle: str, page: int, delay: float) -> None:
            await asyncio.sleep(delay)
            try:
                ok = await people[handle].ack(dms[handle], f"PG-{page}")
            except Exception:
                ok = False
            acks["sent" if ok else "failed"] += 1

        async def paging() -> None:
            n = 0
            while (at := t0 + 5 + n * PAGE_EVERY) < end:
                await asyncio.sleep(max(0.0, at - time.time()))
                sent_at = time.time()
                _, event = await watcher.send(
                    room, f"!icc page day Day bench page {n}: status of your teams --ack {ACK}s"
                )
                page = await _page_of(database, event)
                pages.append((page, sent_at))
                for handle in handles:
                    fate = rng.random()
                    if fate < ON_TIME:
                        delay = rng.uniform(5, ACK - 10)
                    elif fate < ON_TIME + LATE:
                        delay = rng.uniform(ACK + 10, 2 * ACK - 15)
                    else:
                        continue
                    job = asyncio.create_task(ack_later(handle, page, delay))
                    jobs.add(job)
                    job.add_done_callback(jobs.discard)
                n += 1

        async def logging() -> None:
            n = 0
            while (at := t0 + 2 + n * NOTE_EVERY) < end:
                await asyncio.sleep(max(0.0, at - time.time()))
                text = f"Day bench note {n}: roads, shelters and teams as reported at {n}"
                flag = " --decision" if n % 10 == 9 else ""
                _, event = await watcher.send(room, f"!icc log {text}{flag}")
                notes.append(event)
                n += 1

        sampling = asyncio.create_task(sampler())
        await asyncio.gather(paging(), logging())
        active = time.time() - t0
        await asyncio.sleep(max(0.0, end + 2 * ACK + 15 - time.time()))  # the last steps
        if jobs:
            await asyncio.gather(*jobs)
        sampling.cancel()
        [failed] = await asyncio.gather(sampling, return_exceptions=True)
        if isinstance(failed, Exception):
            raise failed
        cpu = cpu_seconds(pid) - cpu_before
        bot.check_alive()
        board_alive = not board.task.done()
        reader = await login(server.base_url, bot_id, BOT_PASSWORD)
        try:
            told = await _notices(watcher.client, room, t0)
            escalation = await _escalation(database, reader, told, pages, t0)
        finally:
            await reader.close()
        rounds = await _rounds(database, watcher.client, room, t0, end)
        recorded = _count(
            database,
            "SELECT COUNT(*) FROM page_target WHERE covers = '' AND acked_at IS NOT NULL "
            "AND page_id <> ?",
            warm_page,
        )
        logged = _count(  # the pattern a parameter: psycopg reads a bare % as a placeholder
            database, "SELECT COUNT(*) FROM log_entry WHERE text LIKE ?", "Day bench note %"
        )
    finally:
        for job in list(jobs):
            job.cancel()
        await Board.close_all([board] if board is not None else [])
        await http.close()
        await watcher.stop()
        await watcher.client.close()
        for person in people.values():
            await person.client.close()
        bot.stop()
    counts = {
        "acks sent": acks["sent"],
        "acks failed to send": acks["failed"],
        "acks recorded": recorded,
        "notes sent": len(notes),
        "notes logged": logged,
        "pages": len(pages),
        "round slots": sum(m % 6 == 0 for m in range(-int(-t0 // 60), int(end // 60) + 1)),
        "board updates": board.updates if board else 0,
        "board open at the end": board_alive,
        "bot CPU s": cpu,
    }
    raw = {"minutes": minutes, "active": active, "samples": samples, "escalation": escalation}
    (work / "day.json").write_text(json.dumps(raw | {"rounds": rounds, "counts": counts}))
    return _section(minutes, active, samples, escalation, rounds, counts)


async def _page_of(database: str, event_id: str, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = bot_query(database, "SELECT id FROM page WHERE opened_by_event = ?", event_id)
        if found:
            return int(found[0][0])
        await asyncio.sleep(0.25)
    raise TimeoutError(f"no page recorded for {event_id} in {timeout}s")


async def _notices(client: AsyncClient, room: str, since: float) -> list[dict]:
    """The room's `could not reach` notices since `since`, read back from the homeserver (a
    client's /sync gives a busy room's last events only, skipping the rest of a burst)."""
    found, token = [], client.next_batch
    while True:
        response = await client.room_messages(room, start=token, limit=500)
        chunk = getattr(response, "chunk", None)
        if not chunk:
            break
        for event in chunk:
            body = (event.source.get("content") or {}).get("body", "")
            if ": could not reach " in body:
                found.append(event.source)
        if chunk[-1].source["origin_server_ts"] < since * 1000 or response.end is None:
            break
        token = response.end
    return found


def _count(database: str, sql: str, *args: object) -> int:
    return int(bot_query(database, sql, *args)[0][0])


async def _escalation(
    database: str,
    reader: AsyncClient,
    told: list[dict],
    pages: list[tuple[int, float]],
    t0: float,
) -> dict[str, list[tuple[float, float]]]:
    """(due time − t0, lateness) of every step that fired: `escalate` (the page again and the
    backup's page: the later of the two) and `unreachable` (the room's notice); `missing`: steps
    recorded as done whose message was not found."""
    due: dict[tuple[int, str, str], float] = {}
    for key, due_at in bot_query(
        database, "SELECT key, due_at FROM timer WHERE kind = ?", "page.step"
    ):
        _, page, handle, step = key.split(":")
        due[(int(page.removeprefix("pg")), handle, step)] = _utc(due_at)
    mine = {page for page, _ in pages}
    rows = [
        r
        for r in bot_query(
            database,
            "SELECT page_id, handle, name, covers, dm_room_id, event_id, repage_event_id, "
            "unreachable_at FROM page_target",
        )
        if r[0] in mine
    ]
    stand_ins = {(r[0], r[3]): r for r in rows if r[3]}
    notices: dict[str, list[dict]] = {}  # PG-n → its notices (the body's first line: TLP · ref)
    for source in told:
        if found := re.search(r"⚠ (PG-\d+): could not reach ", source["content"]["body"]):
            notices.setdefault(found.group(1), []).append(source)
    out: dict[str, list[tuple[float, float]]] = {"escalate": [], "unreachable": [], "missing": []}

    async def escalate(row: tuple) -> None:
        page, handle, _name, _covers, dm, _event, repage, _ = row
        step_due = due[(page, handle, "escalate")]
        stamps = [await server_ts(reader, dm, repage)]
        backup = stand_ins.get((page, handle))
        if backup is not None and backup[5]:
            stamps.append((await server_event(reader, backup[4], backup[5]))["origin_server_ts"])
        else:
            out["missing"].append((step_due - t0, 0.0))
        out["escalate"].append((step_due - t0, max(stamps) / 1000 - step_due))

    await bounded((escalate(r) for r in rows if not r[3] and r[6]), limit=8)
    for page, handle, name, covers, *_, unreachable_at in rows:
        if covers or unreachable_at is None:
            continue
        step_due = due[(page, handle, "unreachable")]
        told = [
            n
            for n in notices.get(f"PG-{page}", [])
            if f"could not reach {name} (" in n["content"]["body"]
        ]
        if not told:
            out["missing"].append((step_due - t0, 0.0))
            continue
        out["unreachable"].append((step_due - t0, told[0]["origin_server_ts"] / 1000 - step_due))
    for steps in out.values():
        steps.sort()
    return out


async def _rounds(
    database: str, client: AsyncClient, room: str, t0: float, end: float
) -> list[tuple[float, float]]:
    """(slot − t0, lateness) of every round due in the active window."""
    out = []
    for slot, prompt in bot_query(database, "SELECT scheduled_for, prompt_event_id FROM round_run"):
        at = _utc(slot)
        if not t0 <= at <= end:
            continue
        if not prompt:
            out.append((at - t0, float("inf")))  # due, never started
            continue
        out.append((at - t0, await server_ts(client, room, prompt) / 1000 - at))
    return sorted(out)


def _growth(
    samples: list[tuple[float, float, float, float]], active: float
) -> tuple[float, float, float]:
    """(warm-up seconds, first-quarter median RSS, last-quarter median RSS) of the active window
    after its warm-up."""
    warm = min(active / 6, 600.0)
    kept = [s for s in samples if warm <= s[0] <= active]
    quarter = max(1, len(kept) // 4)
    return warm, median([s[1] for s in kept[:quarter]]), median([s[1] for s in kept[-quarter:]])


def _every(label: str, done: int, of: int, of_name: str, *, failed: int = 0) -> Figure:
    """A count that must reach its whole (every ack, note, round slot), none failing."""
    return Figure(
        label,
        done,
        unit="",
        baseline=of or None,
        baseline_name=of_name,
        goal="all",
        met=done == of and not failed,
    )


def _spread(name: str, values: list[float]) -> str:
    if not values:
        return f"{name}: none"
    return (
        f"{name}: {len(values)}, p50 {median(values):.3f} s, p95 {percentile(values, 0.95):.3f} s, "
        f"max {max(values):.3f} s"
    )


def _section(
    minutes: float,
    active: float,
    samples: list[tuple[float, float, float, float]],
    escalation: dict[str, list[tuple[float, float]]],
    rounds: list[tuple[float, float]],
    counts: dict[str, Any],
) -> Section:
    warm, first, last = _growth(samples, active)
    steps = [late for key in ("escalate", "unreachable") for _, late in escalation[key]]
    starts = [late for _, late in rounds]
    loads = [s[3] for s in samples]
    figures = [
        Figure(
            "bot RSS, last quarter's median (ratio: growth)",
            last,
            unit="MB",
            baseline=first,
            baseline_name="first quarter after warm-up",
            goal=f"≤ {GOAL_GROWTH:.2f}×",
            met=last <= GOAL_GROWTH * first,
        ),
        Figure("bot peak RSS (VmHWM)", max(s[2] for s in samples), unit="MB"),
    ]
    if steps:
        figures += [
            Figure(f"escalation step lateness, p50 of {len(steps)}", median(steps)),
            Figure(f"escalation step lateness, p95 of {len(steps)}", percentile(steps, 0.95)),
            Figure(
                f"escalation step lateness, max of {len(steps)}",
                max(steps),
                goal=f"≤ {GOAL_LATE:.0f} s",
                met=max(steps) <= GOAL_LATE and not escalation["missing"],
            ),
        ]
    if starts:
        figures += [
            Figure(f"round start lateness, p50 of {len(starts)}", median(starts)),
            Figure(
                f"round start lateness, max of {len(starts)}",
                max(starts),
                goal=f"≤ {GOAL_LATE:.0f} s",
                met=max(starts) <= GOAL_LATE,
            ),
        ]
    started = sum(late != float("inf") for late in starts)
    figures += [
        _every(
            "rounds started (of their slots in the window)", started, counts["round slots"], "slots"
        ),
        _every(
            "acknowledgements recorded (of those sent on Matrix)",
            counts["acks recorded"],
            counts["acks sent"],
            "sent",
            failed=counts["acks failed to send"],
        ),
        _every(
            "logbook notes recorded (of those sent)",
            counts["notes logged"],
            counts["notes sent"],
            "sent",
        ),
    ]
    simulated = active * SPEED / 3600
    return Section(
        "A day compressed",
        f"{minutes:g} minutes of wall time at {SPEED}× ({simulated:.1f} simulated hours): a page "
        f"every {PAGE_EVERY:.0f} s to {PEOPLE} people (`--ack {ACK}s`, each with a backup; "
        f"~{ON_TIME:.0%} acknowledge on Matrix in time, ~{LATE:.0%} late, the rest never), a "
        f"round `{ROUND_WHEN}` (cron `*/6 * * * *`) with a {ROUND_WINDOW} window, the situation "
        f"board open over SSE, a logbook note every {NOTE_EVERY:.2f} s ({NOTES_PER_DAY:,} a "
        "simulated day); the real `icc-bot run` process. Real time, not a simulated clock: the "
        "bot's timers and the homeserver's timestamps are the wall clock's. RSS growth: median "
        f"of the last quarter ÷ the first, after a {warm:.0f} s warm-up; lateness by the "
        "homeserver's clock (`origin_server_ts` − due time).",
        figures,
        details=[
            _spread("escalate steps (page again + backup)", [x for _, x in escalation["escalate"]]),
            _spread("unreachable steps (the room told)", [x for _, x in escalation["unreachable"]]),
            f"steps done whose message was not found: {len(escalation['missing'])}",
            _spread("round starts", starts),
            ", ".join(
                f"{k}: {v:.0f}" if isinstance(v, float) else f"{k}: {v}" for k, v in counts.items()
            ),
            f"load average (1 min) during the run: min {min(loads):.2f}, median "
            f"{median(loads):.2f}, max {max(loads):.2f}",
            "RSS (MB) every minute: "
            + ", ".join(f"{s[1]:.0f}" for s in samples[:: max(1, int(60 / SAMPLE_EVERY))]),
        ],
        data={
            "day": {
                "rss": [(t, rss) for t, rss, _, _ in samples],
                "escalation": escalation["escalate"] + escalation["unreachable"],
                "rounds": rounds,
                "warm": warm,
                "active": active,
            }
        },
    )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        standalone(measure)

"""Paging fan-out (issues 5, 9 and 26): 10, 100, 300 and 1,000 people, side by side on one local
Synapse.

The bot pages people who already have DM rooms with it; the time from the command reaching the
homeserver to the last page stored there is compared with a bare matrix-nio client that, like a
bot, long-polls /sync, sees a message and at once sends the same number of messages (the bot's
exact content) to the same rooms concurrently: the floor any bot has on this homeserver. Both are
read from the homeserver's own timestamps (`origin_server_ts`). Runs alternate bot and bare
client. Goals: ratio ≤ 1.2 at 1,000 people (issue 26), ≤ 1.5 at 10, 100 and 300 (the first
round's goal, kept: at 10 people the bot's fixed cost — the command's trip through its /sync,
recording the page — is a large share of ~0.1 s of sends); first page out ≤ 1 s at every size.
`--quick` pages 10 and 50 people; ICC_BENCH_PAGING_SIZES (e.g. `10,1000`) chooses the sizes of
either kind of run.

Run on its own: .venv/bin/python -m bench.bench_paging [--quick] [--db sqlite|postgresql]
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from bench.harness import (
    BOT_PASSWORD,
    Backend,
    Figure,
    Section,
    bounded,
    directory,
    login,
    median,
    on_database,
    register_many,
    server_event,
    server_ts,
    settle,
    standalone,
    start_bot,
)
from bot.app import App, Tuning
from bot.devserver import DevServer
from bot.storage import page_store
from bot.storage.models import PageTargetRow

SIZES = (10, 100, 300, 1_000)
GOAL, FIRST_GOAL = 1.5, 1.0
GOALS = {1_000: 1.2}  # the ratio goal at a size, where it is not GOAL
# The warm-up page that creates everyone's DM room goes to this many people at a time. A first
# page to 1,000 people with no DM room has the bot create 1,000 rooms at once
# (`DirectRooms.rooms_for`): on a 2-core machine Synapse took minutes, its clients timed out
# and nio retried (3,000 dropped connections, 2,000 createRoom requests for 1,000 rooms).
# The measured pages all go to people who have their room already.
WARM_UP_AT_ONCE = 100


def goal(size: int) -> float:
    return GOALS.get(size, GOAL)


def sizes_asked(quick: bool) -> tuple[int, ...]:
    chosen = os.environ.get("ICC_BENCH_PAGING_SIZES")
    if chosen:
        return tuple(sorted(int(s) for s in chosen.split(",")))
    return (10, 50) if quick else SIZES


async def count_targets(app: App, page_id: int, *where: Any) -> int:
    """How many of the page's rows match `where`. The bot shares this process: waits count (one
    cheap query a quarter-second) instead of reading the rows — reading 300 rows every 50 ms took
    most of the CPU the bot was being measured on. Timings come from the homeserver, so noticing
    late changes nothing measured."""
    query = (
        select(func.count())
        .select_from(PageTargetRow)
        .where(col(PageTargetRow.page_id) == page_id, *where)
    )
    async with app.services.db.session() as session:  # type: ignore[union-attr]
        return (await session.exec(query)).one()


async def wait_delivered(app: App, page_id: int, people: int, timeout: float = 120) -> list:
    """The page's rows once every one is delivered."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        if await count_targets(app, page_id, col(PageTargetRow.event_id).is_not(None)) < people:
            continue
        async with app.services.db.session() as session:  # type: ignore[union-attr]
            return await page_store.targets(session, page_id)
    raise TimeoutError(f"page {page_id} not delivered to {people} people in {timeout}s")


async def wait_board(app: App, page_id: int, timeout: float = 60) -> None:
    """Until the page's board is posted: the bot's last act for a page, which must not overlap
    the baseline's run that follows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        async with app.services.db.session() as session:  # type: ignore[union-attr]
            page = await page_store.page(session, page_id)
        if page is not None and page.board_event_id:
            return
    raise TimeoutError(f"page {page_id} has no board after {timeout}s")


@on_database("paging")
async def measure(
    server: DevServer, work: Path, quick: bool, backend: Backend, url: str
) -> Section:
    runs, sizes = (3 if quick else 9), sizes_asked(quick)
    lead_id = server.register(backend.user("lead-paging"), "bench-password-2")
    handles = [f"p{n:03d}" for n in range(max(sizes))]
    partners = dict(zip(handles, register_many(server, handles), strict=True))
    groups = {f"g{size}": handles[:size] for size in sizes}
    chunks = range(0, len(handles), WARM_UP_AT_ONCE)
    groups |= {f"w{start}": handles[start : start + WARM_UP_AT_ONCE] for start in chunks}
    app, task, bot_id = await start_bot(
        server,
        work,
        directory(lead_id, partners, groups=groups),
        Tuning(sync_timeout_ms=5_000),
        name=backend.user("iccbot-paging"),
        database_url=url,
    )
    lead = await login(server.base_url, lead_id)
    results: dict[int, dict[str, list[float]]] = {}
    try:
        room = await _activation_room(lead, bot_id)
        bot_client = app.services.messenger._client  # type: ignore[union-attr]

        async def page(size: int, text: str, group: str = "") -> tuple[list[float], list]:
            sent = await lead.room_send(
                room,
                "m.room.message",
                {"msgtype": "m.text", "body": f"!icc page {group or f'g{size}'} {text} --ack 1h"},
            )
            command_ts = await server_ts(lead, room, sent.event_id)
            found = None
            while found is None:
                async with app.services.db.session() as session:  # type: ignore[union-attr]
                    found = await page_store.page_by_event(session, sent.event_id)
                await asyncio.sleep(0.1)
            rows = await wait_delivered(app, found.id, size)
            await wait_board(app, found.id)
            stamps = await bounded(
                (server_ts(bot_client, r.dm_room_id, r.event_id) for r in rows), limit=20
            )
            return [(s - command_ts) / 1000 for s in sorted(stamps)], rows

        for start in chunks:  # set-up, not measured: see WARM_UP_AT_ONCE
            size = len(groups[f"w{start}"])
            await page(size, "warm-up: creates the DM rooms", group=f"w{start}")
        await asyncio.sleep(3)  # let the bot's sync digest the new rooms first
        bare = await login(server.base_url, bot_id, BOT_PASSWORD, pool=0)
        await bare.sync(timeout=0)
        for size in sizes:
            times = results.setdefault(
                size, {"bot": [], "first": [], "bare": [], "bare first": [], "bare sends": []}
            )
            contents = None
            for n in range(runs):
                await settle(server)
                offsets, rows = await page(size, f"measured run {n}")
                times["bot"].append(offsets[-1])
                times["first"].append(offsets[0])
                contents = contents or await _contents(bot_client, rows)
                await settle(server)
                last, first = await _bare_bot(bare, lead, room, rows, contents, n)
                times["bare"].append(last)
                times["bare first"].append(first)
                await settle(server)
                times["bare sends"].append(await _bare(bare, rows, contents))
        await bare.close()
    finally:
        await lead.close()
        app.stop()
        await task
    return _section(results, runs)


async def _activation_room(lead, bot_id: str) -> str:  # type: ignore[no-untyped-def]
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
    return room


async def _contents(bot_client, rows: list) -> list[dict]:  # type: ignore[no-untyped-def]
    """The bot's messages of a page, as the homeserver holds them."""
    return await bounded(
        (server_event(bot_client, r.dm_room_id, r.event_id) for r in rows), limit=20
    )


async def _bare_bot(  # type: ignore[no-untyped-def]
    bare, lead, room: str, rows: list, contents: list[dict], n: int
) -> tuple[float, float]:
    """The floor for a bot: a bare nio client, long-polling /sync like the bot, sees a message
    from the lead and at once sends the bot's messages of a page to the same rooms concurrently;
    seconds from that message to the last page and to the first, both on the homeserver's
    clock. (With hundreds of sends at once Synapse works on them side by side, so the first
    lands late too: the bare client's first page is what the bot's is compared with.)"""
    trigger = f"bare run {n}"

    async def wait_for_trigger() -> None:
        while True:
            response = await bare.sync(timeout=30_000)
            events = response.rooms.join.get(room)
            if events and any(getattr(e, "body", None) == trigger for e in events.timeline.events):
                return

    await bare.sync(timeout=0)  # up to date, so the next sync long-polls
    waiting = asyncio.create_task(wait_for_trigger())
    await asyncio.sleep(0.3)  # the long-poll is in place, as the bot's is
    sent = await lead.room_send(room, "m.room.message", {"msgtype": "m.text", "body": trigger})
    await waiting
    responses = await asyncio.gather(
        *(
            bare.room_send(r.dm_room_id, "m.room.message", c["content"])
            for r, c in zip(rows, contents, strict=True)
        )
    )
    trigger_ts = await server_ts(lead, room, sent.event_id)
    stamps = await bounded(
        (
            server_ts(bare, r.dm_room_id, resp.event_id)
            for r, resp in zip(rows, responses, strict=True)
        ),
        limit=20,
    )
    return (max(stamps) - trigger_ts) / 1000, (min(stamps) - trigger_ts) / 1000


async def _bare(bare, rows: list, contents: list[dict]) -> float:  # type: ignore[no-untyped-def]
    """A bare client replays the bot's own messages of a page to the same rooms, concurrently;
    seconds from its first send to the last message on the homeserver."""
    start_ms = time.time() * 1000
    responses = await asyncio.gather(
        *(
            bare.room_send(r.dm_room_id, "m.room.message", c["content"])
            for r, c in zip(rows, contents, strict=True)
        )
    )
    stamps = await bounded(
        (
            server_ts(bare, r.dm_room_id, resp.event_id)
            for r, resp in zip(rows, responses, strict=True)
        ),
        limit=20,
    )
    return (max(stamps) - start_ms) / 1000


def _section(results: dict[int, dict[str, list[float]]], runs: int) -> Section:
    figures = []
    for size, times in results.items():
        bot, bare = median(times["bot"]), median(times["bare"])
        figures.append(
            Figure(
                f"{size} people: command → last page on the homeserver (median of {runs})",
                bot,
                baseline=bare,
                baseline_name="bare nio bot: sync, then the same sends",
                goal=f"≤ {goal(size)}× bare",
                met=bot <= goal(size) * bare,
            )
        )
    for size, times in results.items():
        first = median(times["first"])
        figures.append(
            Figure(
                f"{size} people: command → first page out",
                first,
                baseline=median(times["bare first"]),
                baseline_name="bare nio bot's first",
                goal=f"≤ {FIRST_GOAL:.0f} s",
                met=first <= FIRST_GOAL,
            )
        )
    details = [
        f"{size} people, {side}: " + ", ".join(f"{t:.3f}" for t in times[side]) + " s"
        for size, times in results.items()
        for side in ("bot", "bare", "bare sends", "first", "bare first")
    ]
    return Section(
        "Page fan-out",
        "People with existing DM rooms paged by one command, against a bare matrix-nio client "
        "that long-polls /sync like the bot, sees a message from the lead and at once sends the "
        "same messages (the bot's own content) to the same rooms concurrently: the floor this "
        "homeserver sets for any bot. Both timed by the homeserver (`origin_server_ts`) from the "
        "message that set them off. `bare sends` (in the details) is the same client timed from "
        "its first send, without the trip through /sync. Bot in-process.",
        figures,
        details=details,
        data={"fanout": {s: t for s, t in results.items()}},
    )


if __name__ == "__main__":
    standalone(measure)

"""Escalation steps (issue 9): how late the bot acts on unanswered pages.

50 people (10 with --quick), each with a backup, are paged with `--ack 10s` and nobody answers:
at the deadline, 50 *escalate* steps fall due at once (page again + page the backup), and ten
seconds later 50 *unreachable* steps (tell the activation room) — 100 steps through the real
timers, a burst as a page to a whole group would cause. Lateness of a step = its last message's
`origin_server_ts` − the step's due time. Baseline: a bare nio client sending the same messages
(the bot's own content, to the same rooms) concurrently at a due time of its own. Goal: p95 ≤ 2 s.

Run on its own: .venv/bin/python -m bench.bench_escalation [--quick]
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from bench.bench_paging import _activation_room, count_targets, wait_delivered
from bench.harness import (
    BOT_PASSWORD,
    Backend,
    Section,
    bounded,
    lateness_figures,
    login,
    median,
    on_database,
    percentile,
    register_many,
    server_event,
    server_ts,
    settle,
    standalone,
    start_bot,
)
from bot.app import App
from bot.devserver import DevServer
from bot.storage import page_store
from bot.storage.models import PageTargetRow, Timer
from bot.timeutil import utcnow

ACK, GOAL = 10, 2.0


def _directory(lead_id: str, paged: dict[str, str], backups: dict[str, str]) -> dict[str, Any]:
    contact = {"organisation": "nccn", "role": "partner"}
    return {
        "organisations": [{"key": "nccn", "name": "NCCN", "kind": "national"}],
        "groups": {"paged": "paged", "backups": "backups"},
        "contacts": [
            {"handle": "lead", "matrix_id": lead_id, "organisation": "nccn", "role": "icc-lead"}
        ]
        + [
            contact | {"handle": h, "name": f"Person {h}", "matrix_id": m, "groups": ["paged"]}
            for h, m in paged.items()
        ]
        + [
            contact | {"handle": h, "name": f"Person {h}", "matrix_id": m, "groups": ["backups"]}
            for h, m in backups.items()
        ],
    }


@on_database("escalation")
async def measure(
    server: DevServer, work: Path, quick: bool, backend: Backend, url: str
) -> Section:
    people = 10 if quick else 50
    lead_id = server.register(backend.user("lead-escalation"), "bench-password-2")
    paged_handles = [f"e{n:03d}" for n in range(people)]
    backup_handles = [f"b{n:03d}" for n in range(people)]
    paged = dict(zip(paged_handles, register_many(server, paged_handles), strict=True))
    backups = dict(zip(backup_handles, register_many(server, backup_handles), strict=True))
    dir_data = _directory(lead_id, paged, backups)
    for contact in dir_data["contacts"][1 : people + 1]:
        contact["backup"] = "b" + contact["handle"][1:]
    app, task, bot_id = await start_bot(
        server, work, dir_data, name=backend.user("iccbot-escalation"), database_url=url
    )
    lead = await login(server.base_url, lead_id)
    try:
        room = await _activation_room(lead, bot_id)
        await _page(app, lead, room, "paged,backups warm-up: creates the DM rooms --ack 1h")
        await settle(server)
        page_id = await _page(app, lead, room, f"paged Escalation bench --ack {ACK}s")
        await _wait_unreachable(app, page_id, people, timeout=4 * ACK + 60)
        bot_client = app.services.messenger._client  # type: ignore[union-attr]
        escalate, unreachable, sends = await _lateness(app, bot_client, lead, room, page_id)
        bare = await login(server.base_url, bot_id, BOT_PASSWORD, pool=0)
        await settle(server)
        bare_escalate = await _bare(bare, sends["escalate"], per_unit=2)
        await settle(server)
        bare_unreachable = await _bare(bare, sends["unreachable"], per_unit=1)
        await bare.close()
    finally:
        await lead.close()
        app.stop()
        await task
    return _section(escalate, unreachable, bare_escalate, bare_unreachable)


async def _page(app: App, lead, room: str, args: str) -> int:  # type: ignore[no-untyped-def]
    sent = await lead.room_send(
        room, "m.room.message", {"msgtype": "m.text", "body": f"!icc page {args}"}
    )
    found = None
    while found is None:
        await asyncio.sleep(0.05)
        async with app.services.db.session() as session:  # type: ignore[union-attr]
            found = await page_store.page_by_event(session, sent.event_id)
    async with app.services.db.session() as session:  # type: ignore[union-attr]
        count = len(await page_store.targets(session, found.id))
    await wait_delivered(app, found.id, count)
    return found.id


async def _wait_unreachable(app: App, page_id: int, people: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        unreachable = await count_targets(
            app,
            page_id,
            col(PageTargetRow.covers) == "",
            col(PageTargetRow.unreachable_at).is_not(None),
        )
        if unreachable == people:
            await asyncio.sleep(2)  # the last notices leave after the rows are marked
            return
        await asyncio.sleep(0.25)
    raise TimeoutError(f"the escalation of page {page_id} did not finish in {timeout}s")


async def _lateness(app: App, bot_client, lead, room: str, page_id: int):  # type: ignore[no-untyped-def]
    """Per unit: (escalate lateness, unreachable lateness), and the bot's messages to replay."""
    async with app.services.db.session() as session:  # type: ignore[union-attr]
        rows = await page_store.targets(session, page_id)
        timers = (
            await session.exec(select(Timer).where(col(Timer.key).contains(f":pg{page_id}:")))
        ).all()
    due = {(t.payload["handle"], t.payload["step"]): t.due_at for t in timers}
    primary = [r for r in rows if not r.covers]
    backup = {r.covers: r for r in rows if r.covers}
    notices = await _room_notices(lead, room)
    escalate, unreachable = [], []
    sends: dict[str, list[tuple[str, dict]]] = {"escalate": [], "unreachable": []}
    for row in primary:
        stand_in: PageTargetRow = backup[row.handle]
        dm, repaged = row.dm_room_id, row.repage_event_id
        stand_in_dm, stand_in_page = stand_in.dm_room_id, stand_in.event_id
        if not (dm and repaged and stand_in_dm and stand_in_page):
            raise RuntimeError(f"{row.handle}: the escalation step sent nothing")
        repage = await server_event(bot_client, dm, repaged)
        backup_page = await server_event(bot_client, stand_in_dm, stand_in_page)
        step_due = due[(row.handle, "escalate")].timestamp()
        last = max(repage["origin_server_ts"], backup_page["origin_server_ts"]) / 1000
        escalate.append(last - step_due)
        notice = next(n for n in notices if f"could not reach {row.name} (" in n["content"]["body"])
        unreachable.append(
            notice["origin_server_ts"] / 1000 - due[(row.handle, "unreachable")].timestamp()
        )
        sends["escalate"] += [
            (dm, repage["content"]),
            (stand_in_dm, backup_page["content"]),
        ]
        sends["unreachable"].append((room, notice["content"]))
    return escalate, unreachable, sends


async def _room_notices(lead, room: str) -> list[dict]:  # type: ignore[no-untyped-def]
    sync = await lead.sync(timeout=0)
    response = await lead.room_messages(room, start=sync.next_batch, limit=500)
    return [
        e.source
        for e in response.chunk
        if (e.source.get("content") or {}).get("msgtype") == "m.notice"
    ]


async def _bare(bare, sends: list[tuple[str, dict]], per_unit: int) -> list[float]:  # type: ignore[no-untyped-def]
    """The same messages sent concurrently at a due time 2 s ahead; lateness of each unit
    (the escalate step's two messages count as one unit: the later of them)."""
    due = utcnow() + timedelta(seconds=2)
    await asyncio.sleep((due - utcnow()).total_seconds())
    responses = await asyncio.gather(
        *(bare.room_send(r, "m.room.message", content) for r, content in sends)
    )
    stamps = await bounded(
        (server_ts(bare, r, resp.event_id) for (r, _), resp in zip(sends, responses, strict=True)),
        limit=20,
    )
    lateness = [s / 1000 - due.timestamp() for s in stamps]
    return [max(lateness[i : i + per_unit]) for i in range(0, len(lateness), per_unit)]


def _section(
    escalate: list[float],
    unreachable: list[float],
    bare_escalate: list[float],
    bare_unreachable: list[float],
) -> Section:
    steps, bare = escalate + unreachable, bare_escalate + bare_unreachable
    figures = lateness_figures(
        "escalation step lateness", steps, bare, "bare client, same messages", GOAL
    )
    details = [
        f"{name}: p50 {median(v):.3f} s, p95 {percentile(v, 0.95):.3f} s, max {max(v):.3f} s"
        for name, v in (
            ("escalate (page again + backup)", escalate),
            ("unreachable (tell the room)", unreachable),
            ("bare, escalate messages", bare_escalate),
            ("bare, unreachable notices", bare_unreachable),
        )
    ]
    return Section(
        "Scheduler accuracy: escalation",
        f"{len(escalate)} people paged with `--ack {ACK}s`, none answers: {len(escalate)} "
        f"escalate steps due at once, then {len(unreachable)} unreachable steps; lateness = the "
        "step's last message on the homeserver − its due time (bot in-process). Baseline: "
        "a bare client sending the same messages concurrently at a due time of its own.",
        figures,
        details=details,
        data={"escalation": {"bot": steps, "bare": bare}},
    )


if __name__ == "__main__":
    standalone(measure)

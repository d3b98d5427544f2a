"""Helpers for the live situation board: an activation seeded on the desk with something in each
of the board's parts, a member's board link as the bot gives it, the server-sent events of an
open board read over HTTP, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
from playwright.async_api import Browser, Page, async_playwright

from bot.matrix.sync import ReadReceipt
from bot.storage import page_store
from bot.storage.models import ActionRow
from bot.timeutil import utcnow
from tests.support.desk import Desk

PUBLIC_URL = "https://icc.example"
CHROMIUM = "/usr/bin/chromium"
WALL = {"width": 1920, "height": 1080}
PHONE = {"width": 390, "height": 844}


@dataclass(frozen=True)
class Seeded:
    ref: str
    room: str


async def seeded_activation(desk: Desk) -> Seeded:
    """An exercise at TLP:AMBER with its level raised once; PG-1 to the partner (acknowledged)
    and the deputy (seen), PG-2 to the DG (urgent, waiting); RQ-1 to partner and DG, answered by
    the partner; A-1 overdue, A-2 with no due time; a daily round; two log entries, one a
    decision; and a sitrep. On the paging desk (`paging_directory`)."""
    control = desk.room("lead", "member", "partner", "dg", "deputy")
    ref, room, _ = await desk.open_activation(
        "lead", control, '!icc activate "Meuse flooding" --exercise --tlp amber'
    )
    await desk.say("lead", room, "!icc level information-sharing")
    await desk.say("member", room, "!icc page partner,deputy Do you need pumps in Visé? --ack 30m")
    await delivered_ago(desk, "partner", timedelta(minutes=2, seconds=14), page=1)
    await desk.say("partner", desk.dm_of("partner"), "!icc ack")
    await mark_seen(desk, "deputy", page=1)
    await desk.say("member", room, "!icc page dg Brief the DG on the dykes --urgent")
    await desk.say("member", room, "!icc ask partner,dg Close the Meuse to shipping? --by 2h")
    await desk.say("partner", desk.dm_of("partner"), "!icc input RQ-1 Oui, fermer à Visé")
    await desk.say("member", room, "!icc action Draft the consular advice --owner member --due 2h")
    await desk.say("member", room, "!icc action Book the liaison flight --owner deputy")
    await overdue(desk, 1)
    await desk.say("lead", room, "!icc round schedule daily 09:00 --agenda Pumps and dykes")
    await desk.say("member", room, "!icc log Water at Liège 30 cm above the alert level")
    await desk.say("lead", room, "!icc log Evacuate the quays of Visé --decision")
    await desk.say("member", room, "!icc sitrep")
    return Seeded(ref, room)


async def delivered_ago(desk: Desk, person: str, ago: timedelta, *, page: int) -> None:
    """`person`'s page reached them `ago` (their ack's latency runs from then)."""
    async with desk.services.db.session() as session:
        [row] = [r for r in await page_store.targets(session, page) if r.handle == person]
        await page_store.mark(session, row.id, delivered_at=utcnow() - ago)


async def mark_seen(desk: Desk, person: str, *, page: int) -> None:
    """`person`'s read receipt on their page, as the sync would hand it over."""
    async with desk.services.db.session() as session:
        [row] = [r for r in await page_store.targets(session, page) if r.handle == person]
    receipt = ReadReceipt(desk.who(person), row.event_id or "", utcnow())
    await desk.services.seen.on_receipts(desk.dm_of(person), [receipt])


async def overdue(desk: Desk, action: int) -> None:
    """Action A-<n> fell due ten minutes ago (its chase not fired: the desk fires no timer)."""
    async with desk.services.db.session() as session:
        row = await session.get(ActionRow, action)
        assert row is not None
        row.due_at = utcnow() - timedelta(minutes=10)
        session.add(row)


async def board_path(desk: Desk, room: str, person: str = "member") -> str:
    """`person` types `board` in `room`; the path of the link the bot sent them by DM."""
    await desk.say(person, room, "!icc board")
    found = [
        re.search(rf"{re.escape(PUBLIC_URL)}(/board/\S+)", text)
        for text in desk.messenger.texts(desk.dm_of(person))
    ]
    paths = [f.group(1) for f in found if f]
    assert paths, f"no board link in {person}'s DM"
    return paths[-1]


async def next_event(stream: aiohttp.StreamReader, timeout: float = 5) -> tuple[str, str]:
    """The next server-sent event (name, data) on an open `/events` stream; comments skipped."""
    name, data = "message", []
    async with asyncio.timeout(timeout):
        while True:
            line = (await stream.readline()).decode().rstrip("\n")
            if not line:
                if data:
                    return name, "\n".join(data)
                continue
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium (`apt-get install chromium`; `.ci/run` does), headless, through
    Playwright's Python package (no browser of Playwright's own)."""
    if not shutil.which(CHROMIUM):
        raise RuntimeError("Chromium is not installed: apt-get install chromium (.ci/run does)")
    sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []  # root: Chromium needs it
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=sandbox)
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def board_page(
    url: str, *, viewport: dict[str, int] = WALL, zone: str = "Europe/Brussels", **context: Any
) -> AsyncIterator[tuple[Page, list[str]]]:
    """`url` open in Chromium at `viewport`, in the time zone `zone`, once its board is live;
    the page and every URL it requested (the board's own included), in order."""
    async with chromium() as browser:
        browser_context = await browser.new_context(viewport=viewport, timezone_id=zone, **context)
        page = await browser_context.new_page()
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        await page.goto(url)
        await page.wait_for_selector("#live.on")
        yield page, requested


async def shows(page: Page, text: str, *, within: float) -> None:
    """Wait until the open board shows `text` (a locator: the page's CSP forbids the `eval`
    that `wait_for_function` would need)."""
    await page.locator("#board", has_text=text).wait_for(timeout=within * 1000)

"""E-mail fan-out (issue 20): a page's e-mail fallback to 300 people through a real SMTP server
on loopback, against a bare aiosmtplib client sending the same messages in the same run.

Goal: ≤ 1.3× the bare client (medians).

The bot: 300 contacts, each with an e-mail address and `channels: [matrix, email]`, paged at
once; their 300 fallback steps (`TimerKind.PAGE_FALLBACK`) are then fired together through the
scheduler's own path (`Scheduler.fire_now`: one claim, the steps handed as one batch to
`Fallback.on_steps`): one read of their rows, each e-mail rendered from the templates in the
person's language (once per wording), sent with aiosmtplib (`bot.reach.email`), every try
recorded in one write. The bot sends 32 at a time (`SENDS_AT_ONCE`) over SMTP connections it
keeps open for the burst (`Mailer.connections`: opened as sends need them, so at most 32, each
reused from one message to the next, closed after the burst). Timed: from the firing to the
last message received by the SMTP server.

The bare client: the same 300 messages as the server received them in the bot's run (same
envelope, same bytes), sent with aiosmtplib as many at a time as the bot sends them, and over
connections kept for the burst as the bot's are: 32 `aiosmtplib.SMTP` clients, each connecting
at its first message and sending one message after another with `sendmail`, then QUIT. The
bare client pools because the bot does: a baseline opening a connection for every message
would credit the bot with the pool, not measure what the bot adds to the same work (bench/
README.md, History, 2026-12-07). The details keep a second bare run, one connection a message
with `aiosmtplib.send` (what the bot did before it pooled), to show what pooling is worth.
Runs alternate which of the bot and the pooled bare client goes first, the unpooled one last;
each starts once this process and the server are idle.

The server is aiosmtpd in a process of its own (`bench/smtp_sink.py`, which says why not a
thread), stamping each message's arrival on the monotonic clock both processes share.

The bot runs on the fast tier's desk (`tests/support/desk.py`): the real services graph built by
`bot.services.build_services`, a real database (SQLite or PostgreSQL), the real scheduler and handlers, with
Matrix recorded instead of sent (the page's Matrix side is set-up here, not measured). It is
the one bench that imports from `tests/support`: the desk is how the bot's services run without
a homeserver, and a copy here would drift from the one the tests keep in step with `bot.app`.
No homeserver is used: the suite runs it like the others (its server unused), and on its own
it starts none: .venv/bin/python -m bench.bench_email [--quick]
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosmtplib
from sqlalchemy import func
from sqlmodel import col, select

from bench.harness import (
    LANGS,
    SQLITE,
    ZONES,
    Backend,
    Figure,
    Section,
    cpu_seconds,
    median,
    quiet,
    standalone,
)
from bench.smtp_sink import Received, SmtpSink
from bot.devserver import DevServer
from bot.reach.email import SEND_TIMEOUT
from bot.reach.fallback import SENDS_AT_ONCE
from bot.storage.models import PageAttemptRow, PageTargetRow, TimerKind
from tests.support.desk import Desk

PEOPLE, GOAL = 300, 1.3
LEAD = "@lead:desk.test"
TEXT = (
    "River Meuse at Liège above the 1 in 100 year level; are your high-capacity pumping teams "
    "deployable within 12 hours? Answer with the number of modules and the expected departure."
)


def _directory(people: int) -> dict[str, Any]:
    """The lead and `people` partners, each with an e-mail address after Matrix, in four
    languages (so the e-mails come from four sets of templates)."""
    return {
        "organisations": [
            {"key": f"org-{o}", "name": f"Organisation {o}", "kind": "national", "country": "BE"}
            for o in range(20)
        ],
        "contacts": [
            {
                "handle": "lead",
                "name": "Lead",
                "organisation": "org-0",
                "matrix_id": LEAD,
                "role": "icc-lead",
            }
        ]
        + [
            {
                "handle": f"p{n:03d}",
                "name": f"Partner {n}",
                "organisation": f"org-{n % 20}",
                "matrix_id": f"@p{n:03d}:desk.test",
                "role": "partner",
                "languages": list(LANGS[n % len(LANGS)]),
                "timezone": ZONES[n % len(ZONES)],
                "groups": ["everyone"],
                "email": f"duty-{n:03d}@org-{n % 20}.example",
                "channels": ["matrix", "email"],
            }
            for n in range(people)
        ],
        "groups": {"everyone": "Everyone"},
    }


@dataclass
class Run:
    """One timed fan-out: seconds from its start to the first and the last message at the
    server, when the senders were done, the most connections open at once, the CPU seconds of
    this process and of the server's."""

    last: float
    first: float
    done: float
    peak: int
    cpu: float
    server_cpu: float


async def _bot_run(desk: Desk, sink: SmtpSink, people: int) -> tuple[Run, list[Received]]:
    """Fire the page's fallback steps, all at once, through the scheduler."""
    timers = await desk.armed(TimerKind.PAGE_FALLBACK)
    assert len(timers) == people, f"{len(timers)} fallback steps armed, not {people}"
    page_id = await _page_of(desk, timers[0].payload["target"])
    await quiet(os.getpid(), sink.pid)
    gc.collect()
    server_cpu, cpu, started = cpu_seconds(sink.pid), time.process_time(), time.monotonic()
    await desk.services.scheduler.fire_now([t.id for t in timers], wait=120)
    done, cpu = time.monotonic() - started, time.process_time() - cpu
    taken = await sink.take(people)
    server_cpu = cpu_seconds(sink.pid) - server_cpu
    assert await _mailed(desk, page_id) == people, "not every e-mail recorded as sent"
    assert not await desk.armed(TimerKind.PAGE_FALLBACK), "fallback steps left over"
    run = _run(taken.messages, started, done, taken.peak_connections, cpu, server_cpu)
    return run, taken.messages


async def _bare_run(
    sink: SmtpSink, messages: list[Received], concurrency: int, *, pooled: bool
) -> Run:
    """The same messages (envelope and bytes), `concurrency` at a time: over `concurrency`
    connections, each opened at its first message and kept for the burst, as the bot's
    `Mailer.connections` (`pooled`); else one connection a message (`aiosmtplib.send`)."""
    host, port = "127.0.0.1", sink.port
    options: dict[str, Any] = {
        "hostname": host,
        "port": port,
        "use_tls": False,
        "start_tls": None,  # as the bot's Mailer: STARTTLS if offered (this server doesn't)
        "timeout": SEND_TIMEOUT,
    }
    gate = asyncio.Semaphore(concurrency)
    queue = iter(messages)

    async def one(message: Received) -> None:
        async with gate:
            await aiosmtplib.send(
                message.content,
                sender=message.mail_from,
                recipients=list(message.rcpt_tos),
                **options,
            )

    async def connection() -> None:
        client: aiosmtplib.SMTP | None = None
        for message in queue:  # shared: each message goes to the next connection free
            if client is None:
                client = aiosmtplib.SMTP(**options)
                await client.connect()
            await client.sendmail(message.mail_from, list(message.rcpt_tos), message.content)
        if client is not None:
            await client.quit()

    await quiet(os.getpid(), sink.pid)
    gc.collect()
    server_cpu, cpu, started = cpu_seconds(sink.pid), time.process_time(), time.monotonic()
    if pooled:
        await asyncio.gather(*(connection() for _ in range(concurrency)))
    else:
        await asyncio.gather(*(one(m) for m in messages))
    done, cpu = time.monotonic() - started, time.process_time() - cpu
    taken = await sink.take(len(messages))
    server_cpu = cpu_seconds(sink.pid) - server_cpu
    return _run(taken.messages, started, done, taken.peak_connections, cpu, server_cpu)


def _run(
    messages: list[Received], started: float, done: float, peak: int, cpu: float, server: float
) -> Run:
    arrivals = [m.arrived - started for m in messages]
    return Run(max(arrivals), min(arrivals), done, peak, cpu, server)


async def _page_of(desk: Desk, target_id: int) -> int:
    async with desk.services.db.session() as session:
        row = await session.get(PageTargetRow, target_id)
    assert row is not None
    return row.page_id


async def _mailed(desk: Desk, page_id: int) -> int:
    """How many of the page's people have an e-mail try recorded as sent."""
    query = (
        select(func.count())
        .select_from(PageAttemptRow)
        .join(PageTargetRow, col(PageTargetRow.id) == col(PageAttemptRow.target_id))
        .where(
            col(PageTargetRow.page_id) == page_id,
            col(PageAttemptRow.channel) == "email",
            col(PageAttemptRow.sent_at).is_not(None),
        )
    )
    async with desk.services.db.session() as session:
        return (await session.exec(query)).one()


def _concurrency(desk: Desk) -> int:
    """How many e-mails the bot sends at a time: the fallback's steps that fall due together
    are one batch (`Scheduler.on_batch`), sent `SENDS_AT_ONCE` at a time; the bare client sends
    as many at a time."""
    del desk  # the same for every desk: a constant of the fallback
    return SENDS_AT_ONCE


async def measure(
    server: DevServer | None, work: Path, quick: bool, backend: Backend = SQLITE
) -> Section:
    with backend.database(work / "desk", "email") as url:
        return await _measure(work, quick, url)


async def _measure(work: Path, quick: bool, url: str) -> Section:
    people, rounds = (50, 3) if quick else (PEOPLE, 7)
    sink = SmtpSink()
    sink.start()
    env = {
        "ICC_SMTP_URL": sink.url,
        "ICC_MAIL_FROM": "icc@crisis.example",
        "ICC_PUBLIC_URL": "https://icc.crisis.example",
        "ICC_FALLBACK_AFTER": "10m",  # never on its own: the bench fires the steps
    }
    desk_dir = work / "desk"
    desk_dir.mkdir(parents=True, exist_ok=True)
    bot: list[Run] = []
    bare: list[Run] = []
    single: list[Run] = []  # the bare client, one connection a message
    try:
        desk = await Desk.open(
            desk_dir,
            url,
            {"lead": LEAD},
            _directory(people),
            env=env,
        )
        try:
            concurrency = _concurrency(desk)
            _ref, room, _ = await desk.open_activation("lead", desk.room("lead"))

            async def page(n: int) -> None:
                await desk.say("lead", room, f"!icc page everyone {TEXT} (round {n}) --ack 1h")

            await page(0)  # warm-up: the DM rooms, the templates, the first connections
            _, messages = await _bot_run(desk, sink, people)
            await _bare_run(sink, messages, concurrency, pooled=True)
            await _bare_run(sink, messages, concurrency, pooled=False)
            for n in range(1, rounds + 1):
                await page(n)
                if n % 2:  # the bare client first, with the last round's messages
                    bare.append(await _bare_run(sink, messages, concurrency, pooled=True))
                    run, messages = await _bot_run(desk, sink, people)
                    bot.append(run)
                else:
                    run, messages = await _bot_run(desk, sink, people)
                    bot.append(run)
                    bare.append(await _bare_run(sink, messages, concurrency, pooled=True))
                single.append(await _bare_run(sink, messages, concurrency, pooled=False))
        finally:
            await desk.close()
    finally:
        sink.stop()
    return _section(people, concurrency, bot, bare, single)


def _section(
    people: int, concurrency: int, bot: list[Run], bare: list[Run], single: list[Run]
) -> Section:
    rounds = len(bot)
    last, base = median([r.last for r in bot]), median([r.last for r in bare])
    extra = [(b.last - a.last) / people for b, a in zip(bot, bare, strict=True)]
    figures = [
        Figure(
            f"{people} e-mails: fallback steps fired → last message at the SMTP server "
            f"(median of {rounds})",
            last,
            baseline=base,
            baseline_name="bare aiosmtplib, same messages, connections kept for the burst",
            goal=f"≤ {GOAL}× bare",
            met=last <= GOAL * base,
        ),
        Figure(
            "per message (the same, ÷ messages)",
            last / people * 1000,
            unit="ms",
            baseline=base / people * 1000,
            baseline_name="bare aiosmtplib",
        ),
        Figure("the bot's extra per message (median of the rounds)", median(extra) * 1000, "ms"),
        Figure(
            "first message at the SMTP server",
            median([r.first for r in bot]),
            baseline=median([r.first for r in bare]),
            baseline_name="bare aiosmtplib",
        ),
        Figure(
            "CPU of the sending process per message",
            median([r.cpu for r in bot]) / people * 1000,
            unit="ms",
            baseline=median([r.cpu for r in bare]) / people * 1000,
            baseline_name="bare aiosmtplib",
        ),
    ]

    def line(label: str, values: list[float]) -> str:
        return f"- {label}: " + ", ".join(f"{v * 1000:.0f}" for v in values) + " ms"

    details = [
        f"- {concurrency} at a time on both sides (the fallback's SENDS_AT_ONCE), both over "
        "connections kept for the burst; most SMTP connections open at once at the server: "
        f"bot {max(r.peak for r in bot)}, bare {max(r.peak for r in bare)}, bare with one "
        f"connection a message {max(r.peak for r in single)}.",
        line("bot, last message", [r.last for r in bot]),
        line("bare, last message", [r.last for r in bare]),
        line(
            "bare with one connection a message (aiosmtplib.send), last message",
            [r.last for r in single],
        ),
        line("bot, all handlers done (tries recorded, timers completed)", [r.done for r in bot]),
        line("bot, CPU of this process", [r.cpu for r in bot]),
        line("bare, CPU of this process", [r.cpu for r in bare]),
        line("bare with one connection a message, CPU", [r.cpu for r in single]),
        line("the SMTP server's CPU in the bot's runs", [r.server_cpu for r in bot]),
        line("the SMTP server's CPU in the bare runs", [r.server_cpu for r in bare]),
    ]
    return Section(
        "E-mail fan-out",
        f"A page's e-mail fallback to {people} people, every step fired at once through the "
        "scheduler (claim; one batch: read the rows, render each wording once, send with "
        "aiosmtplib over SMTP connections kept open for the burst, record the tries, complete "
        "the timers), timed to the last message at a local SMTP server (aiosmtpd in its own "
        "process). Baseline: a bare aiosmtplib client sending the same messages, envelope and "
        "bytes as the server received them from the bot, with the same concurrency, over "
        "connections kept for the burst as the bot's are (one connection a message in the "
        "details, for comparison). The bot on the desk "
        "(`tests/support/desk.py`: real services, database, scheduler; Matrix recorded); no "
        "homeserver. Rounds alternate which side goes first.",
        figures,
        details,
        data={
            "email": {
                "bot": [r.last for r in bot],
                "bare": [r.last for r in bare],
                "bare_single": [r.last for r in single],
            }
        },
    )


if __name__ == "__main__":
    standalone(measure, homeserver=False)  # no homeserver needed, so none is started

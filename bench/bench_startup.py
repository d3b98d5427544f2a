"""Start-up and memory of the real `icc-bot run` process, against the bare echo bot.

Set-up: a directory of 5,000 contacts (2,000 organisations), and 200 rooms the bot has joined.
A first run records the bot's sync position and stops; so does a first run of the echo bot,
logged in as the same Matrix user (so it is in the same 200 rooms; it answers `!echo …`, which
the ICC bot ignores).

Start-up: a person sends `!icc help` while the bot is down; t0 = the process is spawned; t1 = the
reply reaches the person's client. The echo bot is timed the same way, runs alternating.
Goal: ≤ 3 s. Both run from compiled bytecode, as an installed wheel (the Docker image) does:
where PYTHONDONTWRITEBYTECODE is set, as on the benchmark machine, the editable checkout would
otherwise compile every module of the bot at every start.

Memory (issue 26): then 20 duty rotas (`config/rota/`, bench_rota's: ten calendars and ten YAML
rotas, a year of weekly shifts each), 10 playbooks (`config/playbooks/`, a dozen checklist items
in four languages, two pages and a round each), 50 round schedules (by command) and 1,000
logbook entries (through the storage layer) are added, and the web endpoint turned on; the bot
is started once more, five situation boards of the activation are opened (server-sent event
streams, as browsers hold them), the bot answers help, status, sitrep, pages, rounds, contacts,
log export, playbooks and oncall, and its peak resident set (VmHWM) is read. Goal: ≤ 150 MB
(was ≤ 200 MB without the rotas, playbooks and boards). The rotas, playbooks and web endpoint
are added after the timed starts, which stay as they were measured before.

Run on its own: .venv/bin/python -m bench.bench_startup [--quick]
"""

from __future__ import annotations

import asyncio
import compileall
from pathlib import Path
from typing import Any

import yaml
from aiohttp import ClientSession, ClientTimeout, TCPConnector

from bench.bench_rota import TEAMS, write_rotas
from bench.harness import (
    BOT_PASSWORD,
    Backend,
    Board,
    BotProcess,
    Figure,
    ReplyWatcher,
    Section,
    activate,
    big_directory,
    bot_env,
    bot_query,
    bounded,
    echo_process,
    login,
    median,
    on_database,
    seed_logbook,
    standalone,
    until_serving,
)
from bot.devserver import DevServer, free_port
from bot.settings import load_settings
from bot.situation_board.links import board_token
from bot.storage import activation_store
from bot.storage.db import Database

ROOT = Path(__file__).resolve().parent.parent
ROOMS, SCHEDULES, ENTRIES, PLAYBOOKS, BOARDS = 200, 50, 1_000, 10, 5
START_GOAL, MEMORY_GOAL = 3.0, 150.0
LOAD_COMMANDS = (
    "help",
    "status",
    "sitrep",
    "pages",
    "rounds",
    "contacts person-4",
    "log export",
    "playbooks",
    "oncall",
)
LANGUAGES = ("en", "fr", "nl", "de")


@on_database("startup")
async def measure(
    server: DevServer, work: Path, quick: bool, backend: Backend, url: str
) -> Section:
    runs, rooms_wanted = (2, 50) if quick else (5, ROOMS)
    for package in (ROOT / "bot", ROOT / "bench"):
        compileall.compile_dir(package, quiet=1)
    bot_id = server.register(backend.user("iccbot-start"), BOT_PASSWORD)
    lead_id = server.register(backend.user("lead-start"), "bench-password-2")
    people = big_directory(members_every=0)
    people["contacts"].append(
        {"handle": "lead", "matrix_id": lead_id, "organisation": "org-0", "role": "icc-lead"}
    )
    env = bot_env(server, work / "bot", bot_id, people, url)
    bot = BotProcess(env, work / "bot")
    echo = echo_process(server, work / "echo", bot_id, prefix="!echo")
    watcher = ReplyWatcher(await login(server.base_url, lead_id))
    try:
        rooms = await _join_rooms(server, watcher, bot_id, rooms_wanted)
        await watcher.start()
        await _first_run(bot, watcher, rooms[0], "!icc help", "bot.app: ready")
        await _first_run(echo, watcher, rooms[0], "!echo help", "ready")
        times: dict[str, list[float]] = {"bot": [], "echo": []}
        rss: dict[str, list[float]] = {"bot": [], "echo": []}
        for n in range(runs):
            for name, process, body in (("bot", bot, "!icc help"), ("echo", echo, "!echo help")):
                seconds, peak = await _timed_start(process, watcher, rooms[n], body)
                times[name].append(seconds)
                rss[name].append(peak)
        activation_room = await _load(bot, watcher, rooms[0], env)
        loaded_start, peak = await _memory_run(bot, watcher, activation_room)
    finally:
        await watcher.stop()
        await watcher.client.close()
        bot.stop()
        echo.stop()
    return _section(times, rss, loaded_start, peak, len(rooms))


async def _join_rooms(
    server: DevServer, watcher: ReplyWatcher, bot_id: str, count: int
) -> list[str]:
    """The person creates `count` rooms inviting the bot; a helper session of the bot joins them."""
    created = await bounded(
        (watcher.client.room_create(invite=[bot_id]) for _ in range(count)), limit=4
    )
    rooms = [r.room_id for r in created]
    helper = await login(server.base_url, bot_id, BOT_PASSWORD)
    await bounded((helper.join(r) for r in rooms), limit=4)
    await helper.logout()
    await helper.close()
    return rooms


async def _first_run(
    process: BotProcess, watcher: ReplyWatcher, room: str, body: str, ready: str
) -> None:
    """Start once to record the sync position (and for the bot, its first migration and directory
    load): until it says `ready` (a first start skips what was sent before), then answers."""
    process.start()
    await process.wait_output(ready, timeout=300)
    await watcher.round_trip(room, body, timeout=60)
    process.stop()


async def _timed_start(
    process: BotProcess,
    watcher: ReplyWatcher,
    room: str,
    body: str,
    then: tuple[str, ...] = (),
) -> tuple[float, float]:
    """(spawn → the reply to a command sent while it was down, peak RSS in MB after `then`)."""
    _, event_id = await watcher.send(room, body)
    started = process.start()
    arrived = await _answered(process, watcher, event_id, timeout=120)
    for command in then:
        await watcher.round_trip(room, f"!icc {command}")
    peak = process.peak_rss_mb()
    process.check_alive()
    process.stop()
    return arrived - started, peak


async def _answered(
    process: BotProcess, watcher: ReplyWatcher, event_id: str, timeout: float
) -> float:
    """When the reply to `event_id` arrived; fails at once if the process exits meanwhile, and
    with the end of its log if no reply comes (a start that never answered, seen once, left
    nothing to read)."""
    reply = asyncio.create_task(watcher.reply_to(event_id, timeout=timeout))
    try:
        while not reply.done():
            process.check_alive()
            await asyncio.wait({reply}, timeout=0.5)
        arrived, _ = reply.result()
        return arrived
    except TimeoutError as exc:
        tail = (process.work / "process.log").read_text(errors="replace")[-4000:]
        raise TimeoutError(f"{exc}; the bot's log:\n{tail}") from None
    finally:
        reply.cancel()


def _text(what: str, n: int) -> dict[str, str]:
    return {
        lang: f"{what} {n} ({lang}): a line as long as a real one, to be done and logged"
        for lang in LANGUAGES
    }


def _playbook(n: int) -> dict[str, Any]:
    """A playbook as the samples are (config/playbooks/), on `big_directory`'s people and
    groups and bench_rota's teams: a dozen checklist items, two pages and a round."""
    team = f"duty:team-{n % TEAMS}"
    owners = ["lead", "member", team, f"person-{100 + n}", f"org-{n}", f"group-{n}"]
    return {
        "name": _text("Bench playbook", n),
        "description": _text("What bench playbook is for", n),
        "level": "monitoring",
        "tlp": "amber",
        "invite": [f"group-{n}"],
        "checklist": [
            {"owner": owners[i % len(owners)], "due": f"+{i + 1}h", "text": _text("Item", i)}
            for i in range(12)
        ],
        "pages": [
            {"targets": [f"group-{n}", team], "ack": "15m", "text": _text("Page", n)},
            {"targets": [f"person-{200 + n}"], "text": _text("Second page", n)},
        ],
        "rounds": [
            {
                "when": "every 2h",
                "with": [f"group-{n}"],
                "window": "30m",
                "agenda": ["Situation", "Actions and decisions", "Next steps"],
            }
        ],
    }


def _configure(bot: BotProcess) -> None:
    """The duty rotas and playbooks beside the directory, and the web endpoint (the boards')."""
    config = Path(bot.env["ICC_CONFIG_DIR"])
    write_rotas(config / "rota")
    (config / "playbooks").mkdir(exist_ok=True)
    for n in range(PLAYBOOKS):
        (config / "playbooks" / f"bench-{n}.yaml").write_text(
            yaml.safe_dump(_playbook(n), sort_keys=False, allow_unicode=True)
        )
    port = free_port()
    bot.env |= {"ICC_PUBLIC_URL": f"http://127.0.0.1:{port}", "ICC_WEB_ADDR": f"127.0.0.1:{port}"}


async def _load(bot: BotProcess, watcher: ReplyWatcher, room: str, env: dict[str, str]) -> str:
    """An activation with SCHEDULES round schedules (by command) and ENTRIES logbook entries,
    the rotas and playbooks in force."""
    _configure(bot)
    bot.start()
    await watcher.round_trip(room, "!icc help", timeout=120)
    activation_room = await activate(watcher, room, "Memory bench")
    for n in range(SCHEDULES):
        await watcher.round_trip(
            activation_room, f"!icc round schedule daily {n % 24:02d}:{(7 * n) % 60:02d}"
        )
    bot.stop()
    db = Database(env["ICC_DATABASE_URL"])
    try:
        async with db.session() as session:
            activation = await activation_store.by_room(session, activation_room)
        assert activation is not None
        await seed_logbook(db, activation.ref, ENTRIES, watcher.client.user_id)
    finally:
        await db.dispose()
    _in_force(bot.work / "process.log")
    return activation_room


def _in_force(log: Path) -> None:
    """Fails unless the bot's last start put every rota and playbook in force (one with a
    problem would have the whole set refused, and the memory measured without them)."""
    lines = log.read_text(errors="replace").splitlines()
    rotas = [line for line in lines if "duty rotas in force:" in line]
    books = [line for line in lines if "playbooks in force:" in line]
    if not rotas or rotas[-1].count("team-") != TEAMS:
        raise RuntimeError(f"not every rota in force: {rotas[-1:] or 'none'}")
    if not books or books[-1].count("bench-") != PLAYBOOKS:
        raise RuntimeError(f"not every playbook in force: {books[-1:] or 'none'}")


async def _memory_run(bot: BotProcess, watcher: ReplyWatcher, room: str) -> tuple[float, float]:
    """(spawn → the reply to a `status` sent while it was down, peak RSS in MB once BOARDS boards
    of the activation are open and LOAD_COMMANDS answered)."""
    settings = load_settings(bot.env)
    [(activation_id,)] = bot_query(
        bot.env["ICC_DATABASE_URL"], "SELECT id FROM activation WHERE room_id = ?", room
    )
    events = f"{settings.public_url}/board/{board_token(settings, activation_id, 0)}/events"
    http = ClientSession(connector=TCPConnector(limit=0), timeout=ClientTimeout(total=None))
    boards: list[Board] = []
    try:
        _, event_id = await watcher.send(room, "!icc status")
        started = bot.start()
        arrived = await _answered(bot, watcher, event_id, timeout=120)
        await until_serving(http, settings.public_url or "")
        boards = [Board(http, events, "(never shown)") for _ in range(BOARDS)]
        connected = asyncio.gather(*(b.connected.wait() for b in boards))
        watched: list[asyncio.Future[Any]] = [connected, *(b.task for b in boards)]
        await asyncio.wait(watched, timeout=60, return_when="FIRST_EXCEPTION")
        for board in boards:
            if board.task.done():
                board.task.result()  # a stream that ended or failed: its error
        if not connected.done():
            raise TimeoutError(f"{BOARDS} boards not all shown within 60 s")
        for command in LOAD_COMMANDS:
            await watcher.round_trip(room, f"!icc {command}")
        peak = bot.peak_rss_mb()
        bot.check_alive()
    finally:
        await Board.close_all(boards)
        await http.close()
        bot.stop()
    return arrived - started, peak


def _section(
    times: dict[str, list[float]],
    rss: dict[str, list[float]],
    loaded: float,
    peak: float,
    rooms: int,
) -> Section:
    start = median(times["bot"])
    figures = [
        Figure(
            f"start-up: spawn → first answered command, {rooms} rooms, 5,000 contacts "
            f"(median of {len(times['bot'])})",
            start,
            baseline=median(times["echo"]),
            baseline_name="echo bot",
            goal=f"≤ {START_GOAL:.0f} s",
            met=start <= START_GOAL,
        ),
        Figure(
            f"start-up with {TEAMS} rotas, {PLAYBOOKS} playbooks, {SCHEDULES} schedules and "
            f"{ENTRIES:,} logbook entries as well",
            loaded,
        ),
        Figure(
            f"memory: peak RSS (VmHWM), 5,000 contacts, {rooms} rooms, {TEAMS} rotas, "
            f"{PLAYBOOKS} playbooks, {SCHEDULES} schedules, {BOARDS} boards open, "
            f"{ENTRIES:,} logbook entries, after {len(LOAD_COMMANDS)} commands",
            peak,
            unit="MB",
            baseline=median(rss["echo"]),
            baseline_name="echo bot, same rooms",
            goal=f"≤ {MEMORY_GOAL:.0f} MB",
            met=peak <= MEMORY_GOAL,
        ),
        Figure("memory: peak RSS after the start-up runs (help only)", median(rss["bot"]), "MB"),
    ]
    return Section(
        "Start-up and memory",
        "The real `icc-bot run` process. Start-up: a command is waiting when the process "
        "is spawned; the clock stops when the reply reaches the sender's client. The echo bot is "
        "logged in as the same user, so it is in the same rooms. Memory: VmHWM from "
        "/proc/<pid>/status after the commands " + ", ".join(f"`{c}`" for c in LOAD_COMMANDS) + ".",
        figures,
        details=[
            "start-up, bot: " + ", ".join(f"{t:.2f}" for t in times["bot"]) + " s",
            "start-up, echo bot: " + ", ".join(f"{t:.2f}" for t in times["echo"]) + " s",
            "peak RSS, echo bot: " + ", ".join(f"{m:.0f}" for m in rss["echo"]) + " MB",
        ],
        data={"startup": times, "rss": rss},
    )


if __name__ == "__main__":
    standalone(measure)

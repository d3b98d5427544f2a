"""What every benchmark needs: a bot on a local Synapse (in this process or as the real `icc-bot
run` process), clients that time replies, a directory, a seeded logbook, the database the bot runs
on (SQLite or PostgreSQL), and the shape of a result.

Each bench module that runs the bot with a database exposes `measure(server, work, quick,
backend) -> Section` (`bench_rota`, which has none, `measure(server, work, quick)`); `python -m
bench` runs them all against one Synapse, each on every database asked for, and writes
bench/results.md, and each module still runs on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import yaml
from aiohttp import ClientConnectorError, ClientSession, TCPConnector
from nio import AsyncClient, RoomGetEventError, SyncError
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from bot.activations.chain import GENESIS, entry_hash
from bot.app import App, Tuning
from bot.devserver import DevServer, start_synapse
from bot.settings import load_settings
from bot.storage import activation_store
from bot.storage.db import Database
from bot.storage.models import LogEntryRow
from bot.timeutil import utcnow

BOT_PASSWORD = "bench-password-1"
PASSWORD = "bench-password-2"
# The bot's own brake (30 commands a minute per sender) would throttle a benchmark's sender.
RATE_LIMIT = "100000/1m"
LANGS = [["en"], ["fr", "en"], ["nl", "fr"], ["de", "en"]]
ZONES = ["Europe/Brussels", "Europe/Amsterdam", "Europe/Luxembourg", "Europe/Berlin", "UTC"]
# The PostgreSQL server the benches make their databases on: each benchmark run on PostgreSQL
# gets one of its own (`icc_bench_<bench>_<pid>`, `postgres_database`), dropped afterwards;
# never the test suite's `test`. Also a homeserver's own (bench_storm).
BENCH_POSTGRES = os.environ.get("ICC_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


@contextlib.contextmanager
def postgres_database(name: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database `name` on the bench's server (ICC_BENCH_POSTGRES,
    the local one by default), dropped afterwards; its URL. Raises OSError-like
    psycopg.OperationalError when no server answers."""
    import psycopg  # the bot's own driver; imported here: most benches never need it

    with psycopg.connect(f"{BENCH_POSTGRES}/postgres", autocommit=True, connect_timeout=5) as pg:
        pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        pg.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'")
    try:
        yield f"{BENCH_POSTGRES}/{name}"
    finally:
        with psycopg.connect(f"{BENCH_POSTGRES}/postgres", autocommit=True) as pg:
            pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- databases ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    """The database a benchmark runs the bot on: `sqlite` (a file in the bench's work directory)
    or `postgresql` (a fresh database on `BENCH_POSTGRES`'s server, dropped afterwards)."""

    name: str

    @property
    def label(self) -> str:
        return {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[self.name]

    def user(self, localpart: str) -> str:
        """The bench's own Matrix accounts (bot, lead, echo bot) get a name per database, so a
        second run on the same Synapse starts from no rooms, as the first did; the people paged
        are shared (registering a thousand twice would only cost time)."""
        return localpart if self.name == "sqlite" else f"{localpart}-pg"

    def unreachable(self) -> str | None:
        """Why this database cannot be used here, or None."""
        if self.name != "postgresql":
            return None
        try:
            with psycopg.connect(f"{BENCH_POSTGRES}/postgres", connect_timeout=5) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            where = make_url(BENCH_POSTGRES).render_as_string(hide_password=True)
            said = " ".join(str(exc).split())  # psycopg's message runs over several lines
            return f"PostgreSQL not reachable at {where} ({type(exc).__name__}: {said})"
        return None

    @contextlib.contextmanager
    def database(self, work: Path, bench: str) -> Iterator[str]:
        """The URL of a fresh, empty database for one benchmark: `work`/icc.db, or a database
        of its own on the PostgreSQL server, dropped afterwards (even if the bench failed)."""
        if self.name == "sqlite":
            work.mkdir(parents=True, exist_ok=True)
            yield f"sqlite:///{work / 'icc.db'}"
            return
        with postgres_database(f"icc_bench_{bench}_{os.getpid()}".replace("-", "_")) as url:
            yield url


SQLITE, POSTGRESQL = Backend("sqlite"), Backend("postgresql")
BACKENDS = {b.name: b for b in (SQLITE, POSTGRESQL)}


# -- results ----------------------------------------------------------------------------------------


@dataclass
class Figure:
    """One line of the results table: a figure, what it is compared with, and the goal."""

    name: str
    value: float
    unit: str = "s"
    baseline: float | None = None
    baseline_name: str = ""
    goal: str = ""
    met: bool | None = None  # None: informative, no goal

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None


@dataclass
class Section:
    """One benchmark's outcome: its figures, how it was measured, raw data for the chart."""

    title: str
    method: str
    figures: list[Figure] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # extra Markdown lines (samples, notes)
    data: dict[str, Any] = field(default_factory=dict)
    database: str = ""  # the Backend's name it ran on ("": none, e.g. the rota)
    bench: str = ""  # the suite's name for the benchmark (`--only`): pairs its databases' runs

    @property
    def heading(self) -> str:
        return f"{self.title} — {BACKENDS[self.database].label}" if self.database else self.title

    def markdown(self) -> str:
        lines = [f"## {self.heading}", "", self.method, "", *table(self.figures)]
        if self.details:
            lines += ["", *self.details]
        return "\n".join(lines) + "\n"


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "MB":
        return f"{value:.0f} MB"
    if not unit and float(value).is_integer():  # a count: 1013, not 1.01e+03
        return f"{value:.0f}"
    return f"{value:.3g} {unit}".strip()


def table(figures: Iterable[Figure]) -> list[str]:
    lines = [
        "| measurement | figure | baseline | ratio | goal | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f in figures:
        base = f"{fmt(f.baseline, f.unit)} ({f.baseline_name})" if f.baseline else "—"
        ratio = f"{f.ratio:.2f}×" if f.ratio is not None else "—"
        met = {True: "✅ met", False: "❌ missed", None: "—"}[f.met]
        lines.append(
            f"| {f.name} | {fmt(f.value, f.unit)} | {base} | {ratio} | {f.goal or '—'} | {met} |"
        )
    return lines


def percentile(samples: list[float], share: float) -> float:
    """Nearest-rank percentile (p95 of 50 samples is the 48th smallest)."""
    ordered = sorted(samples)
    rank = max(1, int(-(-share * len(ordered) // 1)))
    return ordered[min(rank, len(ordered)) - 1]


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def lateness_figures(
    what: str, lateness: list[float], bare: list[float], bare_name: str, goal: float
) -> list[Figure]:
    """p50 and p95 of `lateness` against the same of a bare baseline; the goal is on the p95."""
    p95 = percentile(lateness, 0.95)
    return [
        Figure(
            f"{what}, p50 of {len(lateness)}",
            median(lateness),
            baseline=median(bare),
            baseline_name=bare_name,
        ),
        Figure(
            f"{what}, p95 of {len(lateness)}",
            p95,
            baseline=percentile(bare, 0.95),
            baseline_name=bare_name,
            goal=f"≤ {goal:.0f} s",
            met=p95 <= goal,
        ),
    ]


def samples_line(label: str, samples: list[float]) -> str:
    return f"{label}: " + ", ".join(f"{s * 1000:.0f}" for s in samples) + " ms"


Measure = Callable[[DevServer, Path, bool, Backend], Awaitable[Section]]
OnDatabase = Callable[[DevServer, Path, bool, Backend, str], Awaitable[Section]]


def on_database(bench: str) -> Callable[[OnDatabase], Measure]:
    """A benchmark's `measure(server, work, quick, backend)` (the suite's and `standalone`'s
    call), from a body that also takes the URL of the fresh database `backend` makes for it —
    dropped afterwards, even if the body fails."""

    def wrap(body: OnDatabase) -> Measure:
        @functools.wraps(body)
        async def measure(
            server: DevServer, work: Path, quick: bool, backend: Backend = SQLITE
        ) -> Section:
            with backend.database(work, bench) as url:
                return await body(server, work, quick, backend, url)

        return measure

    return wrap


# -- a homeserver and people on it ----------------------------------------------------------------


def standalone(
    measure: Measure,
    *,
    homeserver: bool = True,
) -> None:
    """Run one bench module on its own Synapse (none if not `homeserver`) and print its
    sections (`--quick` for a smoke run; `--db sqlite`, `--db postgresql`, or both, the
    default)."""
    names = ["sqlite", "postgresql"]
    if "--db" in sys.argv:
        names = sys.argv[sys.argv.index("--db") + 1].split(",")

    async def main() -> None:
        work = fresh_work_dir(Path(sys.modules[measure.__module__].__file__ or "bench").stem)
        server = start_synapse(work / "synapse") if homeserver else None
        try:
            for name in names:
                backend = BACKENDS[name]
                if reason := backend.unreachable():
                    print(skipped(measure.__module__, backend, reason).markdown())
                    continue
                quick = "--quick" in sys.argv
                section = await measure(server, work / name, quick, backend)  # type: ignore[arg-type]
                section.database = name
                print(section.markdown())
        finally:
            if server is not None:
                server.stop()

    asyncio.run(main())


def skipped(title: str, backend: Backend, reason: str) -> Section:
    """What stands in the results for a run that could not be made on `backend`."""
    return Section(title, f"**Skipped**: {reason}.", database=backend.name)


WORK_ROOT = Path(__file__).parent / ".work"


def fresh_work_dir(name: str) -> Path:
    """bench/.work/<name>, emptied: kept after the run (logs, databases) for a look when
    something fails; git ignores it."""
    work = WORK_ROOT / name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    return work


def register_many(server: DevServer, localparts: Iterable[str], *, at_once: int = 8) -> list[str]:
    """Register (or find, if they exist) these people, `at_once` requests in flight: Synapse's
    shared-secret API takes two round trips a person, which one after another made a thousand
    people a minute or more of set-up."""
    with ThreadPoolExecutor(at_once) as pool:
        return list(pool.map(lambda name: server.register(name, PASSWORD), localparts))


async def login(
    base_url: str, user_id: str, password: str = PASSWORD, *, pool: int = 100
) -> AsyncClient:
    """A logged-in nio client; `pool=0` lifts aiohttp's 100-connection limit as the bot does
    (bot.matrix.client), so that a baseline sending hundreds of messages at once is not held
    back by a limit the bot does not have."""
    client = AsyncClient(base_url, user_id)
    client.client_session = ClientSession(connector=TCPConnector(limit=pool))
    await client.login(password, device_name="bench")
    return client


async def server_event(client: AsyncClient, room_id: str, event_id: str) -> dict:
    response = await client.room_get_event(room_id, event_id)
    if isinstance(response, RoomGetEventError):
        raise RuntimeError(response.message)
    return response.event.source


async def server_ts(client: AsyncClient, room_id: str, event_id: str) -> int:
    return (await server_event(client, room_id, event_id))["origin_server_ts"]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def settle(server: DevServer, *, idle: float = 0.05, window: float = 0.5) -> None:
    """Until the homeserver and this process (the in-process bot) are idle: each under `idle` of
    a core over `window` seconds; 30 s at most.

    After a burst of sends Synapse works on for a while (notifications, caches, statistics), and
    the bot reads its own burst back through /sync; a run started then shares the machine with
    the previous run's leftovers. Runs alternate bot and baseline, so without this each side paid
    for the other's last burst, unevenly: the bot's run followed two baseline bursts (600 sends at
    300 people), the baseline's one of the bot's.
    """
    await quiet(server.process.pid, os.getpid(), idle=idle, window=window)


async def quiet(*pids: int, idle: float = 0.05, window: float = 0.5) -> None:
    """Until each of `pids` is idle: under `idle` of a core over `window` seconds; 30 s at most
    (`settle` for processes other than Synapse, e.g. an SMTP server)."""
    deadline = time.monotonic() + 30
    before = [cpu_seconds(pid) for pid in pids]
    while time.monotonic() < deadline:
        await asyncio.sleep(window)
        now = [cpu_seconds(pid) for pid in pids]
        if all(b - a < idle * window for a, b in zip(before, now, strict=True)):
            return
        before = now


async def bounded(jobs: Iterable[Awaitable[Any]], limit: int = 8) -> list[Any]:
    """Run `jobs` at most `limit` at a time: setup must not flood a 2-core machine's Synapse."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Awaitable[Any]) -> Any:
        async with gate:
            return await job

    return await asyncio.gather(*(one(j) for j in jobs))


def directory(
    lead_id: str, partners: dict[str, str], *, groups: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """A small directory: one lead and `partners` (handle → Matrix ID) in the given groups."""
    groups = groups or {}
    return {
        "organisations": [{"key": "nccn", "name": "NCCN", "kind": "national"}],
        "groups": {name: name for name in groups} or {"all": "everyone"},
        "contacts": [
            {"handle": "lead", "matrix_id": lead_id, "organisation": "nccn", "role": "icc-lead"}
        ]
        + [
            {
                "handle": handle,
                "matrix_id": matrix_id,
                "organisation": "nccn",
                "groups": [g for g, members in groups.items() if handle in members],
            }
            for handle, matrix_id in partners.items()
        ],
    }


def big_directory(
    contacts: int = 5_000, organisations: int = 2_000, *, members_every: int = 10
) -> dict[str, Any]:
    """A believable large directory: every `members_every`-th contact an ICC member (0: none)."""
    return {
        "organisations": [
            {"key": f"org-{o}", "name": f"Organisation {o}", "kind": "national", "country": "BE"}
            for o in range(organisations)
        ],
        "contacts": [
            {
                "handle": f"person-{c}",
                "name": f"Person {c}",
                "organisation": f"org-{c % organisations}",
                "matrix_id": f"@person-{c}:crisis.example",
                "role": "icc-member" if members_every and c % members_every == 0 else "partner",
                "languages": list(LANGS[c % len(LANGS)]),  # own copy: shared lists dump as aliases
                "timezone": ZONES[c % len(ZONES)],
                "groups": [f"group-{c % 50}"],
                "backup": f"person-{c + 1}" if c % 2 == 0 and c + 1 < contacts else None,
            }
            for c in range(contacts)
        ],
        "groups": {f"group-{g}": f"Group {g}" for g in range(50)},
    }


# -- the bot --------------------------------------------------------------------------------------


def echo_process(server: DevServer, work: Path, user_id: str, prefix: str = "!icc") -> BotProcess:
    """The bare nio echo bot (bench.echo_bot) as a process, resuming from a token in `work`."""
    work.mkdir(parents=True, exist_ok=True)
    env = {
        "ECHO_HOMESERVER": server.base_url,
        "ECHO_USER_ID": user_id,
        "ECHO_PASSWORD": BOT_PASSWORD,
        "ECHO_PREFIX": prefix,
        "ECHO_TOKEN_FILE": str(work / "since"),
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    }
    return BotProcess(env, work, command=[sys.executable, "-m", "bench.echo_bot"])


def bot_env(
    server: DevServer,
    work: Path,
    bot_id: str,
    dir_data: dict[str, Any],
    database_url: str | None = None,
) -> dict[str, str]:
    """The bot's configuration for `work` (its data and config dirs), as environment; its
    database `database_url` (from `Backend.database`), by default a SQLite file in `work`."""
    config = work / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "directory.yaml").write_text(yaml.safe_dump(dir_data, sort_keys=False))
    return {
        "ICC_HOMESERVER": server.base_url,
        "ICC_USER_ID": bot_id,
        "ICC_PASSWORD": BOT_PASSWORD,
        "ICC_DATABASE_URL": database_url or f"sqlite:///{work / 'icc.db'}",
        "ICC_DATA_DIR": str(work / "data"),
        "ICC_CONFIG_DIR": str(config),
        "ICC_E2EE": "false",
        "ICC_HEALTH_ADDR": "127.0.0.1:0",
        "ICC_RATE_LIMIT": RATE_LIMIT,
    }


async def start_bot(
    server: DevServer,
    work: Path,
    dir_data: dict[str, Any],
    tuning: Tuning | None = None,
    *,
    name: str = "iccbot",
    database_url: str | None = None,
) -> tuple[App, asyncio.Task[None], str]:
    """Register the bot `name`, write its directory, run the real App in this loop until ready
    (on `database_url`, by default a SQLite file in `work`)."""
    bot_id = server.register(name, BOT_PASSWORD)
    env = bot_env(server, work, bot_id, dir_data, database_url)
    app = App(load_settings(env), tuning or Tuning())
    task = asyncio.create_task(app.run())
    await app.ready.wait()
    return app, task, bot_id


class BotProcess:
    """The real `icc-bot run` as a child process, as an operator starts it."""

    def __init__(self, env: dict[str, str], work: Path, *, command: list[str] | None = None):
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ICC_")} | env
        self.work = work
        self.command = command or [str(Path(sys.executable).with_name("icc-bot")), "run"]
        self.process: subprocess.Popen | None = None
        self.started = 0.0

    def start(self) -> float:
        """Spawn; returns the perf_counter time just before the spawn (t0)."""
        log = (self.work / "process.log").open("ab")
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            self.command,
            cwd=self.work,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self.started

    def peak_rss_mb(self) -> float:
        """VmHWM: the process's peak resident set so far, from the kernel."""
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024

    def rss_mb(self) -> tuple[float, float]:
        """(VmRSS, VmHWM): the process's resident set now and its peak so far, from the kernel."""
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        kb = {k: v.split() for k, _, v in (x.partition(":") for x in status.splitlines())}
        return int(kb["VmRSS"][0]) / 1024, int(kb["VmHWM"][0]) / 1024

    def stop(self, timeout: float = 15) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    async def wait_output(self, text: str, timeout: float = 120) -> None:
        """Until the process has written `text` to its log (e.g. the echo bot's "ready")."""
        deadline = time.monotonic() + timeout
        log = self.work / "process.log"
        while text not in log.read_text(errors="replace"):
            self.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.command} did not say {text!r} within {timeout}s")
            await asyncio.sleep(0.05)

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            tail = (self.work / "process.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.command} exited {self.process.returncode}:\n{tail}")


async def until_serving(http: ClientSession, url: str, timeout: float = 60) -> None:
    """Until something answers HTTP at `url`, whatever it says: the bot's web endpoint starts once
    it is ready, which may come after it answered the commands waiting for it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with http.get(url) as response:
                await response.read()
                return
        except ClientConnectorError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


# -- a client that times answers ------------------------------------------------------------------


class ReplyWatcher:
    """A person's client that keeps syncing and notes when each reply to their messages arrives.

    "Arrives" means: this client's /sync returned the event, i.e. what the person sees.
    """

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.replies: dict[str, tuple[float, dict]] = {}
        self.edits: dict[str, list[tuple[float, str]]] = {}  # event → (arrival, new body) each
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._taken: set[str] = set()
        self.sync_errors: list[str] = []  # what went wrong with this client's /sync, in order

    async def start(self) -> None:
        await self.client.sync(timeout=0, full_state=True)
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        """Sync until stopped; a failed sync, even one that raises, is noted and retried: a
        watcher that stopped reading would time every later wait out with nothing to say why."""
        while True:
            try:
                response = await self.client.sync(timeout=30_000)
            except Exception as exc:
                response = SyncError(repr(exc))
            if isinstance(response, SyncError):
                self.sync_errors.append(f"{time.strftime('%H:%M:%S')} {response.message}")
                await asyncio.sleep(0.5)
                continue
            now = time.perf_counter()
            for info in response.rooms.join.values():
                for event in info.timeline.events:
                    self._note(event.source, now)
            self._changed.set()

    def _note(self, source: dict, now: float) -> None:
        if source.get("sender") == self.client.user_id:
            return
        content = source.get("content") or {}
        relation = content.get("m.relates_to") or {}
        if relation.get("rel_type") == "m.replace" and relation.get("event_id"):
            body = (content.get("m.new_content") or {}).get("body", "")
            self.edits.setdefault(relation["event_id"], []).append((now, body))
        target = (relation.get("m.in_reply_to") or {}).get("event_id")
        if target and target not in self.replies:
            self.replies[target] = (now, source)

    async def reply_to(self, event_id: str, timeout: float = 120) -> tuple[float, dict]:
        """(arrival time, event) of the first reply to `event_id`."""
        deadline = time.monotonic() + timeout
        while event_id not in self.replies:
            self._changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"no reply to {event_id} within {timeout}s; the watcher's last sync errors: "
                    f"{self.sync_errors[-3:] or 'none'}"
                )
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                continue
        return self.replies[event_id]

    async def send(self, room_id: str, body: str) -> tuple[float, str]:
        """Send a text; (perf_counter before sending, event ID)."""
        started = time.perf_counter()
        response = await self.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": body}
        )
        return started, response.event_id

    async def round_trip(self, room_id: str, body: str, timeout: float = 120) -> float:
        """Seconds from sending `body` to this client receiving the reply to it."""
        started, event_id = await self.send(room_id, body)
        arrived, _ = await self.reply_to(event_id, timeout)
        return arrived - started

    async def invited_room(self, timeout: float = 60) -> str:
        """Wait for an invite (e.g. to an activation's room), join it, return its ID."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            room = next((r for r in self.client.invited_rooms if r not in self._taken), None)
            if room is not None:
                self._taken.add(room)
                await self.client.join(room)
                return room
            await asyncio.sleep(0.1)
        raise TimeoutError("no invite arrived")


async def activate(watcher: ReplyWatcher, control_room: str, title: str) -> str:
    """`!icc activate` in `control_room`; join the activation's room and return its ID."""
    await watcher.round_trip(control_room, f"!icc activate {title}")
    return await watcher.invited_room()


async def side_by_side(
    bot: BotProcess,
    echo: BotProcess,
    watcher: ReplyWatcher,
    ids: tuple[str, str],
    title: str,
) -> tuple[str, str]:
    """Start the bot and the echo bot, and the lead's client; a room with each, the bot's
    activation opened: (the activation's room, the echo bot's room). `ids`: (bot, echo)."""
    bot_id, echo_id = ids
    bot.start()
    echo.start()
    await echo.wait_output("ready")
    await watcher.start()
    control = (await watcher.client.room_create(invite=[bot_id])).room_id
    echo_room = (await watcher.client.room_create(invite=[echo_id])).room_id
    await wait_joined(watcher, control, bot_id, timeout=120)
    await wait_joined(watcher, echo_room, echo_id)
    return await activate(watcher, control, title), echo_room


async def wait_joined(
    watcher: ReplyWatcher, room_id: str, bot_id: str, timeout: float = 60
) -> None:
    """Until the bot has joined `room_id` (it accepts an invite from someone in the directory)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        room = watcher.client.rooms.get(room_id)
        if room is not None and bot_id in room.users and bot_id not in room.invited_users:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{bot_id} did not join {room_id}")


# -- a situation board open in a browser ----------------------------------------------------------


class Board:
    """One open board: its stream read to the end, and when it first showed `done`."""

    def __init__(self, http: ClientSession, url: str, *done: str) -> None:
        self.http, self.url, self.done = http, url, done  # shown: a line with each of these
        self.updates = 0
        self.shown_at: float | None = None
        self.connected, self.shown = asyncio.Event(), asyncio.Event()
        self.task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        async with self.http.get(self.url) as stream:
            if stream.status != 200:  # refused, or failed: say so rather than wait for nothing
                said = (await stream.text())[:300]
                raise RuntimeError(f"board stream: HTTP {stream.status} {said!r}")
            data: list[str] = []
            async for raw in stream.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("data: "):
                    data.append(line[6:])
                elif not line and data:
                    self.updates += 1
                    self.connected.set()
                    if self.shown_at is None and any(
                        all(part in line for part in self.done) for line in data
                    ):
                        self.shown_at = time.perf_counter()
                        self.shown.set()
                    data = []
        if not self.connected.is_set():
            raise RuntimeError("board stream: ended before its first board")

    @staticmethod
    async def close_all(boards: Iterable[Board]) -> None:
        """Stop following: each stream cancelled and awaited, whatever became of it."""
        tasks = [board.task for board in boards]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# -- reading the bot's database beside it (its URL: SQLite or PostgreSQL) ------------------


def bot_query(url: str, sql: str, *args: object) -> list[tuple]:
    """Read the bot's database beside the running bot, outside its process (`?` placeholders):
    SQLite read-only (WAL: a reader does not block the bot's writer), PostgreSQL through psycopg."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        with sqlite3.connect(f"file:{parsed.database}?mode=ro", uri=True, timeout=10) as conn:
            return conn.execute(sql, args).fetchall()
    plain = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as conn:
        return conn.execute(sql.replace("?", "%s"), args).fetchall()


async def page_delivered(database: str, people: int, timeout: float = 300) -> tuple[int, list[int]]:
    """The newest page, and its rows (ids) once every one is delivered and its board posted."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        newest = bot_query(database, "SELECT id, board_event_id FROM page ORDER BY id DESC LIMIT 1")
        if not newest or newest[0][1] is None:
            continue
        rows = bot_query(
            database,
            "SELECT id FROM page_target WHERE page_id = ? AND delivered_at IS NOT NULL",
            newest[0][0],
        )
        if len(rows) == people:
            return newest[0][0], [r[0] for r in rows]
    raise TimeoutError(f"the page did not reach {people} people in {timeout}s")


# -- a logbook of any length ----------------------------------------------------------------------

KIND_CYCLE = ["info"] * 7 + ["decision", "action", "info"]


async def seed_logbook(
    db: Database, activation_ref: str, count: int, author: str, *, batch: int = 10_000
) -> None:
    """Append `count` entries as `chain.append` writes them (numbered, each hashed onto its
    predecessor by `logbook.entry_hash`, so `icc-bot logbook verify` passes), into the model's
    table in batches of one transaction each (one insert of many rows: 100,000 ORM objects
    would take a minute)."""
    async with db.session() as session:
        activation = await activation_store.by_ref(session, activation_ref)
        assert activation is not None
        assert activation.id is not None
        last = await activation_store.last_log_entry(session, activation.id)
    seq, prev = last or (0, GENESIS)
    now = utcnow()
    table = LogEntryRow.__table__  # type: ignore[attr-defined]
    for start in range(0, count, batch):
        rows = []
        for n in range(start, min(count, start + batch)):
            seq += 1
            entry = SimpleNamespace(
                activation_id=activation.id,
                seq=seq,
                kind=KIND_CYCLE[n % len(KIND_CYCLE)],
                text=f"Bench entry {n}: situation update from the field, roads and shelters",
                author=author,
                author_role="icc-lead",
                occurred_at=now - timedelta(seconds=count - n),
                recorded_at=now,
                corrects_seq=None,
                data={},
                prev_hash=prev,
                hash="",
            )
            entry.hash = prev = entry_hash(activation.ref, entry)  # type: ignore[arg-type]
            rows.append(vars(entry))
        async with db.session() as session:
            await session.exec(insert(table), params=rows)

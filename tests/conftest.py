"""Shared fixtures: one real Synapse per session, real databases, real Matrix users.

Synapse is started once (a few seconds) and every test registers what it needs on it; each test
gets its own bot data directory and database, so tests never see each other's state.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from bot.app import App, Tuning
from bot.chat.registry import CommandFamily
from bot.commands import all_families
from bot.devserver import DevServer, start_synapse
from bot.settings import Settings, load_settings
from bot.storage.db import Database
from tests.support.desk import Desk
from tests.support.federation import FederatedPair, start_pair
from tests.support.mail import SmtpSink
from tests.support.matrix_people import Person
from tests.support.recording import SERVER
from tests.support.serving import serving

for _noisy in ("nio", "aiohttp", "apscheduler", "alembic"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)

PG_DSN = os.environ.get("ICC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgresql"]


# -- databases ------------------------------------------------------------------------------------


def _pg_schema_url(schema: str) -> str:
    return f"{PG_DSN}?options=-csearch_path%3D{schema}"


@contextmanager
def fresh_database(backend: str, directory: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file in `directory`, or a throwaway schema on the
    PostgreSQL server, dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'icc.db'}"
        return
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield _pg_schema_url(schema)
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a throwaway schema on the PostgreSQL server.

    Parametrise with `@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)`.
    """
    with fresh_database(getattr(request, "param", "sqlite"), tmp_path) as url:
        yield url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """The bot's database at the schema's head, on the backend `database_url` names."""
    database = Database(database_url)
    await database.upgrade()
    try:
        yield database
    finally:
        await database.dispose()


# -- the fast tier: the bot's services on a recording messenger ----------------------------------


def desk_cast() -> Cast:
    """The same people as `cast`, with Matrix IDs on no homeserver (the desk's)."""
    names = ("bot", "lead", "member", "partner", "dg", "stranger", "deputy")
    return Cast(*(Account(f"@{name}:{SERVER}", "", name) for name in names))


def people_of(cast: Cast) -> dict[str, str]:
    """Role -> Matrix ID, for `Desk.say("lead", …)`."""
    roles = ("lead", "member", "partner", "dg", "stranger", "deputy")
    return {role: getattr(cast, role).user_id for role in roles}


@asynccontextmanager
async def desk_running(
    directory: Path,
    database_url: str,
    *,
    contacts: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    families: tuple[CommandFamily, ...] = (),
) -> AsyncIterator[Desk]:
    """A desk (tests/support/desk.py) over `database_url`, its files under `directory`, with the
    cast's directory unless `contacts` is given."""
    cast = desk_cast()
    desk = await Desk.open(
        directory,
        database_url,
        people_of(cast),
        contacts if contacts is not None else cast.directory(),
        env=env,
        families=families,
    )
    try:
        yield desk
    finally:
        await desk.close()


@pytest.fixture
async def desk(tmp_path: Path, database_url: str) -> AsyncIterator[Desk]:
    """The bot's services, command runner and database, Matrix recorded (no homeserver):
    the cast's directory (lead, member, partner, dg, deputy; and a stranger)."""
    async with desk_running(tmp_path, database_url) as running:
        yield running


@pytest.fixture
async def paging_desk(tmp_path: Path, database_url: str) -> AsyncIterator[Desk]:
    """`desk` with the paging directory: backups, ERCC, languages (`paging_directory`)."""
    contacts = paging_directory(desk_cast(), ghost="@ghost:nowhere.example")
    async with desk_running(tmp_path, database_url, contacts=contacts) as running:
        yield running


# -- the homeserver and its people ----------------------------------------------------------------


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    server = start_synapse(tmp_path_factory.mktemp("synapse"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def federated_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FederatedPair]:
    """Two Synapses federating on loopback, A and B (tests/support/federation.py), started
    once for a module that asks for them; never by the session's `synapse`."""
    pair = start_pair(tmp_path_factory.mktemp("federation"))
    try:
        yield pair
    finally:
        pair.stop()


@pytest.fixture
async def federated_pair(federated_servers: FederatedPair) -> AsyncIterator[FederatedPair]:
    """`federated_servers`, both up and delivering to each other when the test starts and
    again after it: a B the test stopped is started, back-offs it caused are reset."""
    await asyncio.to_thread(federated_servers.heal)
    yield federated_servers
    await asyncio.to_thread(federated_servers.heal)


@dataclass(frozen=True)
class Account:
    user_id: str
    password: str
    localpart: str


def register_account(synapse: DevServer, name: str) -> Account:
    """Register a fresh user on the test homeserver (unique localpart) and return its Account."""
    localpart = f"{name}-{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(12)
    return Account(synapse.register(localpart, password), password, localpart)


@pytest.fixture
def register(synapse: DevServer):  # type: ignore[no-untyped-def]
    """Register a fresh user (unique localpart per call) and return its Account."""

    def make(name: str) -> Account:
        return register_account(synapse, name)

    return make


@dataclass
class Cast:
    """The people of one test: the bot's account and one user per role, plus a stranger."""

    bot: Account
    lead: Account
    member: Account
    partner: Account
    dg: Account
    stranger: Account
    deputy: Account  # a second icc-lead, to hand over to

    def directory(self) -> dict[str, Any]:
        contacts = [
            ("lead", self.lead, "icc-lead"),
            ("member", self.member, "icc-member"),
            ("partner", self.partner, "partner"),
            ("dg", self.dg, "dg"),
            ("deputy", self.deputy, "icc-lead"),
        ]
        return {
            "organisations": [{"key": "nccn", "name": "NCCN", "kind": "national", "country": "BE"}],
            "contacts": [
                {
                    "handle": handle,
                    "name": handle.title(),
                    "organisation": "nccn",
                    "matrix_id": account.user_id,
                    "role": role,
                    "languages": ["en"],
                    "timezone": "Europe/Brussels",
                    "groups": ["icc"],
                }
                for handle, account, role in contacts
            ],
            "groups": {"icc": "ICC"},
        }


def new_cast(synapse: DevServer) -> Cast:
    names = ("bot", "lead", "member", "partner", "dg", "stranger", "deputy")
    return Cast(*(register_account(synapse, name) for name in names))


@pytest.fixture
def cast(synapse: DevServer) -> Cast:
    return new_cast(synapse)


def make_bot_env(
    directory: Path, synapse: DevServer, cast: Cast, database_url: str
) -> dict[str, str]:
    """The environment of a bot run under `directory`: its own data dir, config dir (with the
    cast's directory.yaml) and database."""
    config_dir = directory / "config"
    config_dir.mkdir()
    (config_dir / "directory.yaml").write_text(yaml.safe_dump(cast.directory()))
    return {
        "ICC_HOMESERVER": synapse.base_url,
        "ICC_USER_ID": cast.bot.user_id,
        "ICC_PASSWORD": cast.bot.password,
        "ICC_DATABASE_URL": database_url,
        "ICC_DATA_DIR": str(directory / "data"),
        "ICC_CONFIG_DIR": str(config_dir),
        "ICC_E2EE": "false",
        "ICC_HEALTH_ADDR": "127.0.0.1:0",
    }


@pytest.fixture
def bot_env(tmp_path: Path, synapse: DevServer, cast: Cast, database_url: str) -> dict[str, str]:
    """The environment of a bot run: its own data dir, config dir and database."""
    return make_bot_env(tmp_path, synapse, cast, database_url)


FAST = Tuning(
    sync_timeout_ms=1_000, backoff=(0.2, 1.0), drain_seconds=3.0, key_wait=timedelta(seconds=3)
)


class RunningBot:
    """The real App, run in this event loop; `restart` is a stop and a fresh start."""

    def __init__(
        self, settings: Settings, families: list[Any] | None = None, tuning: Tuning = FAST
    ) -> None:
        self.settings = settings
        self.families = families
        self.tuning = tuning
        self.app: App | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> App:
        self.app = App(self.settings, self.tuning, families=self.families)
        self._task = asyncio.create_task(self.app.run())
        ready = asyncio.create_task(self.app.ready.wait())
        done, _ = await asyncio.wait({self._task, ready}, timeout=30, return_when="FIRST_COMPLETED")
        if self._task in done:
            ready.cancel()
            self._task.result()  # raises the start-up failure
        if ready not in done:
            raise TimeoutError("the bot did not become ready within 30 s")
        return self.app

    async def stop(self) -> None:
        if self.app is not None and self._task is not None:
            self.app.stop()
            await asyncio.wait_for(self._task, 20)
            self.app, self._task = None, None


@asynccontextmanager
async def bot_running(
    env: dict[str, str], *extra_families: CommandFamily, tuning: Tuning = FAST
) -> AsyncIterator[RunningBot]:
    """The bot with `env`, plus command families only a test declares, started and stopped."""
    families = [*all_families(), *extra_families] if extra_families else None
    running = RunningBot(load_settings(env), families=families, tuning=tuning)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def bot(bot_env: dict[str, str]) -> AsyncIterator[RunningBot]:
    async with bot_running(bot_env) as running:
        yield running


@pytest.fixture
async def people(synapse: DevServer, cast: Cast) -> AsyncIterator[dict[str, Person]]:
    """Logged-in nio clients for every role of the cast (not the bot)."""
    logged_in: dict[str, Person] = {}
    try:
        for role in ("lead", "member", "partner", "dg", "stranger", "deputy"):
            account: Account = getattr(cast, role)
            logged_in[role] = await Person.login(
                synapse.base_url, account.user_id, account.password
            )
        yield logged_in
    finally:
        for person in logged_in.values():
            await person.close()


def run_cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `python -m bot …` in a clean environment plus `env`."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=process_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def process_env(env: dict[str, str]) -> dict[str, str]:
    """This environment without any ICC_ setting of the developer's, plus `env`."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ICC_")} | env


def start_process(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """`icc-bot run` as a real process, its output appended to log_path."""
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        env=process_env(env),
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def start_ready(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """`icc-bot run`, once it logged that it is ready (killed if it never does)."""
    process = start_process(env, log_path)
    try:
        await wait_for_log(log_path, "INFO bot.app: ready")
    except BaseException:
        process.kill()
        process.wait(10)
        raise
    return process


async def wait_for_log(log_path: Path, text: str, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while text not in log_path.read_text(errors="replace"):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"`{text}` not logged:\n{log_path.read_text()[-3000:]}")
        await asyncio.sleep(0.1)


def paging_directory(cast: Cast, *, ghost: str | None = None) -> dict[str, Any]:
    """The cast with backups: partner ← dg, deputy ← lead; ERCC is an organisation of two."""
    directory = cast.directory()
    directory["organisations"].append(
        {"key": "ercc", "name": "ERCC", "kind": "eu", "country": "EU"}
    )
    by_handle = {c["handle"]: c for c in directory["contacts"]}
    by_handle["partner"].update(organisation="ercc", backup="dg", languages=["fr", "en"])
    by_handle["dg"].update(organisation="ercc", languages=["de"])
    by_handle["deputy"].update(backup="lead", languages=["nl"])
    if ghost:
        directory["contacts"].append(
            {
                "handle": "ghost",
                "name": "Ghost",
                "organisation": "nccn",
                "matrix_id": ghost,
                "role": "partner",
            }
        )
    return directory


@pytest.fixture
def paging_env(bot_env: dict[str, str], cast: Cast) -> dict[str, str]:
    config = Path(bot_env["ICC_CONFIG_DIR"]) / "directory.yaml"
    config.write_text(yaml.safe_dump(paging_directory(cast, ghost="@ghost:nowhere.example")))
    return bot_env


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    """A real SMTP server in the test process (aiosmtpd), keeping what it is given."""
    with serving(SmtpSink()) as sink:
        yield sink


@pytest.fixture
async def paging_bot(paging_env: dict[str, str]) -> AsyncIterator[RunningBot]:
    async with bot_running(paging_env) as running:
        yield running


class CrashPoint:
    """`owner.name` hangs, as if the process died right there, the first time `when(*args,
    **kwargs)` holds; `reached` is set at that moment, `restore()` puts the real one back (for
    the restart). The stop that follows cancels the hung call, which is what a kill leaves."""

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        owner: Any,
        name: str,
        when: Callable[..., bool] = lambda *args, **kwargs: True,
    ) -> None:
        self._monkeypatch, self._owner, self._name = monkeypatch, owner, name
        self._real = getattr(owner, name)
        self.reached = asyncio.Event()

        async def hang_or_run(*args: Any, **kwargs: Any) -> Any:
            if when(*args, **kwargs):
                self.reached.set()
                await asyncio.Event().wait()
            return await self._real(*args, **kwargs)

        monkeypatch.setattr(owner, name, hang_or_run)

    async def wait(self, timeout: float = 15) -> None:
        await asyncio.wait_for(self.reached.wait(), timeout)

    def restore(self) -> None:
        self._monkeypatch.setattr(self._owner, self._name, self._real)

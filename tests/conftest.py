"""Shared fixtures: one real Synapse per session, real databases, real Matrix users.

Synapse is started once (a few seconds) and every test registers what it needs on it; each test
gets its own bot data directory and database, so tests never see each other's state. The helpers
the fixtures are made of live in tests/support/ (casts, databases, bots, processes, the desk),
where test modules import them from.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import yaml

from bot.devserver import DevServer, start_synapse
from bot.storage.db import Database
from tests.support.bots import RunningBot, bot_running, make_bot_env
from tests.support.cast import (
    Account,
    Cast,
    desk_cast,
    new_cast,
    paging_directory,
    register_account,
)
from tests.support.databases import fresh_database
from tests.support.desk import Desk, desk_running
from tests.support.federation import FederatedPair, start_pair
from tests.support.mail import SmtpSink
from tests.support.matrix_people import Person
from tests.support.serving import serving

for _noisy in ("nio", "aiohttp", "apscheduler", "alembic"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)


# -- databases ------------------------------------------------------------------------------------


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a throwaway schema on the PostgreSQL server.

    Parametrise with `@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)`
    (`BACKENDS` from tests/support/databases.py).
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


@pytest.fixture
def desk_env() -> dict[str, str]:
    """Settings the `desk` adds to its own, as environment: a test module that needs others (no
    rate limit, say) overrides this fixture."""
    return {}


@pytest.fixture
async def desk(tmp_path: Path, database_url: str, desk_env: dict[str, str]) -> AsyncIterator[Desk]:
    """The bot's services, command runner and database, Matrix recorded (no homeserver):
    the cast's directory (lead, member, partner, dg, deputy; and a stranger)."""
    async with desk_running(tmp_path, database_url, env=desk_env) as running:
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


@pytest.fixture
def register(synapse: DevServer):  # type: ignore[no-untyped-def]
    """Register a fresh user (unique localpart per call) and return its Account."""

    def make(name: str) -> Account:
        return register_account(synapse, name)

    return make


@pytest.fixture
def cast(synapse: DevServer) -> Cast:
    return new_cast(synapse)


@pytest.fixture
def bot_env(tmp_path: Path, synapse: DevServer, cast: Cast, database_url: str) -> dict[str, str]:
    """The environment of a bot run: its own data dir, config dir and database."""
    return make_bot_env(tmp_path, synapse, cast, database_url)


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

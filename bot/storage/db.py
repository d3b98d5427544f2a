"""The database: one async engine, short transactions, schema through Alembic only."""

from __future__ import annotations

import ast
import asyncio
import logging
import os
import stat
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState
from sqlalchemy.orm import Session as SyncSession
from sqlalchemy.util import await_only
from sqlmodel import Session as SqlModelSession
from sqlmodel.ext.asyncio.session import AsyncSession

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlmodel import SQLModel

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"
# What SQLite writes next to the database file; it gives them the database file's own mode.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
SQLITE_BUSY_TIMEOUT_MS = 5000
IN_PROCESS_WRITER_TIMEOUT = 30.0  # seconds (`WriterQueue`)
SLOW_WRITE = 1.0  # seconds: a transaction that held the writer longer is logged


AFTER_COMMIT = "icc_after_commit"


def after_commit(session: AsyncSession, callback: Callable[[], object]) -> None:
    """Run `callback` once the session's transaction has committed (never if it rolls back).

    For effects outside the database that must not run ahead of the data they refer to, such
    as arming a scheduler job for a row another transaction could not see yet.
    """
    session.info.setdefault(AFTER_COMMIT, []).append(callback)


WRITTEN = "icc_written"  # session.info: the tables its transaction wrote
# An execution option: the statement writes nothing, whatever it looks like (SQLite's lock on an
# activation is an UPDATE setting a row's id to itself, `activation_store.lock_activation`).
WRITES_NOTHING = "icc_writes_nothing"


def dialect_of(session: AsyncSession) -> str:
    """`sqlite` or `postgresql`: what the session's statements run on, for the few that differ."""
    return session.bind.dialect.name if session.bind is not None else ""


class WriterQueue:
    """SQLite's single writer, taken in turn in the event loop rather than in SQLite.

    SQLite lets one transaction write at a time; the others wait in its busy handler, which
    sleeps and tries again (1, 2, 5 … up to 100 ms a try) — a writer freed after 1 ms is
    noticed 100 ms later, and under a storm of acknowledgements some waited past the 5 s busy
    timeout and failed ("database is locked"). Here a session takes this lock at its first
    write (an INSERT, UPDATE or DELETE it executes, or a flush) and gives it up when its
    transaction ends: writers queue first come, first served and start the moment the last one
    commits; sessions that only read never wait. PostgreSQL needs none of it.

    A session that waits longer than `timeout` fails as SQLite would (`OperationalError`),
    rather than wait for ever on a session that itself waits for it; longer than SQLite's own
    busy timeout (which still serves writers in other processes: the CLI, a standby), since a
    queue that moves is no reason to fail.
    """

    HOLDS = "icc_holds_writer"

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._lock = asyncio.Lock()

    def watch(self, sessions: type[SyncSession]) -> None:
        """Follow the sessions of this class (one database's own, so no other is touched)."""
        event.listen(sessions, "do_orm_execute", self._on_execute)
        event.listen(sessions, "before_flush", self._on_flush)

    def _on_execute(self, state: ORMExecuteState) -> None:
        if state.is_insert or state.is_update or state.is_delete:
            self._take(state.session)

    def _on_flush(self, session: SyncSession, _context: Any, _instances: Any) -> None:
        if session.new or session.dirty or session.deleted:
            self._take(session)

    def _take(self, session: SyncSession) -> None:
        if session.info.get(self.HOLDS) is not None:
            return
        try:
            await_only(self._acquire())
        except TimeoutError:
            raise OperationalError(
                "waiting for the database's writer", None, Exception("database is locked")
            ) from None
        session.info[self.HOLDS] = time.monotonic()

    async def _acquire(self) -> None:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the task's
        # cancellation when the lock is granted in the same turn, and a cancelled sync loop
        # then ran on (a shutdown that never ended)
        async with asyncio.timeout(self.timeout):
            await self._lock.acquire()

    def release(self, session: AsyncSession) -> None:
        """After the session's transaction ended, committed or not."""
        taken = session.sync_session.info.pop(self.HOLDS, None)
        if taken is not None:
            self._lock.release()
            held = time.monotonic() - taken
            if held > SLOW_WRITE:
                log.warning("a transaction held the database's writer for %.1fs", held)


class SchemaError(RuntimeError):
    """The database's schema is not one this version of the bot can run on."""


def async_url(url: str) -> str:
    """The URL operators write (`sqlite:///…`, `postgresql://…`) with the async driver we ship."""
    parsed = make_url(url)
    driver = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg"}
    backend = parsed.get_backend_name()
    if backend not in driver:
        raise ValueError(f"unsupported database `{backend}`; use sqlite or postgresql")
    return parsed.set(drivername=driver[backend]).render_as_string(hide_password=False)


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@cache
def migration_graph() -> tuple[str, frozenset[str]]:
    """(head revision, every revision), read from the migration files' `revision` and
    `down_revision` assignments.

    Alembic itself is imported only when there is something to migrate: importing it costs
    about 0.3 s of every start (bench/, start-up), and a database already at head needs none
    of it. tests/test_storage.py checks this against Alembic's own answer.
    """
    revisions: dict[str, tuple[str, ...]] = {}
    for script in (MIGRATIONS / "versions").glob("*.py"):
        found = _assignments(script, ("revision", "down_revision"))
        if not isinstance(found.get("revision"), str) or "down_revision" not in found:
            raise SchemaError(f"{script.name}: no `revision` or `down_revision` to read")
        down = found["down_revision"]
        revisions[found["revision"]] = (down,) if isinstance(down, str) else tuple(down or ())
    heads = set(revisions) - {parent for parents in revisions.values() for parent in parents}
    if len(heads) != 1:
        raise SchemaError(f"the migrations have {len(heads)} heads, not one: {sorted(heads)}")
    return heads.pop(), frozenset(revisions)


def _assignments(script: Path, names: tuple[str, ...]) -> dict[str, Any]:
    """The literal values assigned to `names` at the top of a Python file (annotated or not)."""
    found: dict[str, Any] = {}
    for node in ast.parse(script.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in names:
            found[target.id] = ast.literal_eval(value)
    return found


class Database:
    """Owns the engine. Repositories take the session it hands out; nobody else opens one."""

    def __init__(self, url: str, *, connect_args: dict[str, Any] | None = None) -> None:
        self.url = async_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite" and (path := _sqlite_path(parsed)):
            _private_sqlite_file(path)
        self.engine: AsyncEngine = create_async_engine(
            self.url, connect_args=connect_args or {}, pool_pre_ping=self.dialect != "sqlite"
        )
        own_sessions = type("DatabaseSession", (SqlModelSession,), {})
        self._sessions = async_sessionmaker(
            self.engine,
            class_=AsyncSession,
            expire_on_commit=False,
            sync_session_class=own_sessions,
        )
        self._on_written: dict[str, list[Callable[[], None]]] = {}
        _watch_writes(own_sessions, self._written)
        self.writer: WriterQueue | None = None
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            self.writer = WriterQueue(IN_PROCESS_WRITER_TIMEOUT)
            self.writer.watch(own_sessions)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """One transaction: committed when the block ends, rolled back on any exception."""
        async with self._sessions() as session:
            try:
                async with session.begin():
                    yield session
            finally:
                if self.writer is not None:
                    self.writer.release(session)
            for callback in session.info.pop(AFTER_COMMIT, []):
                callback()

    def on_written(self, model: type[SQLModel], callback: Callable[[], None]) -> None:
        """Call `callback` after every commit of a transaction that wrote rows of `model`'s table
        (added, changed or deleted objects, or an INSERT, UPDATE or DELETE on it): how a cache
        of that table in this process learns that it is out of date. Every write goes through
        `session`, and only the active instance writes (`bot.runtime.leader`)."""
        self._on_written.setdefault(str(model.__tablename__), []).append(callback)

    def _written(self, tables: set[str]) -> None:
        for table in tables:
            for callback in self._on_written.get(table, ()):
                callback()

    async def upgrade(self) -> None:
        """Apply every migration up to head (`icc-bot db upgrade`, and `run` at start)."""
        if await self.revision() == migration_graph()[0]:
            return  # at head: nothing to run, and no Alembic to import
        async with self.engine.begin() as conn:
            await conn.run_sync(_run_upgrade)

    async def revision(self) -> str | None:
        """The schema revision the database is at (None: never migrated)."""
        async with self.engine.connect() as conn:
            return await conn.run_sync(_current_revision)

    async def check_schema(self) -> str:
        """Refuse a database migrated by a newer bot, or one not migrated at all."""
        current = await self.revision()
        head, known = migration_graph()
        if current is None:
            raise SchemaError("the database has no schema; run `icc-bot db upgrade`")
        if current != head:
            if current not in known:
                raise SchemaError(
                    f"the database is at revision {current}, unknown to this version of the bot "
                    "(migrated by a newer one?); refusing to run"
                )
            raise SchemaError(f"the database is at {current}, not {head}; run `icc-bot db upgrade`")
        return head

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def hold_session_lock(self, key: int) -> AsyncConnection | None:
        """A connection of its own holding PostgreSQL's session-level advisory lock `key`, or
        None when another session holds it; raises when the database is away.

        The lock lasts as long as the connection's database session, so the connection is
        given up with `drop_connection`, never back to the pool, where it would keep the lock
        for whoever borrowed it next. It runs in autocommit: never idle in a transaction, which
        `idle_in_transaction_session_timeout` would end, and the lock with it."""
        conn = await self.engine.connect()
        query = text("SELECT pg_try_advisory_lock(:k)")
        try:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            held = (await conn.execute(query, {"k": key})).scalar()
        except BaseException:
            await self.drop_connection(conn)
            raise
        if held:
            return conn
        await conn.close()  # holds nothing: back to the pool, which resets its isolation level
        return None

    @staticmethod
    async def drop_connection(conn: AsyncConnection) -> None:
        """Close `conn` for good, ending its database session and any session lock it holds."""
        try:
            await conn.invalidate()
        finally:
            await conn.close()

    @staticmethod
    async def check_connection(conn: AsyncConnection) -> None:
        """Raises if `conn` no longer reaches the database."""
        await conn.exec_driver_sql("SELECT 1")

    async def dispose(self) -> None:
        await self.engine.dispose()


def _watch_writes(sessions: type[SqlModelSession], written: Callable[[set[str]], None]) -> None:
    """Tell `written` which tables each committed transaction of `sessions` wrote."""

    def note(session: SyncSession, *tables: str) -> None:
        session.info.setdefault(WRITTEN, set()).update(tables)

    def executed(state: ORMExecuteState) -> None:
        table = getattr(state.statement, "table", None)
        writes = state.is_insert or state.is_update or state.is_delete
        if writes and table is not None and not state.execution_options.get(WRITES_NOTHING):
            note(state.session, table.name)

    def flushed(session: SqlModelSession, _context: object) -> None:
        objects = [*session.new, *session.dirty, *session.deleted]
        note(session, *{obj.__table__.name for obj in objects if hasattr(obj, "__table__")})

    def committed(session: SqlModelSession) -> None:
        tables = session.info.pop(WRITTEN, None)
        if tables:
            written(tables)

    def rolled_back(session: SqlModelSession) -> None:
        session.info.pop(WRITTEN, None)

    event.listen(sessions, "do_orm_execute", executed)
    event.listen(sessions, "after_flush", flushed)
    event.listen(sessions, "after_commit", committed)
    event.listen(sessions, "after_rollback", rolled_back)


def _sqlite_path(url: URL) -> Path | None:
    """The database file a SQLite URL names; None for memory or a `file:` URI (SQLite's own)."""
    if not url.database or url.database == ":memory:" or url.query.get("uri"):
        return None
    return Path(url.database)


def _private_sqlite_file(path: Path) -> None:
    """Create the database file owner-only (0600) before SQLite opens it, and take group and
    other access away from one that exists, with its -wal/-shm/-journal.

    The file holds every page, answer and logbook entry of the crisis cell. SQLite creates it
    0644 (umask permitting), and operators point ICC_DATABASE_URL outside the 0700 data dir.
    SQLite creates the side files with the database file's mode, so a private main file keeps
    them private too; existing ones are fixed here in case they were made before.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_RDONLY, 0o600))  # creates only; a read-only copy opens
    for file in (path, *(path.with_name(path.name + side) for side in SQLITE_SIDE_FILES)):
        _owner_only(file)


def _owner_only(path: Path) -> None:
    """Drop group and other permission bits from `path` if it exists; say so, or why not."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            path.chmod(mode & 0o700)
            log.info("%s was %04o; now %04o, readable by its owner only", path, mode, mode & 0o700)
    except FileNotFoundError:
        return
    except PermissionError as exc:
        log.warning("%s: cannot make it owner-only (%s); fix its permissions by hand", path, exc)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode, NORMAL syncs the log at checkpoints, not at every commit: a power cut (not
    # a crash of the bot) may lose the last transactions, whole and in order, and never corrupts
    # the file. Lost that way, a sync batch's inbox rows go with its token, so the homeserver
    # hands the same events over again; what the bot sent meanwhile carries the same
    # transaction IDs when sent again. Each command commits several times; FULL's fsync cost
    # ~0.8 ms a commit.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _run_upgrade(connection: Connection) -> None:
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _current_revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    return connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()

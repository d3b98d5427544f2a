"""Keeps the directory, the duty rotas and the playbooks in force: loads the files, records the
directory's history, swaps all three in whole.

A reload (SIGHUP, or `icc-bot directory reload`) validates the new files first — the directory,
then every rota in `config/rota/` and every playbook in `config/playbooks/` against it; a problem
in any of them refuses all three, with every problem logged, and the ones in force stay. Warnings
(a gap in a 24/7 team's coverage, a file that is not a rota or a playbook) are logged and do not
stop anything. Each attempt is written to `ICC_DATA_DIR/directory-status.json`, which is how
`icc-bot directory reload` learns the outcome.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

from bot.directory.model import Directory, DirectoryError, load_directory
from bot.playbooks.load import load_playbooks
from bot.playbooks.model import Playbook
from bot.rota.load import load_rotas
from bot.rota.model import Rotas
from bot.storage.db import Database
from bot.storage.directory_store import DirectoryChanges, store_directory
from bot.timeutil import utcnow

log = logging.getLogger(__name__)

STATUS_FILE = "directory-status.json"
PID_FILE = "icc-bot.pid"
CACHE_FILE = "directory-cache.json"  # the parsed directory.yaml, keyed by its SHA-256
ROTA_FOLDER = "rota"  # beside directory.yaml: config/rota/<team>.yaml|.ics
PLAYBOOK_FOLDER = "playbooks"  # beside directory.yaml: config/playbooks/<key>.yaml
RENEW_BEFORE = timedelta(days=30)


class Configuration(NamedTuple):
    """What the cell works from: the directory, the duty rotas and the playbooks, checked
    together, and the warnings of the rotas and playbooks."""

    directory: Directory
    rotas: Rotas
    playbooks: dict[str, Playbook]
    warnings: list[str]


def load_configuration(
    path: Path, *, cache: Path | None = None, zone: ZoneInfo | None = None
) -> Configuration:
    """The directory at `path`, and the rotas (`rota/`) and playbooks (`playbooks/`) beside it,
    checked together; DirectoryError names every problem of all three (the rotas and playbooks
    are checked only against a directory without problems)."""
    directory = load_directory(path, cache=cache)
    rotas = load_rotas(path.parent / ROTA_FOLDER, directory, zone=zone)
    # A team whose rota has problems is still a team: `duty:<team>` in a playbook is not wrong
    # for it (the rota's own problems are said once, in its file).
    teams = [*rotas.rotas.teams(), *(Path(problem.file).stem for problem in rotas.problems)]
    books = load_playbooks(path.parent / PLAYBOOK_FOLDER, directory, teams)
    problems = [*rotas.problems, *books.problems]
    if problems:
        raise DirectoryError([str(problem) for problem in problems])
    warnings = [str(warning) for warning in [*rotas.warnings, *books.warnings]]
    return Configuration(directory, rotas.rotas, books.playbooks, warnings)


class DirectoryKeeper:
    def __init__(
        self, path: Path, db: Database, data_dir: Path, *, zone: ZoneInfo | None = None
    ) -> None:
        self.path = path
        self._db = db
        self._status = data_dir / STATUS_FILE
        self._cache = data_dir / CACHE_FILE
        self._zone = zone
        self.current = Directory.empty()
        self.rotas = Rotas.empty()
        self.playbooks: dict[str, Playbook] = {}  # by key; replaced whole, never mutated

    async def load(self) -> DirectoryChanges:
        """Validate, record and put in force; DirectoryError leaves everything as it was."""
        try:
            # In a thread: the event loop meanwhile sends the first sync and reads the answer.
            directory, rotas, playbooks, warnings = await asyncio.to_thread(
                load_configuration, self.path, cache=self._cache, zone=self._zone
            )
        except DirectoryError as exc:
            self._write_status(ok=False, problems=exc.problems)
            raise
        for warning in warnings:
            log.warning("configuration: %s", warning)
        async with self._db.session() as session:
            changes = await store_directory(session, directory)
        self.current, self.rotas, self.playbooks = directory, rotas, playbooks
        log.info(
            "directory in force: %d contacts, %d organisations (added %d, changed %d, removed %d)",
            len(directory.contacts),
            len(directory.organisations),
            len(changes.added),
            len(changes.changed),
            len(changes.removed),
        )
        if rotas.teams():
            log.info("duty rotas in force: %s", ", ".join(rotas.teams()))
        if playbooks:
            log.info("playbooks in force: %s", ", ".join(playbooks))
        self._write_status(ok=True, problems=[], changes=asdict(changes), warnings=warnings)
        return changes

    async def renew_rotas(self) -> None:
        """Lay the rotas' shifts out again around now, before the stretch they were laid out
        for runs out (they are expanded for a bounded window when read: see bot.rota.model)."""
        expires = self.rotas.expires
        if expires is not None and expires - utcnow() < RENEW_BEFORE:
            self.rotas = await asyncio.to_thread(self.rotas.renewed, utcnow())

    async def reload(self) -> bool:
        """Try the file again; on any problem keep the directory in force and say why."""
        try:
            await self.load()
        except DirectoryError as exc:
            log.error(
                "directory reload refused, the previous directory stays in force (with its "
                "rotas and playbooks):"
            )
            for line in exc.problems:
                log.error("  %s", line)
            return False
        except Exception:
            log.exception("directory reload failed; the previous directory stays in force")
            self._write_status(ok=False, problems=["internal error; see the bot's log"])
            return False
        return True

    def _write_status(
        self,
        *,
        ok: bool,
        problems: list[str],
        changes: dict | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        status = {
            "at": utcnow().isoformat(),
            "ok": ok,
            "problems": problems,
            "warnings": warnings or [],
            "contacts": len(self.current.contacts),
            "playbooks": sorted(self.playbooks),
            "changes": changes or {},
        }
        tmp = self._status.with_suffix(".tmp")
        tmp.write_text(json.dumps(status))
        tmp.replace(self._status)


def write_pid_file(data_dir: Path) -> Path:
    path = data_dir / PID_FILE
    path.write_text(f"{os.getpid()}\n")
    return path

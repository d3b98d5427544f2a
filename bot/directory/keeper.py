"""Keeps the directory in force: loads the file, records its history, swaps it in whole.

A reload (SIGHUP, or `icc-bot directory reload`) validates the new file first; a bad one is refused
with every problem logged and the old directory stays in force. Each attempt is written to
`ICC_DATA_DIR/directory-status.json`, which is how `icc-bot directory reload` learns the outcome.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

from bot.directory.model import Directory, DirectoryError, load_directory
from bot.storage.db import Database
from bot.storage.directory_store import DirectoryChanges, store_directory
from bot.timeutil import utcnow

log = logging.getLogger(__name__)

STATUS_FILE = "directory-status.json"
PID_FILE = "icc-bot.pid"
CACHE_FILE = "directory-cache.json"  # the parsed directory.yaml, keyed by its SHA-256


class DirectoryKeeper:
    def __init__(self, path: Path, db: Database, data_dir: Path) -> None:
        self.path = path
        self._db = db
        self._status = data_dir / STATUS_FILE
        self._cache = data_dir / CACHE_FILE
        self.current = Directory.empty()

    async def load(self) -> DirectoryChanges:
        """Validate, record and put in force; DirectoryError leaves everything as it was."""
        try:
            # In a thread: the event loop meanwhile sends the first sync and reads the answer.
            directory = await asyncio.to_thread(load_directory, self.path, cache=self._cache)
        except DirectoryError as exc:
            self._write_status(ok=False, problems=exc.problems)
            raise
        async with self._db.session() as session:
            changes = await store_directory(session, directory)
        self.current = directory
        log.info(
            "directory in force: %d contacts, %d organisations (added %d, changed %d, removed %d)",
            len(directory.contacts),
            len(directory.organisations),
            len(changes.added),
            len(changes.changed),
            len(changes.removed),
        )
        self._write_status(ok=True, problems=[], changes=asdict(changes))
        return changes

    async def reload(self) -> bool:
        """Try the file again; on any problem keep the directory in force and say why."""
        try:
            await self.load()
        except DirectoryError as exc:
            log.error("directory reload refused, the previous directory stays in force:")
            for line in exc.problems:
                log.error("  %s", line)
            return False
        except Exception:
            log.exception("directory reload failed; the previous directory stays in force")
            self._write_status(ok=False, problems=["internal error; see the bot's log"])
            return False
        return True

    def _write_status(self, *, ok: bool, problems: list[str], changes: dict | None = None) -> None:
        status = {
            "at": utcnow().isoformat(),
            "ok": ok,
            "problems": problems,
            "contacts": len(self.current.contacts),
            "changes": changes or {},
        }
        tmp = self._status.with_suffix(".tmp")
        tmp.write_text(json.dumps(status))
        tmp.replace(self._status)


def write_pid_file(data_dir: Path) -> Path:
    path = data_dir / PID_FILE
    path.write_text(f"{os.getpid()}\n")
    return path

"""The services a command handler may use, built once by the composition root (bot.app)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.directory import Directory
from bot.matrix.send import Messenger
from bot.metrics import Metrics
from bot.render import Renderer
from bot.roster import Roster
from bot.router import Registry
from bot.scheduler import Scheduler
from bot.settings import Settings
from bot.storage.db import Database
from bot.tasks import KeyedLocks


@dataclass
class Deps:
    settings: Settings
    db: Database
    renderer: Renderer
    registry: Registry
    messenger: Messenger
    scheduler: Scheduler
    roster: Roster
    locks: KeyedLocks = field(default_factory=KeyedLocks)
    metrics: Metrics = field(default_factory=Metrics)

    @property
    def directory(self) -> Directory:
        """The directory in force now; a reload swaps it whole, so read it once per use."""
        return self.roster.current

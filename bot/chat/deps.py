"""The services a command handler may use, built once by the composition root (bot.app)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.chat.registry import Registry
from bot.chat.render import Renderer
from bot.directory.keeper import DirectoryKeeper
from bot.directory.model import Directory
from bot.matrix.send import Messenger
from bot.runtime.metrics import Metrics
from bot.runtime.scheduler import Scheduler
from bot.runtime.tasks import KeyedLocks
from bot.settings import Settings
from bot.storage.db import Database


@dataclass
class Deps:
    settings: Settings
    db: Database
    renderer: Renderer
    registry: Registry
    messenger: Messenger
    scheduler: Scheduler
    keeper: DirectoryKeeper
    locks: KeyedLocks = field(default_factory=KeyedLocks)
    metrics: Metrics = field(default_factory=Metrics)

    @property
    def directory(self) -> Directory:
        """The directory in force now; a reload swaps it whole, so read it once per use."""
        return self.keeper.current

"""The shared layers every capability stands on, given to each in one piece.

A capability (paging, inputs, rounds…) is a frozen dataclass that extends `Layers` with the peers
it calls. The layers are the same objects for all of them — one database, one directory keeper,
one messenger, one lock table — so the composition root builds them once and each capability
names only what is its own: which other capabilities it works with.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from bot.runtime.tasks import KeyedLocks

if TYPE_CHECKING:
    from bot.directory.keeper import DirectoryKeeper
    from bot.matrix.send import Messenger
    from bot.render import Renderer
    from bot.runtime.metrics import Metrics
    from bot.runtime.scheduler import Scheduler
    from bot.settings import Settings
    from bot.storage.db import Database


@dataclass(frozen=True, kw_only=True)
class Layers:
    settings: Settings
    db: Database
    keeper: DirectoryKeeper
    renderer: Renderer
    messenger: Messenger
    scheduler: Scheduler
    metrics: Metrics
    locks: KeyedLocks = field(default_factory=KeyedLocks)

    def shared(self) -> dict[str, Any]:
        """These layers as keywords, for building a capability on them:
        `Pager(**layers.shared(), board=board, …)`."""
        return {part.name: getattr(self, part.name) for part in fields(Layers)}

    def name(self, matrix_id: str) -> str:
        """How the directory names `matrix_id`, or the ID itself for someone it does not list."""
        contact = self.keeper.current.contact_for(matrix_id)
        return contact.name if contact else matrix_id

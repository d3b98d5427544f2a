"""The shared layers the capabilities stand on, built once by the composition root.

A capability (paging, inputs, rounds…) is a frozen dataclass whose fields are what it uses: the
layers it needs (the database, the directory keeper, the messenger…) and the peers it calls.
The layers are the same objects for all of them — one database, one keeper, one lock table — so
the composition root builds them once here and hands each capability the ones it declares
(`given`), the peers by name beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from bot.runtime.changes import Changes
from bot.runtime.tasks import Foreground, KeyedLocks, Paced

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
    changes: Changes = field(default_factory=Changes)  # which activations changed (the board)
    paced: Paced = field(default_factory=Paced)  # edits where only the latest state counts
    foreground: Foreground = field(default_factory=Foreground)  # commands in flight go first

    def given(self, capability: type[Any]) -> dict[str, Any]:
        """The layers `capability` declares as fields, as keywords for building it:
        `Pager(**layers.given(Pager), board=board, …)` — each gets only what it uses."""
        wanted = {part.name for part in fields(capability)}
        return {
            part.name: getattr(self, part.name) for part in fields(Layers) if part.name in wanted
        }

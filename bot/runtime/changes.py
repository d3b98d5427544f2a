"""Which activations changed, for whoever follows them as they change (the live situation board).

A change is a number going up: each activation has a version, `changed` raises it and wakes every
`wait` on it. Followers never learn what changed, only that something did, and read the state
afresh; so a burst of changes (three hundred acks in a few seconds) wakes them once per read, not
once per change, and a follower that was away catches up with one read.

Only the active instance changes anything and serves the board, so the versions live in this
process and start at zero on each start.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from bot.storage.db import after_commit

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession


class Changes:
    def __init__(self) -> None:
        self._versions: dict[int, int] = {}
        self._moved: dict[int, asyncio.Event] = {}  # set, and replaced, at each change

    def version(self, activation_id: int) -> int:
        return self._versions.get(activation_id, 0)

    def changed(self, activation_id: int) -> None:
        """The activation changed (after its transaction committed: a follower woken now reads
        the new state)."""
        self._versions[activation_id] = self.version(activation_id) + 1
        moved = self._moved.pop(activation_id, None)
        if moved is not None:
            moved.set()

    def after_commit(self, session: AsyncSession, activation_id: int) -> None:
        """The activation changes in `session`'s transaction: followers are woken once it has
        committed (never, if it rolls back)."""
        after_commit(session, lambda: self.changed(activation_id))

    async def wait(self, activation_id: int, seen: int, *, at_most: float) -> int:
        """The activation's version once it is past `seen`, or after `at_most` seconds (then
        perhaps still `seen`)."""
        if self.version(activation_id) == seen:
            moved = self._moved.setdefault(activation_id, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(at_most):  # (wait_for may swallow a cancellation)
                    await moved.wait()
        return self.version(activation_id)

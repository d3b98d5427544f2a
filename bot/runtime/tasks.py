"""Background work that must neither stall the sync loop nor vanish silently."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TaskSupervisor:
    """Runs handlers as tracked tasks: capped concurrency, errors logged, drained on shutdown.

    Tasks that share a `lane` (a room) run one after another in the order they were spawned, so
    two `log` lines typed in quick succession are recorded in that order; different rooms run
    side by side.
    """

    def __init__(self, concurrency: int = 16) -> None:
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._slots = asyncio.Semaphore(concurrency)
        self._lanes: dict[str, tuple[asyncio.Lock, int]] = {}  # lane -> (lock, tasks in it)

    def running(self, name: str) -> bool:
        return name in self._tasks

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any], *, lane: str | None = None) -> bool:
        """Start `coro` unless a task of that name runs already (one event, one handler)."""
        if name in self._tasks:
            coro.close()
            return False
        if lane is not None:
            lock, users = self._lanes.get(lane, (asyncio.Lock(), 0))
            self._lanes[lane] = (lock, users + 1)
            coro = self._in_lane(lane, lock, coro)
        task = asyncio.create_task(self._guarded(name, coro), name=name)
        self._tasks[name] = task
        task.add_done_callback(lambda _t: self._tasks.pop(name, None))
        return True

    async def _in_lane(self, lane: str, lock: asyncio.Lock, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            async with lock:
                return await coro
        finally:
            _, users = self._lanes[lane]
            if users == 1:
                del self._lanes[lane]
            else:
                self._lanes[lane] = (lock, users - 1)

    async def _guarded(self, name: str, coro: Coroutine[Any, Any, Any]) -> None:
        async with self._slots:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task %s failed", name)

    def cancel_all(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()

    async def drain(self, seconds: float) -> None:
        """Wait up to `seconds` for running tasks, and the tasks they start meanwhile (a claim of
        timers starts their handlers), then cancel what is left."""
        deadline = asyncio.get_running_loop().time() + seconds
        while self._tasks and (left := deadline - asyncio.get_running_loop().time()) > 0:
            await asyncio.wait(list(self._tasks.values()), timeout=left)
        still = [task for task in self._tasks.values() if not task.done()]
        for task in still:
            task.cancel()
        if still:
            log.warning("cancelled %d tasks still running at shutdown", len(still))
            await asyncio.gather(*still, return_exceptions=True)


class KeyedLocks:
    """One asyncio lock per key (a page's board, a person's DM room), for the process's life."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._asked: dict[str, int] = {}
        self._covered: dict[str, int] = {}

    def __call__(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def coalesce(self, key: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` under the key's lock, folding the calls that queue meanwhile into one run.

        For work where only the latest state counts, like editing a page's board: fifty
        escalation steps falling due together each ask for an edit, and taking the lock in turn
        for fifty edits held the later steps (and their pages) back by seconds. A run that began
        after a call asked covers that call, which then returns at once.
        """
        ticket = self._asked[key] = self._asked.get(key, 0) + 1
        async with self(key):
            if self._covered.get(key, 0) >= ticket:
                return
            covers = self._asked[key]
            await work()
            self._covered[key] = covers

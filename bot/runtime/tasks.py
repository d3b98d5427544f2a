"""Background work that must neither stall the sync loop nor vanish silently."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextvars import ContextVar
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)
In = TypeVar("In")
Out = TypeVar("Out")

# The running task's slot (`TaskSupervisor`), for `leave_slot`: its release, once.
_held_slot: ContextVar[Callable[[], None] | None] = ContextVar("held_slot", default=None)


def leave_slot() -> None:
    """Give the running task's slot back before it ends, for what is left of it that waits on
    the network only (an answer on its way to the homeserver): slots bound the work on the CPU
    and the database. During a storm, a homeserver taking seconds to accept each answer held
    every slot, and the next batch's acknowledgements waited for them (bench/, the storm).
    Nothing outside a supervised task, or once given back."""
    release = _held_slot.get()
    if release is not None:
        _held_slot.set(None)
        release()


async def first_ahead(jobs: list[Coroutine[Any, Any, Out]], *, most: float) -> list[Out]:
    """Every job's result, in order, as `asyncio.gather` gives them; but the first job starts
    alone, and the others only once it is done or `most` seconds have passed.

    A homeserver handed a thousand sends in the same instant works on all of them side by
    side: even the first message was created two seconds or more after the command (bench/,
    the fan-out to 1,000). Handed the first alone, it creates that one at once, whatever comes
    after it. `most` bounds what a slow first job (retries, a room to make) can cost the rest.
    """
    if len(jobs) < 2:
        return list(await asyncio.gather(*jobs))
    first = asyncio.ensure_future(jobs[0])
    try:
        await asyncio.wait({first}, timeout=most)
    except asyncio.CancelledError:
        first.cancel()
        for job in jobs[1:]:
            job.close()  # never started: closed, not left to warn "never awaited"
        raise
    return list(await asyncio.gather(first, *jobs[1:]))


class Slots:
    """At most `size` holders at once; a waiter marked `first` is let in before the others.

    asyncio's Semaphore lets waiters in strictly in turn: a `status` typed in the activation
    room behind three hundred acknowledgements waited for all of them.
    """

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiting: tuple[deque[asyncio.Future[None]], ...] = (deque(), deque())

    async def acquire(self, *, first: bool = False) -> None:
        if self._free > 0 and not any(self._waiting):
            self._free -= 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiting[0 if first else 1]
        queue.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release()  # handed the slot as it was cancelled: the next one has it
            else:
                queue.remove(turn)
            raise

    def release(self) -> None:
        for queue in self._waiting:
            while queue:
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(None)
                    return
        self._free += 1


class Foreground:
    """Whether work people wait for — a command typed in one of the cell's rooms — is in flight,
    so that background work (acknowledgement links pressed, boards edited and rendered) lets it
    finish first: for `patience` seconds at most, so that a stream of commands delays the
    background and never starves it.

    `Slots` orders the tasks waiting for a slot; this orders what runs meanwhile on the same
    event loop and database: a `status` typed while partners pressed ten acknowledgement links
    a second took half as long again as the echo bot's (bench/, the board).
    """

    def __init__(self, patience: float = 0.25) -> None:
        self.patience = patience
        self._serving = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        """Around foreground work."""
        self._serving += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._serving -= 1
            if not self._serving:
                self._idle.set()

    async def after(self) -> None:
        """Once no foreground work is in flight, or `patience` seconds from now. Never called
        from foreground work (it would wait for itself)."""
        if self._serving:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.patience):
                    await self._idle.wait()


class TaskSupervisor:
    """Runs handlers as tracked tasks: capped concurrency, errors logged, drained on shutdown.

    Tasks that share a `lane` (a room) run one after another in the order they were spawned, so
    two `log` lines typed in quick succession are recorded in that order; different rooms run
    side by side. A task waits for its lane before it takes one of the `concurrency` slots, and
    tasks spawned `first` (commands typed in the cell's rooms) take the next free slot before
    those waiting (answers in the bot's direct rooms): a storm of answers does not hold the
    cell's commands back.
    """

    def __init__(self, concurrency: int = 64) -> None:
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._slots = Slots(concurrency)
        self.foreground = Foreground()  # the tasks spawned `first`, while they run
        self._lanes: dict[str, tuple[asyncio.Lock, int]] = {}  # lane -> (lock, tasks in it)

    def running(self, name: str) -> bool:
        return name in self._tasks

    def idle(self, lane: str) -> bool:
        """Whether no task is running or waiting in `lane`."""
        return lane not in self._lanes

    def spawn(
        self,
        name: str,
        coro: Coroutine[Any, Any, Any],
        *,
        lane: str | None = None,
        first: bool = False,
    ) -> bool:
        """Start `coro` unless a task of that name runs already (one event, one handler)."""
        if name in self._tasks:
            coro.close()
            return False
        lock: asyncio.Lock | None = None
        if lane is not None:
            lock, users = self._lanes.get(lane, (asyncio.Lock(), 0))
            self._lanes[lane] = (lock, users + 1)
        task = asyncio.create_task(self._guarded(name, coro, first, lock), name=name)
        self._tasks[name] = task
        task.add_done_callback(lambda _t: self._tasks.pop(name, None))
        if lane is not None:
            task.add_done_callback(lambda _t: self._left(lane))
        # A task cancelled before its handler started (waiting for its lane or a slot, at
        # shutdown) leaves the handler's coroutine unstarted: closed here, not left to warn
        # "never awaited"; closing a finished one does nothing.
        task.add_done_callback(lambda _t: coro.close())
        return True

    def _left(self, lane: str) -> None:
        """A task of `lane` is done (or was cancelled before it began)."""
        lock, users = self._lanes[lane]
        if users == 1:
            del self._lanes[lane]
        else:
            self._lanes[lane] = (lock, users - 1)

    async def _guarded(
        self, name: str, coro: Coroutine[Any, Any, Any], first: bool, lane: asyncio.Lock | None
    ) -> None:
        """The task's turn in its lane (the lane's lock, taken in the order spawned), then a
        slot, then the handler."""
        async with lane or contextlib.nullcontext():
            await self._slots.acquire(first=first)
            await self._holding_slot(name, coro, first)

    async def _holding_slot(self, name: str, coro: Coroutine[Any, Any, Any], first: bool) -> None:
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self._slots.release()

        _held_slot.set(release)  # this task's own context: what it spawns gets a copy, unused
        try:
            with self.foreground.serving() if first else contextlib.nullcontext():
                await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task %s failed", name)
        finally:
            release()

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

    def __call__(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())


class Paced:
    """Work where only the latest state counts (editing a page's board), run soon after it is
    asked for and never more often than the machine can spare.

    `soon(key, work)` returns at once. The first call for a key runs `work` straight away; calls
    while it runs, or within the pause after it, fold into one more run when the pause ends. The
    pause is `gap` seconds, or `share` times what the run took if longer: during a storm of three
    hundred acks a board of three hundred lines is edited a few times a second instead of three
    hundred times, and the acks themselves are not held back waiting for it (each used to take
    its turn at the board's lock, and edit it once more). Never longer than `most`, though: what
    a run takes is mostly a busy homeserver taking the edit, and three times that held a page's
    last acks off its board for seconds after a storm (bench/, the storm).

    A run that fails is logged; the next call runs it again. What a crash loses (a run asked for
    and not yet done) the caller must put right at start-up (the page board compares what it
    shows with what it should, `Board.reconcile`).
    """

    def __init__(
        self,
        gap: float = 0.5,
        share: float = 3.0,
        *,
        most: float = 1.5,
        foreground: Foreground | None = None,
    ) -> None:
        """`foreground`: commands each run lets finish first (none: runs at once)."""
        self.gap, self.share, self.most, self._foreground = gap, share, most, foreground
        self._wanted: set[str] = set()
        self._running: set[str] = set()
        self._pacers: dict[str, asyncio.Task[None]] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    def soon(self, key: str, work: Callable[[], Awaitable[None]]) -> None:
        self._wanted.add(key)
        self._idle.clear()
        if key not in self._pacers:
            self._pacers[key] = asyncio.create_task(self._pace(key, work), name=f"paced:{key}")

    async def _pace(self, key: str, work: Callable[[], Awaitable[None]]) -> None:
        try:
            while key in self._wanted:
                if self._foreground is not None:
                    await self._foreground.after()
                self._wanted.discard(key)
                self._running.add(key)
                began = time.monotonic()
                try:
                    await work()
                except Exception:
                    log.exception("%s failed; it runs again when next asked for", key)
                finally:
                    self._running.discard(key)
                    if not self.busy():
                        self._idle.set()
                took = time.monotonic() - began
                await asyncio.sleep(min(self.most, max(self.gap, took * self.share)))
        finally:
            del self._pacers[key]

    def busy(self) -> bool:
        """Something asked for and not yet done."""
        return bool(self._wanted or self._running)

    async def settle(self, seconds: float = 30) -> None:
        """Until nothing asked for is left undone (the pauses after the last runs aside), at
        most `seconds`: for a shutdown, and for tests that read what the work did."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):  # (wait_for may swallow a cancellation)
                await self._idle.wait()

    async def stop(self, seconds: float) -> None:
        """Finish what is asked for (up to `seconds`), then end the pauses."""
        await self.settle(seconds)
        for task in list(self._pacers.values()):
            task.cancel()
        await asyncio.gather(*self._pacers.values(), return_exceptions=True)


class Grouped(Generic[In, Out]):
    """Group commit: calls that arrive while a group is being written wait for the next group,
    and each group is written by one call of `write` (one transaction for all of them).

    For small writes that arrive in storms, like three hundred acknowledgements of one page
    within a second: each in a transaction of its own, they queued for the database's single
    writer (SQLite) and for the event loop between their statements, and held each other back
    by seconds. `write` returns one outcome per item, in order: a result, or the exception
    that item's caller gets (a refusal meant for that person); an exception `write` raises
    fails every call of the group.
    """

    def __init__(
        self, write: Callable[[list[In]], Awaitable[list[Out | Exception]]], most: int = 100
    ) -> None:
        self._write, self._most = write, most
        self._waiting: list[tuple[In, asyncio.Future[Out]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: In) -> Out:
        done: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_groups(), name="grouped")
        return await done

    async def _write_groups(self) -> None:
        group: list[tuple[In, asyncio.Future[Out]]] = []
        try:
            while self._waiting:
                group, self._waiting = self._waiting[: self._most], self._waiting[self._most :]
                try:
                    outcomes = await self._write([item for item, _ in group])
                except Exception as exc:  # the group's transaction: nothing of it was written
                    outcomes = [exc] * len(group)
                for (_, done), outcome in zip(group, outcomes, strict=True):
                    if done.done():
                        continue  # its caller gave up waiting
                    if isinstance(outcome, Exception):
                        done.set_exception(outcome)
                    else:
                        done.set_result(outcome)
        except asyncio.CancelledError:  # shutting down: nobody is left waiting for ever
            for _, done in [*group, *self._waiting]:
                done.cancel()
            self._waiting = []
            raise
        finally:
            self._writer = None

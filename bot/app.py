"""The composition root: builds every service once, in a logged order, and takes them down in the
mirror order.

Start: settings → operations endpoint (`/livez` answers from here on, a standby's too) → leader
lock → database (migrate, check head) → directory → Matrix login (whoami must match) →
device cross-signed (`bot.matrix.cross_signing`, never fatal) → first sync (history skipped or
resumed) → pending commands dispatched → scheduler re-armed (its timers wait until what was sent
before they fell due is handled: `bot.runtime.catchup`) → sync.
Stop: stop syncing → scheduler down → running commands finish (bounded) → client and database
closed; the operations endpoint last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from bot.chat.dispatch import CommandRunner
from bot.chat.registry import CommandFamily, Registry
from bot.commands import all_families
from bot.directory.keeper import DirectoryKeeper, write_pid_file
from bot.directory.model import DirectoryError
from bot.directory.outsiders import tighten_invites
from bot.directory.roles import Role
from bot.matrix.client import LoginFailed, log_in, make_client, private_dir
from bot.matrix.sealed import KEY_WAIT
from bot.matrix.send import Messenger
from bot.matrix.sync import FatalSyncError, SyncLoop
from bot.matrix.trust import DeviceTrust
from bot.render import Renderer
from bot.runtime.catchup import CatchUp
from bot.runtime.health import Readiness, readiness
from bot.runtime.heap import AFTER_READY, freeze_heap
from bot.runtime.layers import Layers
from bot.runtime.leader import Leadership, LostLeadership
from bot.runtime.logs import add_secrets
from bot.runtime.metrics import Metrics
from bot.runtime.scheduler import Scheduler
from bot.runtime.tasks import Paced, TaskSupervisor
from bot.services import Services, build_services, register_timers
from bot.settings import Settings
from bot.storage import core
from bot.storage.db import Database, SchemaError
from bot.storage.models import InboxEvent
from bot.web.ops import OpsServer
from bot.web.server import WebServer

T = TypeVar("T")
# How long the sync loop lets the look-ups of a batch be answered before it records the batch
# (`App._answer_early`): a look-up and its send take some 30 ms; a slow one is not waited for.
EARLY_PATIENCE = 0.25
log = logging.getLogger(__name__)

# Exit codes of `icc-bot run`, distinct so that a supervisor can tell what to fix.
EXIT_CONFIG, EXIT_LOGIN, EXIT_SCHEMA, EXIT_SESSION, EXIT_LEADERSHIP = 2, 3, 4, 5, 7


@dataclass(frozen=True)
class Tuning:
    """Knobs tests turn down (long-poll, back-off); production keeps the defaults."""

    sync_timeout_ms: int = 30_000
    backoff: tuple[float, float] = (5.0, 300.0)
    drain_seconds: float = 8.0
    timeline_limit: int = 100
    key_wait: timedelta = KEY_WAIT  # how long an encrypted event waits for its room key


class App:
    def __init__(
        self,
        settings: Settings,
        tuning: Tuning | None = None,
        families: list[CommandFamily] | None = None,
    ) -> None:
        self.settings = settings
        self.tuning = tuning or Tuning()
        self.families = families if families is not None else all_families()
        # 256 handlers at once: a slot is held through its reply's send, and with 64 the answers
        # of a 300-person storm were recorded in five waves, each as long as a busy homeserver
        # took to accept the previous wave's replies (bench/README.md, the storm).
        self.tasks = TaskSupervisor(concurrency=256)
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()  # set once the first sync is handled and commands flow
        self.services: Services | None = None
        self.sync: SyncLoop | None = None
        self.runner: CommandRunner | None = None  # what the sync loop dispatches commands to
        self.trust: DeviceTrust | None = None
        self.ops: OpsServer | None = None  # /livez, /readyz, /metrics
        self.web: WebServer | None = None
        self._mail: asyncio.Task[None] | None = None
        self.metrics = Metrics()
        self.catch_up = CatchUp(counts=self._in_directory)
        self._pid_file: Path | None = None

    async def run(self) -> None:
        """Run until `stop()` is called or the sync loop dies; always cleans up."""
        settings = self.settings
        log.info("starting with %s", settings.redacted())
        private_dir(settings.data_dir)
        db = Database(settings.database_url)
        client = None
        directory: asyncio.Task[Any] | None = None
        scheduler = Scheduler(db, catch_up=self.catch_up, metrics=self.metrics)
        leadership = Leadership(db, settings.user_id, metrics=self.metrics)
        try:
            await self._start_ops(db, leadership)
            if not await self._unless_stopped(leadership.acquire()):
                return  # stopped while standing by
            await db.upgrade()
            log.info("database at schema %s", await db.check_schema())
            keeper = DirectoryKeeper(
                settings.directory_path, db, settings.data_dir, zone=settings.timezone
            )
            # The directory loads while the bot logs in and the homeserver prepares the first
            # sync (full state, every room: most of a start's wait, bench/ start-up); the sync
            # loop handles nothing of that batch, invites included, before it is in force.
            directory = asyncio.create_task(keeper.load(), name="directory")
            client = make_client(settings)
            credentials = await _unless_directory_fails(log_in(client, settings), directory)
            add_secrets([credentials.access_token])
            if client.olm is not None:
                # Only with encryption on: cross-signing brings `cryptography` (6 MB) with it.
                from bot.matrix.cross_signing import bootstrap as cross_sign

                await cross_sign(client, settings)
            layers = Layers(
                settings=settings,
                db=db,
                keeper=keeper,
                renderer=Renderer(settings.template_dir, prefix=settings.command_prefix),
                messenger=Messenger(client, trusted=self._in_directory),
                scheduler=scheduler,
                metrics=self.metrics,
                paced=Paced(foreground=self.tasks.foreground),
                foreground=self.tasks.foreground,
            )
            services = self.services = build_services(layers, Registry(self.families))
            register_timers(services)
            runner = self.runner = CommandRunner(services)
            self.trust = DeviceTrust(client, self._member_ids)
            self.sync = SyncLoop(
                client,
                db,
                wants=runner.wants,
                dispatch=lambda items: self._dispatch(runner, items),
                early=lambda items, recorded: self._answer_early(runner, items, recorded),
                on_invite=self._on_invite,
                on_ready=lambda: self._on_ready(runner),
                prepared=lambda: directory,
                on_undecryptable=runner.notify_undecryptable,
                on_keys=self.trust.review,
                on_room_created=services.messenger.note_creator,
                on_arrival=self._on_arrival,
                catch_up=self.catch_up,
                receipts=await services.seen.watch(),
                hearing=services.messenger.hearing,
                key_wait=self.tuning.key_wait,
                timeout_ms=self.tuning.sync_timeout_ms,
                backoff=self.tuning.backoff,
                timeline_limit=self.tuning.timeline_limit,
                metrics=self.metrics,
            )
            self.catch_up.probe_with(self.sync.nothing_new)
            sync_task = asyncio.create_task(self.sync.run(), name="sync")
            watch_task = asyncio.create_task(leadership.watch(), name="leader")
            stop_task = asyncio.create_task(self._stopping.wait(), name="stop")
            tasks = {directory, sync_task, watch_task, stop_task}
            done = await _until_one_ends(tasks, besides=directory)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for task in (directory, sync_task, watch_task):
                if task in done and _failed(task):
                    _reraise(task)
        finally:
            log.info("shutting down")
            if directory is not None and not directory.done():
                directory.cancel()
            if self._mail is not None:
                self._mail.cancel()
                await asyncio.gather(self._mail, return_exceptions=True)
            await scheduler.stop(self.tuning.drain_seconds / 2)
            await self.tasks.drain(self.tuning.drain_seconds)
            if self.services is not None:  # the boards' last edits (paced) go out
                await self.services.board.paced.stop(self.tuning.drain_seconds / 2)
            if self.web is not None:
                await self.web.stop()
            if self._pid_file is not None:
                self._pid_file.unlink(missing_ok=True)
            if client is not None:
                await client.close()
            await leadership.release()
            if self.ops is not None:
                await self.ops.stop()
            await db.dispose()
            log.info("stopped")

    async def _unless_stopped(self, work: Coroutine[Any, Any, object]) -> bool:
        """Run `work` unless `stop()` comes first; True when it finished."""
        job = asyncio.create_task(work)
        stop = asyncio.create_task(self._stopping.wait())
        done, _ = await asyncio.wait({job, stop}, return_when="FIRST_COMPLETED")
        for task in (job, stop):
            task.cancel()
        await asyncio.gather(job, stop, return_exceptions=True)
        return job in done and not job.cancelled() and job.exception() is None

    async def _start_web(self, services: Services) -> None:
        """The web endpoint, when people are given links to it (ICC_PUBLIC_URL): acknowledgement
        links, situation boards, and inbound SMS when they are read (ICC_SMS_SECRET)."""
        settings = self.settings
        if not settings.public_url:
            return
        host, port = settings.web_addr
        sms = services.sms_replies if settings.sms_replies else None
        self.web = WebServer(
            host, port, services.links, services.renderer, sms=sms, boards=services.boards
        )
        await self.web.start()

    async def _start_ops(self, db: Database, leadership: Leadership) -> None:
        """`/livez`, `/readyz` and `/metrics` on ICC_HEALTH_ADDR, from the start: a standby
        answers too. A port already taken is logged, and the bot runs without them."""
        host, port = self.settings.health_addr

        async def ready() -> Readiness:
            return await readiness(
                leader=leadership.active,
                started=self.ready.is_set(),
                last_sync=self.sync.last_sync_at if self.sync else None,
                ping=db.ping,
            )

        ops = OpsServer(host, port, ready=ready, metrics=self.metrics)
        try:
            await ops.start()
        except OSError as exc:
            log.error("operations endpoint not started on %s:%d: %s", host, port, exc)
            return
        self.ops = ops

    def stop(self) -> None:
        self._stopping.set()

    def request_reload(self) -> None:
        """SIGHUP: re-read the directory in the background; a bad file changes nothing."""
        self.tasks.spawn("directory-reload", self._reload())

    async def _reload(self) -> None:
        if not self.ready.is_set():  # the first load may have read the file before it changed
            log.info("directory reload asked during start-up: done once the bot is ready")
            if not await self._unless_stopped(self.ready.wait()):
                return
        assert self.services is not None
        if await self.services.keeper.reload():
            await self.services.duty.ensure_armed()  # a shift change may have moved
            freeze_heap()

    async def _on_ready(self, runner: CommandRunner) -> None:
        """The first sync is recorded: what arrived while the bot was away is handed over before
        any timer is re-armed, and the timers wait for it to be handled (`bot.runtime.catchup`)."""
        services = self.services
        assert services is not None
        async with services.db.session() as session:
            pending = await core.pending_inbox(session)
        if pending:
            log.info("resuming %d commands received but not finished", len(pending))
        self._dispatch(runner, pending)
        await services.scheduler.start()
        await services.digest.ensure_armed()
        await services.duty.start()
        await self._start_web(services)
        if self.settings.imap_url:  # runs until shutdown, so not among the drained tasks
            self._mail = asyncio.create_task(services.mail_replies.run(), name="mail-replies")
        self.tasks.spawn("tighten-invites", tighten_invites(services.db, services.messenger))
        self.tasks.spawn("boards", services.board.reconcile())
        self.ready.set()
        self._pid_file = write_pid_file(self.settings.data_dir)
        log.info("ready")
        asyncio.get_running_loop().call_later(AFTER_READY, freeze_heap)

    def _dispatch(self, runner: CommandRunner, items: list[InboxEvent]) -> None:
        for item in items:
            self._start(runner, item)

    def _start(
        self,
        runner: CommandRunner,
        item: InboxEvent,
        *,
        recorded: asyncio.Future[None] | None = None,
        answered: asyncio.Event | None = None,
    ) -> None:
        """Handle `item` in its room's lane (`CommandRunner.run` says what the rest is)."""

        async def handle() -> None:
            try:
                await runner.run(item, recorded=recorded, answered=answered)
            finally:
                self.catch_up.handled(item.event_id)

        direct = self.services.messenger.direct_rooms if self.services is not None else set()
        self.catch_up.reading(item.event_id, item.origin_ts, item.sender)
        self.tasks.spawn(
            f"cmd:{item.event_id}",
            handle(),
            lane=item.room_id,
            first=runner.goes_first(item, direct),
        )

    async def _answer_early(
        self, runner: CommandRunner, items: list[InboxEvent], recorded: asyncio.Future[None]
    ) -> set[str]:
        """Answer the look-ups among a batch's commands before it is recorded
        (`bot.matrix.sync`, `answerable_early`). Returns once they are answered
        (`EARLY_PATIENCE` at most): recording the batch meanwhile would hold them up, and
        while the homeserver takes the answer it would take its share of the machine's two
        cores (bench/: the send took 4 ms longer)."""
        early = answerable_early(items, runner.reads_only, self.tasks.idle)
        answers = [asyncio.Event() for _ in early]
        for item, answered in zip(early, answers, strict=True):
            self._start(runner, item, recorded=recorded, answered=answered)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(EARLY_PATIENCE):
                for answered in answers:
                    await answered.wait()
        return {item.event_id for item in early}

    def _member_ids(self) -> set[str]:
        """The directory's people, as now loaded: whose devices the bot trusts."""
        return self.services.directory.matrix_ids() if self.services is not None else set()

    def _in_directory(self, user_id: str) -> bool:
        services = self.services
        return services is not None and services.directory.contact_for(user_id) is not None

    def _on_arrival(self, room_id: str, user_id: str) -> None:
        """Someone joined or was invited: the lead hears of it if it is an outsider in one of
        the bot's own rooms (checked in the task, off the sync loop)."""
        if self.services is not None and not self._in_directory(user_id):
            outsiders = self.services.outsiders
            self.tasks.spawn(f"outsider:{room_id}:{user_id}", outsiders.arrived(room_id, user_id))

    async def _on_invite(self, room_id: str, inviter: str) -> None:
        services = self.services
        assert services is not None
        if services.directory.role_of(inviter) is Role.STRANGER:
            log.info("declining invite to %s from %s (not in the directory)", room_id, inviter)
            await services.messenger.leave(room_id)
        else:
            log.info("accepting invite to %s from %s", room_id, inviter)
            await services.messenger.join(room_id)


def answerable_early(
    items: list[InboxEvent],
    reads_only: Callable[[InboxEvent], bool],
    idle: Callable[[str], bool],
) -> list[InboxEvent]:
    """The look-ups among a batch's commands that may be answered before the batch is recorded:
    those in a room where the batch writes nothing and nothing else is being handled (`idle`),
    so that a look-up never overtakes what was typed before it."""
    writing = {item.room_id for item in items if not reads_only(item)}
    return [item for item in items if item.room_id not in writing and idle(item.room_id)]


async def _unless_directory_fails(work: Awaitable[T], directory: asyncio.Task[Any]) -> T:
    """`work`'s result (the login). A broken directory is reported first, as when it loaded
    before the login: if it fails while `work` runs (a login can wait a long time on a
    homeserver that is away), and if `work` fails too."""
    job = asyncio.ensure_future(work)
    try:
        await asyncio.wait({job, directory}, return_when="FIRST_COMPLETED")
        if not job.done() and _failed(directory):
            _reraise(directory)
        try:
            return await job
        except BaseException:
            await asyncio.wait({directory})
            if _failed(directory):
                _reraise(directory)
            raise
    finally:
        if not job.done():
            job.cancel()
            await asyncio.gather(job, return_exceptions=True)


def _failed(task: asyncio.Task[Any]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is not None


def _reraise(task: asyncio.Task[Any]) -> NoReturn:
    """Raise what a `_failed` task raised, without the context of where it is re-raised."""
    exc = task.exception()
    assert exc is not None
    raise exc from None


async def _until_one_ends(
    tasks: set[asyncio.Task[Any]], *, besides: asyncio.Task[Any]
) -> set[asyncio.Task[Any]]:
    """Wait until one of `tasks` ends; `besides` ending well is not the end (the directory
    loading beside the sync loop: a broken file must stop the start even while the homeserver
    is away, and a good one lets everything run on)."""
    done, pending = await asyncio.wait(tasks, return_when="FIRST_COMPLETED")
    if done == {besides} and besides.exception() is None:
        done, _ = await asyncio.wait(pending, return_when="FIRST_COMPLETED")
    return done


async def serve(app: App) -> int:
    """Run `app` until SIGTERM or SIGINT; a start-up failure becomes its exit code."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, app.stop)
    loop.add_signal_handler(signal.SIGHUP, app.request_reload)
    try:
        await app.run()
    except DirectoryError as exc:
        for line in exc.problems:
            log.error("directory: %s", line)
        return EXIT_CONFIG
    except (LoginFailed, SchemaError, FatalSyncError, LostLeadership) as exc:
        code, how = ENDINGS[type(exc)]
        log.error(how, exc)
        return code
    return 0


# How a start-up or session failure is logged, and the exit code a supervisor acts on.
ENDINGS: dict[type[Exception], tuple[int, str]] = {
    LoginFailed: (EXIT_LOGIN, "login failed: %s"),
    SchemaError: (EXIT_SCHEMA, "database: %s"),
    FatalSyncError: (EXIT_SESSION, "%s"),
    LostLeadership: (EXIT_LEADERSHIP, "%s; stopping so that another instance can take over"),
}

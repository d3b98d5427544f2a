"""The fast tier's bot: the real services graph, command runner, renderer, registry, directory
keeper and database (a SQLite file, or a PostgreSQL schema), with a `RecordingMessenger` where
Matrix would be and a scheduler whose timers fire when the test says so.

    desk = await Desk.open(tmp_path, database_url, people, directory)
    room = desk.room("lead", "member")
    answer = await desk.say("lead", room, "!icc help")   # -> [Recorded]
    await desk.fire(kind="round.close")                   # a timer, now

What is real: everything from the inbox row on (interpretation, rate limits, role check, parsing,
the handler, framing, the answer's content, the rows written, the timers armed and their
handlers). What is not: the homeserver and the sync loop. `say` writes the inbox row the sync
loop would write for such an event (`bot.matrix.sync`: only an event the runner `wants`, from
someone else than the bot) and runs it as the app would (`bot.app`), so tests of sync, encryption,
membership seen through the sync, restarts and outages stay in the synapse tier.

The timer handlers are registered here as `bot.app` registers them (`App.run`): a timer kind
added there must be added here too, or arming it fails loudly (`Scheduler._check_kind`).
"""

from __future__ import annotations

import atexit
import re
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from bot.chat.dispatch import CommandRunner
from bot.chat.registry import CommandFamily, Registry
from bot.commands import all_families
from bot.directory.keeper import DirectoryKeeper
from bot.render import Renderer
from bot.runtime.layers import Layers
from bot.runtime.metrics import Metrics
from bot.runtime.scheduler import Scheduler
from bot.runtime.tasks import Paced
from bot.services import Services, build_services, register_timers
from bot.settings import Settings, load_settings
from bot.storage import core
from bot.storage.db import Database
from bot.storage.models import InboxEvent, Timer
from bot.timeutil import utcnow
from tests.support.background import OnBackground
from tests.support.cast import desk_cast, people_of
from tests.support.recording import SERVER, Recorded, RecordingMessenger

BOT_ID = f"@bot:{SERVER}"


def desk_env(directory: Path, database_url: str, **extra: str) -> dict[str, str]:
    """The settings of a desk under `directory`; `extra` as ICC_* variables (ICC_DG_ROOM=…)."""
    return {
        "ICC_HOMESERVER": f"https://{SERVER}",  # never contacted
        "ICC_USER_ID": BOT_ID,
        "ICC_PASSWORD": "unused-by-the-desk",
        "ICC_DATABASE_URL": database_url,
        "ICC_DATA_DIR": str(directory / "data"),
        "ICC_CONFIG_DIR": str(directory / "config"),
        "ICC_E2EE": "false",
        **extra,
    }


class Desk:
    """The bot's services over a recording messenger; see the module's docstring."""

    def __init__(
        self,
        settings: Settings,
        services: Services,
        messenger: RecordingMessenger,
        people: Mapping[str, str],
    ) -> None:
        self.settings = settings
        self.services = services
        self.messenger = messenger
        self.people = dict(people)  # role or handle -> Matrix ID
        self.runner = CommandRunner(services)
        self._events = 0

    @classmethod
    async def open(
        cls,
        directory: Path,
        database_url: str,
        people: Mapping[str, str],
        contacts: dict[str, Any],
        *,
        env: Mapping[str, str] | None = None,
        families: Iterable[CommandFamily] = (),
    ) -> Desk:
        """A desk whose files live under `directory`, with `contacts` as its directory.yaml."""
        settings = load_settings(desk_env(directory, database_url) | dict(env or {}))
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings.config_dir.mkdir(parents=True, exist_ok=True)
        settings.directory_path.write_text(yaml.safe_dump(contacts))
        await from_migrated_copy(settings.database_url)
        db = Database(settings.database_url)
        await db.upgrade()
        try:
            keeper = DirectoryKeeper(
                settings.directory_path, db, settings.data_dir, zone=settings.timezone
            )
            await keeper.load()
            messenger = RecordingMessenger(
                settings.user_id,
                trusted=lambda user_id: keeper.current.contact_for(user_id) is not None,
            )
            metrics = Metrics()
            scheduler = Scheduler(db, metrics=metrics)  # not started: timers fire through `fire`
            layers = Layers(
                settings=settings,
                db=db,
                keeper=keeper,
                renderer=Renderer(settings.template_dir, prefix=settings.command_prefix),
                messenger=messenger,
                scheduler=scheduler,
                metrics=metrics,
                paced=Paced(gap=0, share=0),  # a board edit as soon as asked: tests read it
            )
            services = build_services(layers, Registry([*all_families(), *families]))
            register_timers(services)
            if settings.dg_room and settings.dg_room.startswith("!"):
                messenger.add_room(settings.dg_room, name="DG platform")
            await services.digest.ensure_armed()  # as the app does once ready
            await services.duty.start()
        except BaseException:
            await db.dispose()
            raise
        return cls(settings, services, messenger, people)

    async def close(self) -> None:
        await self.services.board.paced.stop(5)
        await self.services.scheduler.stop(5)
        await self.services.db.dispose()

    # -- rooms and people -----------------------------------------------------------------------

    def who(self, person: str) -> str:
        """A Matrix ID from a role or handle ("lead"), or the ID itself."""
        return person if person.startswith("@") else self.people[person]

    def room(self, *members: str, name: str = "", creator: str | None = None) -> str:
        """A room someone made (its first member, unless `creator`), the bot and `members` in
        it: not one of the bot's own rooms."""
        ids = [self.who(m) for m in members]
        return self.messenger.add_room(
            members=ids, name=name, creator=self.who(creator) if creator else None
        )

    def joins(self, room_id: str, *people: str) -> None:
        for person in people:
            self.messenger.add_member(room_id, self.who(person))

    # -- events in, answers out ---------------------------------------------------------------------

    def event_id(self) -> str:
        self._events += 1
        return f"$typed{self._events}-{secrets.token_hex(3)}"

    def inbox_event(
        self,
        sender: str,
        room_id: str,
        content: dict[str, Any],
        *,
        event_type: str = "m.room.message",
        sent_at: datetime | None = None,
        event_id: str | None = None,
    ) -> InboxEvent | None:
        """The row the sync loop writes for this event, or None where it writes none (an event
        the bot does not want, or its own)."""
        sender_id = self.who(sender)
        if sender_id == self.settings.user_id or not self.runner.wants(event_type, content):
            return None
        now = utcnow()
        return InboxEvent(
            event_id=event_id or self.event_id(),
            room_id=room_id,
            sender=sender_id,
            origin_ts=sent_at or now,
            received_at=now,
            content=content,
            event_type=event_type,
        )

    async def handle(self, item: InboxEvent) -> list[Recorded]:
        """Record the row and run it as the app does; returns what the bot sent meanwhile."""
        mark = len(self.messenger.recorded)
        async with self.services.db.session() as session:
            added = await core.record_inbox(session, [item])
        if added:  # a duplicate event runs once
            await self.runner.run(item)
        await self.settled()  # the boards' edits it asked for
        return self.messenger.recorded[mark:]

    async def send(
        self, sender: str, room_id: str, content: dict[str, Any], **how: Any
    ) -> tuple[str, list[Recorded]]:
        """Any event (`how`: `event_type`, `sent_at`, as `inbox_event` takes them): its ID, and
        what the bot sent in answer."""
        event_id = self.event_id()
        item = self.inbox_event(sender, room_id, content, event_id=event_id, **how)
        return event_id, ([] if item is None else await self.handle(item))

    async def say(self, sender: str, room_id: str, text: str, **content: Any) -> list[Recorded]:
        """`sender` types `text` in the room (extra content fields as keywords: `m.relates_to`
        as `relates_to`); what the bot sent in answer, in order."""
        return (await self.said(sender, room_id, text, **content))[1]

    async def said(
        self, sender: str, room_id: str, text: str, **content: Any
    ) -> tuple[str, list[Recorded]]:
        """`say`, with the ID of the typed event (to reply or react to it)."""
        fields = {("m.relates_to" if k == "relates_to" else k): v for k, v in content.items()}
        message = {"msgtype": "m.text", "body": text, **fields}
        return await self.send(sender, room_id, message)

    async def ask(self, sender: str, room_id: str, text: str, **content: Any) -> Recorded:
        """The one reply to what `sender` typed (as a person waits for the bot's answer)."""
        event_id, sent = await self.said(sender, room_id, text, **content)
        replies = [r for r in sent if r.reply_to == event_id]
        assert len(replies) == 1, f"{text!r}: {len(replies)} replies in {sent}"
        return replies[0]

    async def reply(
        self, sender: str, room_id: str, to: str, text: str, **content: Any
    ) -> list[Recorded]:
        """`text` as a reply to the event `to`, with the quote fallback a client puts there."""
        relates = {"m.in_reply_to": {"event_id": to}}
        return await self.say(sender, room_id, f"> <{BOT_ID}> …\n\n{text}", relates_to=relates)

    async def react(self, sender: str, room_id: str, to: str, key: str) -> list[Recorded]:
        relates = {"rel_type": "m.annotation", "event_id": to, "key": key}
        return (
            await self.send(sender, room_id, {"m.relates_to": relates}, event_type="m.reaction")
        )[1]

    async def open_activation(
        self, person: str, room_id: str, command: str = '!icc activate "Meuse flooding"'
    ) -> tuple[str, str, Recorded]:
        """`person` types `activate …` in the room: (its reference, its room's ID, the reply)."""
        reply = await self.ask(person, room_id, command)
        found = re.search(r"Opened ((?:EX-)?ICC-\d{4}-\d{3})", reply.body)
        link = re.search(r"https://matrix.to/#/(!\S+)", reply.body)
        assert found, reply.body
        assert link, reply.body
        return found.group(1), link.group(1), reply

    def dm_of(self, person: str) -> str:
        """The direct-message room the bot made for `person` (it makes one per person)."""
        rooms = [
            r.room_id
            for r in self.messenger.recorded
            if r.kind == "create_room"
            and r.details["direct"]
            and r.details["invite"] == [self.who(person)]
        ]
        assert len(rooms) == 1, f"direct-message rooms for {person}: {rooms}"
        return rooms[0]

    async def settled(self) -> None:
        """Until the boards' edits asked for (paced, in the background) have gone out: after
        calling a service directly rather than through `say` or `fire`, which wait for them."""
        await self.services.board.paced.settle()

    def board(self, room_id: str, ref: str) -> str:
        """A page's board in the room as it reads now: its latest edit, or the original."""
        texts = [
            t for t in self.messenger.texts(room_id) if t.split("\n")[1:2] and f"{ref} · " in t
        ]
        return texts[-1] if texts else ""

    def file(self, room_id: str, name: str) -> bytes:
        """The bytes of the file called `name` the bot posted last in the room."""
        found = [r for r in self.messenger.events(room_id) if r.kind == "file" and r.body == name]
        assert found, f"no file {name} in {room_id}"
        assert found[-1].data is not None
        return found[-1].data

    # -- timers -------------------------------------------------------------------------------------

    async def armed(self, kind: str | None = None) -> list[Timer]:
        """Timers still to run (not completed, not cancelled), soonest first."""
        async with self.services.db.session() as session:
            timers = await core.armed_timers(session)
        return [t for t in timers if kind is None or t.kind == kind]

    async def fire(
        self,
        kind: str | None = None,
        *,
        key: str = "",
        until: datetime | None = None,
        within: timedelta | None = None,
    ) -> list[Recorded]:
        """Fire, now, the armed timers of `kind` (any kind if None) whose key contains `key`,
        due by `until` (or within `within` from now; all of them if neither), through the
        scheduler's own claim, handler and completion; returns what the bot sent meanwhile.
        The time is not changed: a handler that compares its timer with the clock sees it
        early."""
        if within is not None:
            until = utcnow() + within
        timers = [
            t
            for t in await self.armed(kind)
            if key in t.key and (until is None or t.due_at <= until)
        ]
        mark = len(self.messenger.recorded)
        scheduler = self.services.scheduler
        await scheduler.fire_now([timer.id for timer in timers])
        await self.settled()
        return self.messenger.recorded[mark:]

    async def fire_all(self, kind: str | None = None, *, rounds: int = 20) -> list[Recorded]:
        """Fire the timers of `kind` and those they arm, soonest first, until none is left (an
        escalation to its end); returns what the bot sent meanwhile."""
        mark = len(self.messenger.recorded)
        for _ in range(rounds):
            armed = await self.armed(kind)
            if not armed:
                return self.messenger.recorded[mark:]
            await self.fire(kind, until=armed[0].due_at)
        raise AssertionError(f"timers still armed after {rounds} rounds: {await self.armed(kind)}")

    async def fire_due(self, *, rounds: int = 20) -> list[Recorded]:
        """Fire what is due now, and what that arms for now, as the running bot would at once
        (a step armed for `unable`'s immediate escalation)."""
        mark = len(self.messenger.recorded)
        for _ in range(rounds):
            soon = utcnow() + timedelta(seconds=1)
            if not [t for t in await self.armed() if t.due_at <= soon]:
                return self.messenger.recorded[mark:]
            await self.fire(until=soon)
        raise AssertionError(f"timers keep falling due: {await self.armed()}")


@asynccontextmanager
async def desk_running(
    directory: Path,
    database_url: str,
    *,
    contacts: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    families: tuple[CommandFamily, ...] = (),
) -> AsyncIterator[Desk]:
    """A desk over `database_url`, its files under `directory`, with the cast's directory
    (tests/support/cast.py) unless `contacts` is given."""
    cast = desk_cast()
    desk = await Desk.open(
        directory,
        database_url,
        people_of(cast),
        contacts if contacts is not None else cast.directory(),
        env=env,
        families=families,
    )
    try:
        yield desk
    finally:
        await desk.close()


def pages_to(desk: Desk, dm: str, text: str) -> list[Recorded]:
    """The pages (messages that ring) in `dm` whose text holds `text`."""
    return [r for r in desk.messenger.events(dm) if r.msgtype == "m.text" and text in r.body]


_MIGRATED: list[Path] = []  # a SQLite file at the schema's head, made once per process


async def from_migrated_copy(database_url: str) -> None:
    """A new SQLite database starts as a copy of one that `Database.upgrade` migrated in this
    process (the desk's `upgrade` then finds it at head): the migrations run once, not once per
    test. PostgreSQL schemas, and files that exist already, are left as they are."""
    if not database_url.startswith("sqlite:///"):
        return
    target = Path(database_url.removeprefix("sqlite:///"))
    if target.exists():
        return
    if not _MIGRATED:
        template = Path(tempfile.mkdtemp(prefix="icc-desk-")) / "migrated.db"
        atexit.register(shutil.rmtree, template.parent, True)
        db = Database(f"sqlite:///{template}")
        try:
            await db.upgrade()
        finally:
            await db.dispose()
        _MIGRATED.append(template)
    shutil.copyfile(_MIGRATED[0], target)


class OnDesk(OnBackground):
    """A world around a desk, opened by its `start` on the background loop."""

    _desk: Desk | None = None

    @property
    def desk(self) -> Desk:
        assert self._desk is not None, "not started"
        return self._desk

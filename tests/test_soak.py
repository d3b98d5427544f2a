"""Soak: the real `icc-bot run` is SIGKILLed at random moments and restarted at once, many times,
while pages escalate, partners answer them, and coordination rounds run on the test homeserver.

Afterwards, with the bot left running and quiet, from what people's clients show (full room
histories) and what the bot's database holds: each page reached each person once per step (no
duplicate page, reminder, backup page or unreachable report), every acknowledgement, decline and
round update sent was recorded and answered once, nobody was escalated after an ack given in good
time, each round run's prompt was posted once (none lost, none twice), and the logbook's hash
chain still verifies.

Partners act only when their answer leaves a wide margin before the deadline it races (read from
the bot's database), so what the bot must do is never a matter of timing: an ack sent 12 s before
a deadline must stop the escalation even if the bot is killed in between. The seed is printed and
named in every failure; replay with `SOAK_SEED=<seed>`.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from nio import MessageDirection, RoomMessagesError
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlmodel import Session, col, select

from bot.devserver import DevServer
from bot.settings import load_settings
from bot.storage import page_store, round_store
from bot.storage.models import (
    DmRoom,
    InboxEvent,
    LogEntryRow,
    PageRow,
    PageTargetRow,
    RoundReportRow,
    RoundRunRow,
    RoundSeriesRow,
    Timer,
)
from tests.support.bots import CrashPoint, RunningBot
from tests.support.cast import Account, Cast
from tests.support.databases import BACKENDS
from tests.support.matrix_people import Person, body, replies_to
from tests.support.processes import run_cli, start_process
from tests.support.rooms import activation_room, page_received

pytestmark = pytest.mark.synapse

READY = "INFO bot.app: ready"
ACK_WINDOW = 30  # s, every page's --ack
ROUND_WINDOW = 20  # s, every round's --window
SAFE = 12.0  # s: an answer is sent only this long before the deadline it races
SAFE_ROUND = 8.0  # s: likewise for an update before its run closes
CHURN_UNTIL = 75.0  # s: kills are spread over this long from the first command on
PARTNERS = {"p1": "b1", "p2": "b2", "p3": None}  # partner → backup (p3 has none)
BACKUPS = ("b1", "b2")
PRIMARY_ACTIONS = {"command": 2, "reply": 2, "reaction": 2, "late": 1.5, "unable": 1, "none": 1.5}
BACKUP_ACTIONS = {"command": 1, "reply": 1, "reaction": 1, "none": 2}
UPDATE_ACTIONS = {"command": 2, "thread": 2, "none": 1}
INTERNAL_ERROR = "Something went wrong on our side"


def soak_directory(cast: Cast, accounts: dict[str, Account]) -> dict[str, Any]:
    """The ICC (a lead, a member) and partners: p1 ← b1, p2 ← b2, p3 without a backup."""
    people = [("lead", cast.lead, "icc-lead", "nccn", ["icc"], None)]
    people.append(("member", cast.member, "icc-member", "nccn", ["icc"], None))
    people += [(h, accounts[h], "partner", "ercc", ["soak"], b) for h, b in PARTNERS.items()]
    people += [(h, accounts[h], "partner", "ercc", [], None) for h in BACKUPS]
    return {
        "organisations": [
            {"key": "nccn", "name": "NCCN", "kind": "national", "country": "BE"},
            {"key": "ercc", "name": "ERCC", "kind": "eu", "country": "EU"},
        ],
        "contacts": [
            {
                "handle": handle,
                "name": handle.upper(),  # "P1": what pages say ("the backup of P1")
                "organisation": organisation,
                "matrix_id": account.user_id,
                "role": role,
                "languages": ["en"],
                "timezone": "Europe/Brussels",
                "groups": groups,
                **({"backup": backup} if backup else {}),
            }
            for handle, account, role, organisation, groups, backup in people
        ],
        "groups": {"icc": "ICC", "soak": "Soak partners"},
    }


# -- what the test sent, what the bot holds --------------------------------------------------------


@dataclass
class Sent:
    """One message a person sent: a command, an answer to a page, an update."""

    who: str  # handle
    what: str  # ack | unable | update | the command's name
    how: str  # command | reply | reaction | thread
    ref: str  # PG-n, or RD-n #k
    room_id: str
    event_id: str
    at: datetime  # once the homeserver had it: an upper bound of its timestamp
    covers: str = ""  # the person a backup answered for
    late: bool = False  # an ack to the reminder, after the deadline
    text: str = ""


class Peek:
    """The bot's database, read (never written) from the test, synchronously and briefly."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        sqlite = parsed.get_backend_name() == "sqlite"
        self.engine = create_engine(
            parsed.set(drivername="sqlite" if sqlite else "postgresql+psycopg"),
            connect_args={"timeout": 30} if sqlite else {},
        )

    def all(self, model: Any, *where: Any) -> list[Any]:
        with Session(self.engine) as session:
            return list(session.exec(select(model).where(*where)).all())

    def target(self, page_id: int, handle: str, covers: str = "") -> PageTargetRow | None:
        rows = self.all(
            PageTargetRow,
            PageTargetRow.page_id == page_id,
            PageTargetRow.handle == handle,
            PageTargetRow.covers == covers,
        )
        return rows[0] if rows else None

    def step(self, page_id: int, handle: str, step: str) -> Timer | None:
        rows = self.all(Timer, col(Timer.key).endswith(f":pg{page_id}:{handle}:{step}"))
        return rows[0] if rows else None

    def run(self, series_id: int, number: int) -> tuple[RoundRunRow, RoundSeriesRow] | None:
        runs = self.all(
            RoundRunRow, RoundRunRow.series_id == series_id, RoundRunRow.number == number
        )
        series = self.all(RoundSeriesRow, RoundSeriesRow.id == series_id)
        return (runs[0], series[0]) if runs and series else None

    def settled(self) -> bool:
        """Nothing pending: every command finished, every step and round timer done, every
        page delivered, every run closed."""
        if self.all(InboxEvent, InboxEvent.status == "pending"):
            return False
        busy = self.all(
            Timer,
            col(Timer.kind).in_(["page.step", "round.run", "round.remind", "round.close"]),
            col(Timer.completed_at).is_(None),
            col(Timer.cancelled_at).is_(None),
        )
        undelivered = self.all(PageTargetRow, col(PageTargetRow.event_id).is_(None))
        open_runs = self.all(RoundRunRow, RoundRunRow.status == "open")
        return not busy and not undelivered and not open_runs

    def dispose(self) -> None:
        self.engine.dispose()


def now() -> datetime:
    return datetime.now(UTC)


def ts(event: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(event["origin_server_ts"] / 1000, tz=UTC)


def new_text(event: dict[str, Any]) -> str:
    """The text an event shows: an edit's new content, else its body."""
    content = event.get("content", {})
    return str((content.get("m.new_content") or content).get("body", ""))


async def history(person: Person, room_id: str) -> list[dict[str, Any]]:
    """Every event of the room, oldest first, read back from the homeserver (a sync's timeline
    may be limited; this is not)."""
    await person.sync(timeout_ms=0)
    events: list[dict[str, Any]] = []
    start = person.client.next_batch
    for _ in range(100):
        page = await person.client.room_messages(
            room_id, start=start, direction=MessageDirection.back, limit=100
        )
        if isinstance(page, RoomMessagesError):
            raise AssertionError(f"history of {room_id}: {page.message}")
        events.extend(e.source for e in page.chunk)
        if not page.chunk or not page.end or page.end == start:
            break
        start = page.end
    return events[::-1]


PAGE_RE = re.compile(r"(REMINDER — )?PAGE (PG-\d+) · ")
BACKUP_RE = re.compile(r"paged as the backup of (\w+), who")
PROMPT_RE = re.compile(r"COORDINATION ROUND (RD-\d+) #(\d+)(?!\d)")


def page_kind(event: dict[str, Any], bot_id: str) -> tuple[str, str, str] | None:
    """(first | reminder | backup, PG-n, covered handle) for a page the bot sent, else None."""
    content = event.get("content", {})
    if event.get("sender") != bot_id or content.get("msgtype") != "m.text":
        return None
    found = PAGE_RE.search(body(event))
    if not found:
        return None
    covers = BACKUP_RE.search(body(event))
    if covers:
        return "backup", found.group(2), covers.group(1).lower()
    return ("reminder" if found.group(1) else "first"), found.group(2), ""


# -- the soak ---------------------------------------------------------------------------------------


@dataclass
class Kill:
    at: float  # s since the churn started
    mode: str  # running, or restarting (killed again soon after the restart of a kill)
    uptime: float  # s since the process was spawned
    was_ready: bool


@dataclass
class Soak:
    seed: int
    env: dict[str, str]
    log_path: Path
    bot_id: str
    people: dict[str, Person]
    peek: Peek
    activation_room: str
    process: subprocess.Popen | None = None
    base: int = 0  # "ready" lines in the log before the current process was spawned
    spawned: float = 0.0
    kills: list[Kill] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # answers not sent: too close to a deadline
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def rng(self, key: str) -> random.Random:
        """A generator of its own per decision, so that a seed replays the same choices
        whatever order events arrive in."""
        return random.Random(f"{self.seed}/{key}")

    def choose(self, key: str, weights: dict[str, float]) -> str:
        return self.rng(key).choices(list(weights), list(weights.values()))[0]

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(asyncio.create_task(coro))

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)

    # -- the process ----------------------------------------------------------------------------

    def readies(self) -> int:
        if not self.log_path.exists():
            return 0
        return self.log_path.read_text(errors="replace").count(READY)

    def start(self) -> None:
        self.base, self.spawned = self.readies(), time.monotonic()
        self.process = start_process(self.env, self.log_path)

    async def wait_ready(self, timeout: float = 90) -> None:
        """Until the current process has logged "ready"."""
        deadline = time.monotonic() + timeout
        while self.readies() <= self.base:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"the bot exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the bot was not ready in {timeout}s")
            await asyncio.sleep(0.05)

    async def churn(self) -> None:
        """Kill and restart the bot at moments spread over CHURN_UNTIL seconds, so that steps,
        round runs and their ends fall due around kills; then leave it running.

        Before each kill the bot has been ready for 0.2–3 s at least (so it gets somewhere
        between kills); a third of the kills are doubled: the restarted bot is killed again
        0.2–3 s after it was started, in its start-up or its recovery.
        """
        rng = self.rng("churn")
        began = time.monotonic()
        for moment in sorted(rng.uniform(0, CHURN_UNTIL) for _ in range(rng.randint(6, 9))):
            await asyncio.sleep(max(0.0, began + moment - time.monotonic()))
            await self.wait_ready()
            await asyncio.sleep(rng.uniform(0.2, 3.0))
            await self.kill(began, "running")
            if rng.random() < 0.35:
                await asyncio.sleep(rng.uniform(0.2, 3.0))
                await self.kill(began, "restarting")
        await self.wait_ready()

    async def kill(self, began: float, mode: str) -> None:
        assert self.process is not None
        was_ready = self.readies() > self.base
        self.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.process.wait, 10)
        now_ = time.monotonic()
        self.kills.append(Kill(now_ - began, mode, now_ - self.spawned, was_ready))
        self.start()

    # -- people ---------------------------------------------------------------------------------

    async def send(
        self,
        who: str,
        room_id: str,
        text: str,
        *,
        what: str,
        how: str = "command",
        ref: str = "",
        **extra: Any,
    ) -> Sent:
        event_id = await self.people[who].send(room_id, text, **extra)
        sent = Sent(who, what, how, ref, room_id, event_id, now(), text=text)
        self.sent.append(sent)
        return sent

    async def actor(self, handle: str, on_event: Callable[[str, str, dict], Any]) -> None:
        """Sync one person's client until the soak stops; join what the bot invites them to;
        hand each new event to `on_event` (which spawns what it does, never blocking here)."""
        person = self.people[handle]
        cursors: dict[str, int] = {}
        joined: set[str] = set(person.client.rooms)
        while not self.stop.is_set():
            await person.sync(timeout_ms=300)
            for room_id in person.invites - joined:
                joined.add(room_id)
                await person.join(room_id)
            for room_id, events in list(person.seen.items()):
                start = cursors.get(room_id, 0)
                cursors[room_id] = len(events)
                for event in events[start:]:
                    on_event(handle, room_id, event)

    def on_partner_event(self, handle: str, room_id: str, event: dict[str, Any]) -> None:
        kind = page_kind(event, self.bot_id)
        if kind is not None:
            self.spawn(self.answer_page(handle, room_id, event, *kind))

    async def answer_page(
        self, handle: str, room_id: str, event: dict, kind: str, ref: str, covers: str
    ) -> None:
        page_id = int(ref.split("-")[1])
        if kind == "backup":  # a backup's ack races the step that reports the unit unreachable
            key = f"backup/{ref}/{covers}"
            action = self.choose(key, BACKUP_ACTIONS)
            unit, step = covers, "unreachable"
        else:
            key = f"page/{ref}/{handle}"
            action = self.choose(key, PRIMARY_ACTIONS)
            if (kind == "reminder") != (action == "late"):
                return  # a late ack answers the reminder; every other answer, the page
            unit, step = handle, "escalate"
            if action == "late":
                action = self.choose(key + "/late", {"command": 1, "reply": 1, "reaction": 1})
                step = "unreachable"
        if action == "none":
            return
        await asyncio.sleep(self.rng(key + "/delay").uniform(0.5, 4.0))
        timer = self.peek.step(page_id, unit, step)
        for _ in range(40):  # the step after a reminder is armed just after it is sent
            if timer is not None:
                break
            await asyncio.sleep(0.25)
            timer = self.peek.step(page_id, unit, step)
        if timer is None or now() > timer.due_at - timedelta(seconds=SAFE):
            self.skipped.append(f"{handle} {action} {ref} ({kind})")
            return
        person = self.people[handle]
        words = self.rng(key + "/words")
        if action == "command":
            text = words.choice([f"!ack {ref}", f"!icc ack {ref}", f"/icc ack {ref}"])
            event_id = await person.send(room_id, text)
        elif action == "reply":
            text = words.choice(["ack", "ok", "reçu", "Ack."])
            relation = {"m.relates_to": {"m.in_reply_to": {"event_id": event["event_id"]}}}
            event_id = await person.send(room_id, f"> <{self.bot_id}> {ref}\n\n{text}", **relation)
        elif action == "reaction":
            text = words.choice(["✅", "👍"])
            event_id = await person.react(room_id, event["event_id"], text)
        else:
            text = f"!icc unable {ref} on another crisis call until noon"
            event_id = await person.send(room_id, text)
        self.sent.append(
            Sent(
                handle,
                "unable" if action == "unable" else "ack",
                action if action != "unable" else "command",
                ref,
                room_id,
                event_id,
                now(),
                covers=covers,
                late=kind == "reminder",
                text=text,
            )
        )

    def on_icc_event(self, handle: str, room_id: str, event: dict[str, Any]) -> None:
        if room_id != self.activation_room or event.get("sender") != self.bot_id:
            return
        if event.get("content", {}).get("msgtype") != "m.text":
            return
        found = PROMPT_RE.search(body(event))
        if found:
            self.spawn(self.report(handle, event, found.group(1), int(found.group(2))))

    async def report(self, handle: str, prompt: dict, rd: str, number: int) -> None:
        key = f"round/{rd}/{number}/{handle}"
        action = self.choose(key, UPDATE_ACTIONS)
        if action == "none":
            return
        await asyncio.sleep(self.rng(key + "/delay").uniform(0.5, 3.0))
        found = self.peek.run(int(rd.split("-")[1]), number)
        if found is None or found[0].started_at is None:
            self.skipped.append(f"{handle} update {rd} #{number} (no run row)")
            return
        run, series = found
        closes = run.started_at + timedelta(seconds=series.window_s)  # type: ignore[operator]
        if now() > closes - timedelta(seconds=SAFE_ROUND):
            self.skipped.append(f"{handle} update {rd} #{number}")
            return
        text = f"{handle} on {rd} #{number}: sandbags at {secrets.token_hex(2)}"
        ref = f"{rd} #{number}"
        if action == "command":
            sent = await self.send(
                handle, self.activation_room, f"!icc update {text}", what="update", ref=ref
            )
        else:
            thread = {
                "rel_type": "m.thread",
                "event_id": prompt["event_id"],
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": prompt["event_id"]},
            }
            sent = await self.send(
                handle,
                self.activation_room,
                text,
                what="update",
                how="thread",
                ref=ref,
                **{"m.relates_to": thread},
            )
        sent.text = text  # the report itself, as the summary must show it

    async def scenario(self) -> None:
        """What the cell does while the bot keeps dying: a schedule, pages, a round now."""
        rng = self.rng("scenario")
        room = self.activation_room
        await self.send(
            "lead",
            room,
            f'!icc round schedule every 1m --window {ROUND_WINDOW}s --agenda "Water; Power"',
            what="round schedule",
        )
        steps: list[tuple[str, str]] = [
            ("page", "Dyke breach near Visé: confirm your liaison officer"),
            ("page", "Evacuation of Maaseik: can you send high-capacity pumps?"),
            ("round now", ""),
            ("page", "Drinking water: report your stock of bottled water"),
        ]
        for what, text in steps:
            await asyncio.sleep(rng.uniform(2.0, 6.0))
            if what == "page":
                command = f"!icc page soak {text} --ack {ACK_WINDOW}s"
            else:
                command = f"!icc round now --window {ROUND_WINDOW}s --agenda Roads"
            await self.send("member", room, command, what=what)

    async def settle(self, timeout: float = 150) -> None:
        """Until nothing is pending in the bot and nobody is about to answer, twice in a row."""
        deadline = time.monotonic() + timeout
        calm = 0
        while calm < 2:
            if time.monotonic() > deadline:
                raise AssertionError("the bot did not settle")
            await asyncio.sleep(1.0)
            busy = any(not t.done() for t in self.tasks)
            calm = calm + 1 if not busy and self.peek.settled() else 0


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_random_sigkills_lose_no_ack_and_duplicate_no_page_or_round(
    bot_env: dict[str, str],
    cast: Cast,
    register: Callable[[str], Account],
    synapse: DevServer,
    tmp_path: Path,
) -> None:
    seed = int(os.environ.get("SOAK_SEED") or random.SystemRandom().randrange(1, 10**6))
    print(f"soak seed={seed} (replay with SOAK_SEED={seed})")
    began = time.monotonic()
    accounts = {handle: register(handle) for handle in [*PARTNERS, *BACKUPS]}
    config = Path(bot_env["ICC_CONFIG_DIR"]) / "directory.yaml"
    config.write_text(yaml.safe_dump(soak_directory(cast, accounts)))
    people: dict[str, Person] = {}
    peek = Peek(bot_env["ICC_DATABASE_URL"])
    soak = Soak(seed, bot_env, tmp_path / "bot.log", cast.bot.user_id, people, peek, "")
    actors: list[asyncio.Task[None]] = []
    try:
        for handle, account in [("lead", cast.lead), ("member", cast.member), *accounts.items()]:
            people[handle] = await Person.login(synapse.base_url, account.user_id, account.password)
        soak.start()
        await soak.wait_ready()
        ref, room = await activation_room(
            {"lead": people["lead"], "member": people["member"]}, cast, "Soak"
        )
        soak.activation_room = room

        actors = [asyncio.create_task(soak.actor(h, soak.on_partner_event)) for h in accounts]
        actors += [
            asyncio.create_task(soak.actor(h, soak.on_icc_event)) for h in ("lead", "member")
        ]
        churn = asyncio.create_task(soak.churn())
        await soak.scenario()
        await churn  # the bot is left running
        scheduled = await wait_for_schedule(peek)
        await soak.send("lead", room, f"!icc round cancel {scheduled.ref}", what="round cancel")
        await soak.settle()
        await soak.send("member", room, f"!icc pages {ref}", what="pages")
        await soak.settle()
        soak.stop.set()
        await asyncio.gather(*actors)

        await verify(soak, scheduled)
        verified = run_cli(bot_env, "logbook", "verify", ref)
        soak.check(verified.returncode == 0, f"logbook verify: {verified.stdout}{verified.stderr}")
        kills = ", ".join(
            f"{k.at:.1f}s {k.mode} up {k.uptime:.1f}s{'' if k.was_ready else ' (not ready)'}"
            for k in soak.kills
        )
        print(f"{len(soak.kills)} kills: {kills}; {time.monotonic() - began:.0f}s")
        print(f"sent: {[(s.who, s.what, s.how, s.ref, s.covers) for s in soak.sent]}")
        print(f"not sent (too close to a deadline): {soak.skipped}")
        assert not soak.problems, (
            f"soak seed={seed} (replay with SOAK_SEED={seed}); kills: {kills}; "
            f"the bot's log: {soak.log_path}\n" + "\n".join(soak.problems)
        )
    finally:
        soak.stop.set()
        for task in [*soak.tasks, *actors]:
            task.cancel()
        if soak.process is not None and soak.process.poll() is None:
            soak.process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(soak.process.wait, 20)
        for person in people.values():
            await person.close()
        peek.dispose()


async def wait_for_schedule(peek: Peek, timeout: float = 60) -> RoundSeriesRow:
    deadline = time.monotonic() + timeout
    while True:
        found = peek.all(RoundSeriesRow, col(RoundSeriesRow.cron).is_not(None))
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError("the round schedule was never recorded")
        await asyncio.sleep(0.5)


# -- the verdict ------------------------------------------------------------------------------------


def answered_once(soak: Soak, events: list[dict], sent: Sent) -> list[dict]:
    """The bot's answers to one event: replies to it, and reactions on it."""
    return [
        e
        for e in events
        if e.get("sender") == soak.bot_id
        and (
            replies_to(e) == sent.event_id
            or (
                (e.get("content", {}).get("m.relates_to") or {}).get("event_id") == sent.event_id
                and e.get("type") == "m.reaction"
            )
        )
    ]


def expect(soak: Soak, count: int, wanted: int | None, what: str) -> None:
    """`wanted` exactly, or (None) at most once: when the answer raced its deadline."""
    if wanted is None:
        soak.check(count <= 1, f"{what}: {count} times, at most once expected")
    else:
        soak.check(count == wanted, f"{what}: {count} times, {wanted} expected")


def by_key(items: list[Sent], **match: Any) -> Iterator[Sent]:
    return (s for s in items if all(getattr(s, k) == v for k, v in match.items()))


async def verify(soak: Soak, scheduled: RoundSeriesRow) -> None:
    peek, bot = soak.peek, soak.bot_id
    safe = timedelta(seconds=SAFE)
    room_events = await history(soak.people["lead"], soak.activation_room)
    bot_room = [e for e in room_events if e.get("sender") == bot]
    dm_events: dict[str, list[dict]] = {}
    dms = {r.matrix_id: r.room_id for r in peek.all(DmRoom)}
    for handle in [*PARTNERS, *BACKUPS]:
        person = soak.people[handle]
        rooms = set(person.client.rooms) | set(person.invites)
        histories = {r: await history(person, r) for r in sorted(rooms)}
        if person.user_id in dms:
            shown = {
                r: [body(e)[:60] for e in events if e.get("type") == "m.room.message"]
                for r, events in histories.items()
            }
            soak.check(
                rooms == {dms[person.user_id]},
                f"{handle} is in {len(rooms)} rooms of the bot, one DM room expected "
                f"({dms[person.user_id]}): {shown}",
            )
        dm_events[handle] = [e for events in histories.values() for e in events]
    everything = room_events + [e for events in dm_events.values() for e in events]
    errors = [body(e) for e in everything if e.get("sender") == bot and INTERNAL_ERROR in body(e)]
    soak.check(not errors, f"internal errors shown to people: {errors}")

    # Commands typed in the activation room: each answered once.
    answers = {"round schedule": 1, "round cancel": 1, "pages": 1, "page": 1, "round now": 0}
    for sent in (s for s in soak.sent if s.what in answers):
        replies = [
            e for e in answered_once(soak, room_events, sent) if "m.new_content" not in e["content"]
        ]
        expect(soak, len(replies), answers[sent.what], f"answers to `{sent.text}`")

    # Pages: per unit (a person paged and their backup), each step once, none after a timely ack.
    logbook = peek.all(LogEntryRow)
    pages = peek.all(PageRow, PageRow.kind == "page")
    soak.check(len(pages) == 3, f"{len(pages)} pages recorded, 3 sent")
    for page in pages:
        rows = peek.all(PageTargetRow, PageTargetRow.page_id == page.id)
        pg = page.ref
        logged = [e for e in logbook if e.data.get("page") == page.id]
        expect(soak, sum(e.kind == "system.page" for e in logged), 1, f"{pg} in the logbook")
        units = [r for r in rows if not r.covers]
        soak.check(
            {r.handle for r in units} == set(PARTNERS), f"{pg} sent to {[r.handle for r in units]}"
        )
        for row in units:
            backup = next((r for r in rows if r.covers == row.handle), None)
            mine = dm_events[row.handle]
            kinds = [page_kind(e, bot) for e in mine]
            expect(soak, kinds.count(("first", pg, "")), 1, f"{pg} to {row.handle}")
            answer = next(by_key(soak.sent, ref=pg, who=row.handle, covers=""), None)
            early = answer is not None and not answer.late
            timely = early and answer.at < row.deadline - safe  # type: ignore[union-attr]
            # escalated: True, False, or None when an answer raced the deadline (either is right)
            escalated: bool | None
            if answer is not None and answer.what == "unable":
                escalated, reminder = True, (0 if timely else None)  # a decline escalates at once
            elif early:
                escalated = False if timely else None
                reminder = 0 if timely else None
            else:  # no answer before the deadline: paged again, exactly once
                escalated, reminder = True, 1
            expect(
                soak, kinds.count(("reminder", pg, "")), reminder, f"{pg} reminder to {row.handle}"
            )
            backup_handle = PARTNERS[row.handle]
            if backup_handle is not None:
                got = [page_kind(e, bot) for e in dm_events[backup_handle]]
                wanted = None if escalated is None else int(escalated)
                expect(
                    soak,
                    got.count(("backup", pg, row.handle)),
                    wanted,
                    f"{pg} to {backup_handle} as the backup of {row.handle}",
                )
                if escalated is False:
                    soak.check(backup is None, f"{pg}: a backup row for {row.handle}'s unit")
            escalations = sum(
                e.kind == "system.escalation" and e.data.get("handle") == row.handle for e in logged
            )
            expect(soak, escalations, None, f"{pg} escalation of {row.handle} in the logbook")
            # The unreachable report: unless the unit answered in time for its last step.
            step = peek.step(page.id, row.handle, "unreachable")
            unit_answers = [
                s
                for s in soak.sent
                if s.ref == pg
                and s.what == "ack"
                and ((s.who == row.handle and s.late) or s.covers == row.handle)
            ]
            unreachable: int | None
            if escalated is False:
                unreachable = 0
            elif step is None:
                unreachable = 0
                soak.check(escalated is None, f"{pg}: no unreachable step for {row.handle}")
            elif any(s.at < step.due_at - safe for s in unit_answers):
                unreachable = 0
            elif unit_answers or escalated is None:
                unreachable = None
            else:
                unreachable = 1
            # A unit whose person declined is reported as untaken, not as unreachable.
            declined = answer is not None and answer.what == "unable"
            name = row.handle.upper()
            report = f"{pg}: {name} (" if declined else f"{pg}: could not reach {name} ("
            told = [
                e
                for e in bot_room
                if report in body(e) and (not declined or "is unable to act on it" in body(e))
            ]
            expect(soak, len(told), unreachable, f"{pg} unreachable report for {row.handle}")
            logged_told = sum(
                e.kind == "system.unreachable" and row.handle in e.data.get("handles", [])
                for e in logged
            )
            expect(soak, logged_told, unreachable, f"{pg} {row.handle} unreachable in the logbook")
        # Nobody else heard of this page.
        for handle, events in dm_events.items():
            if handle not in {r.handle for r in rows}:
                stray = [k for e in events if (k := page_kind(e, bot)) and k[1] == pg]
                soak.check(not stray, f"{pg} reached {handle}, who is not on it: {stray}")
        # The board, as edited last, agrees with the database.
        answered = sum(
            1 for r in units if r.acked_at or any(b.acked_at for b in rows if b.covers == r.handle)
        )
        boards = [
            new_text(e)
            for e in room_events
            if e.get("sender") == bot
            and (
                e["event_id"] == page.board_event_id
                or (e["content"].get("m.relates_to") or {}).get("event_id") == page.board_event_id
            )
        ]
        final = boards[-1] if boards else ""
        soak.check(
            f"{pg} · {answered}/{len(units)} acknowledged" in final,
            f"{pg} board says {final.splitlines()[:1]}, {answered}/{len(units)} expected",
        )

    # Every answer sent was recorded, as sent, and answered once.
    for sent in (s for s in soak.sent if s.what in ("ack", "unable")):
        page_id = int(sent.ref.split("-")[1])
        row = peek.target(page_id, sent.who, sent.covers)
        what = f"{sent.who}'s {sent.what} of {sent.ref} by {sent.how}"
        if row is None:
            soak.check(False, f"{what}: no row")
            continue
        if sent.what == "ack":
            soak.check(
                (row.ack_event_id, row.ack_how) == (sent.event_id, sent.how),
                f"{what} not recorded: {row.ack_event_id, row.ack_how, row.acked_at}",
            )
            wording = f"Acknowledged {sent.ref} at"
        else:
            soak.check(row.declined_at is not None, f"{what} not recorded")
            wording = f"Noted: you are unable to act on {sent.ref}"
        replies = answered_once(soak, dm_events[sent.who], sent)
        expect(soak, len(replies), 1, f"answers to {what}")
        soak.check(
            all(wording in body(e) for e in replies),
            f"{what} answered {[body(e) for e in replies]}",
        )
        acks = sum(
            e.kind == "system.ack"
            and e.data.get("page") == page_id
            and e.data.get("handle") == sent.who
            for e in logbook
        )
        expect(soak, acks, 1 if sent.what == "ack" else 0, f"{what} in the logbook")
        declines = sum(
            e.kind == "system.unable"
            and e.data.get("page") == page_id
            and e.data.get("handle") == sent.who
            for e in logbook
        )
        expect(soak, declines, 1 if sent.what == "unable" else 0, f"{what} declines in the logbook")
    # The `pages` listing shows who acknowledged.
    listing = next(
        (
            body(e)
            for s in by_key(soak.sent, what="pages")
            for e in answered_once(soak, room_events, s)
        ),
        "",
    )
    sections = {
        m.group(1): m.group(0) for m in re.finditer(r"(PG-\d+) · sent[^\n]*(\n .*)*", listing)
    }
    for row in peek.all(PageTargetRow, col(PageTargetRow.covers) == ""):
        if row.acked_at is not None:
            soak.check(
                f"✅ {row.name} (" in sections.get(f"PG-{row.page_id}", ""),
                f"`pages` does not show PG-{row.page_id} acknowledged by {row.name}: {listing}",
            )

    # Rounds: each run's prompt once, its reminder and summary at most once, no run lost.
    runs = peek.all(RoundRunRow)
    all_series = {s.id: s for s in peek.all(RoundSeriesRow)}
    soak.check(len(all_series) == 2, f"{len(all_series)} round series, 2 expected")
    for run in runs:
        series = all_series[run.series_id]
        label = f"{series.ref} #{run.number}"
        prompts = [
            e
            for e in bot_room
            if (m := PROMPT_RE.search(body(e)))
            and (m.group(1), int(m.group(2))) == (series.ref, run.number)
        ]
        missed = [e for e in bot_room if f"{label}, due" in body(e) and "was missed" in body(e)]
        reminders = [e for e in bot_room if f"{label}: halfway" in body(e)]
        summaries = [e for e in bot_room if f"{label} closed" in body(e)]
        reports = peek.all(RoundReportRow, RoundReportRow.run_id == run.id)
        if run.status == "missed":
            expect(soak, len(prompts), 0, f"{label} (missed) prompts")
            expect(soak, len(missed), 1, f"{label} missed notices")
            continue
        expect(soak, len(prompts), 1, f"{label} prompts")
        expect(soak, len(missed), 0, f"{label} missed notices")
        soak.check(run.status == "closed", f"{label} is {run.status} at the end")
        soak.check(
            [e["event_id"] for e in prompts] == [run.prompt_event_id],
            f"{label}: the recorded prompt is not the one posted",
        )
        reported = {r.matrix_id for r in reports}
        silent = [p for p in run.participants if p["matrix_id"] not in reported]
        # Someone never reported: reminded once, if the reminder's step ran before the run
        # closed (down across both, the bot closes the run and reminds nobody after the end).
        remind = peek.all(Timer, col(Timer.key).endswith(f"rd{series.id}:{run.id}:remind"))
        in_time = bool(
            remind
            and remind[0].completed_at
            and run.closed_at
            and remind[0].completed_at < run.closed_at
        )
        expect(soak, len(reminders), 1 if silent and in_time else None, f"{label} reminders")
        expect(soak, len(summaries), 1, f"{label} summaries")
        starts = sum(
            e.kind == "system.round_start" and e.data.get("run") == run.id for e in logbook
        )
        expect(soak, starts, 1, f"{label} start in the logbook")
        closes = sum(
            e.kind == "system.round_summary" and e.data.get("run") == run.id for e in logbook
        )
        expect(soak, closes, 1, f"{label} summary in the logbook")
    # Every update sent was recorded once: a thread reply in its run, a command in the room's
    # newest open run (two may be open at once), as its answer and that run's summary say.
    labels = {r.id: f"{all_series[r.series_id].ref} #{r.number}" for r in runs}
    for update in by_key(soak.sent, what="update"):
        what = f"{update.who}'s update to {update.ref} by {update.how}"
        recorded = peek.all(RoundReportRow, RoundReportRow.event_id == update.event_id)
        if [r.text for r in recorded] != [update.text]:
            soak.check(False, f"{what} not recorded: {[(r.run_id, r.text) for r in recorded]}")
            continue
        label = labels[recorded[0].run_id]
        if update.how == "thread":
            soak.check(label == update.ref, f"{what} recorded in {label}")
        summaries = [e for e in bot_room if f"{label} closed" in body(e)]
        soak.check(
            any(update.text in body(e) for e in summaries),
            f"{what} missing from the summary of {label}",
        )
        answers_ = answered_once(soak, room_events, update)
        expect(soak, len(answers_), 1, f"answers to {what}")
        if update.how == "command":
            soak.check(
                all(f"Recorded for {label}." in body(e) for e in answers_),
                f"{what} answered {[body(e) for e in answers_]}",
            )
    for match in (PROMPT_RE.search(body(e)) for e in bot_room):
        if match and not any(
            all_series[r.series_id].ref == match.group(1) and r.number == int(match.group(2))
            for r in runs
        ):
            soak.check(False, f"a prompt for {match.group(0)}, which has no run")
    # The schedule: one run per minute from its creation to its cancellation, none skipped.
    series = all_series[scheduled.id]
    slots = sorted(r.scheduled_for for r in runs if r.series_id == series.id)
    numbers = sorted(r.number for r in runs if r.series_id == series.id)
    soak.check(numbers == list(range(1, len(numbers) + 1)), f"{series.ref} runs {numbers}")
    assert series.cancelled_at is not None
    minute = series.created_at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    expected = []
    while minute <= series.cancelled_at - timedelta(seconds=5):
        expected.append(minute)
        minute += timedelta(minutes=1)
    soak.check(
        slots[: len(expected)] == expected and len(slots) <= len(expected) + 1,
        f"{series.ref} ran at {slots}, expected {expected}",
    )


# -- what the soak found, pinned down -------------------------------------------------------------


@pytest.mark.parametrize("step", ["page", "reminder"])
async def test_an_ack_to_a_page_sent_just_before_a_crash_counts(
    step: str,
    paging_env: dict[str, str],
    people: dict[str, Person],
    cast: Cast,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The page (or its reminder) left, the bot died before recording its event, the partner
    reacted ✅ while it was down: after the restart, the reaction is read side by side with the
    re-run that records the event, and must count as the ack all the same."""
    recorded = "event_id" if step == "page" else "repage_event_id"
    crash = CrashPoint(
        monkeypatch,
        page_store,
        "mark_many",
        lambda _session, updates: any(recorded in fields for fields in updates.values()),
    )
    running = RunningBot(load_settings(paging_env))
    await running.start()
    try:
        _ref, room = await activation_room(people, cast)
        partner = people["partner"]
        window = "60s" if step == "page" else "2s"
        await people["member"].send(room, f"!icc page partner Pumps in Liège? --ack {window}")
        dm, page = await page_received(partner, cast, "Pumps in Liège?")
        if step == "reminder":
            page = await partner.wait_for(
                dm, lambda e: "RAPPEL" in body(e), sender=cast.bot.user_id
            )  # the partner reads French
        await crash.wait()
        await running.stop()
        crash.restore()
        reaction = await partner.react(dm, page["event_id"], "✅")
        await running.start()
        answer = await partner.wait_for(
            dm, lambda e: replies_to(e) == reaction, sender=cast.bot.user_id, timeout=30
        )
        assert "Accusé de réception de PG-1 enregistré" in body(answer)
        async with running.app.services.db.session() as session:  # type: ignore[union-attr]
            row = (
                await session.exec(select(PageTargetRow).where(PageTargetRow.covers == ""))
            ).one()
        assert (row.ack_how, row.ack_event_id) == ("reaction", reaction)
    finally:
        await running.stop()


async def test_a_thread_reply_to_a_prompt_posted_just_before_a_crash_counts(
    paging_env: dict[str, str],
    people: dict[str, Person],
    cast: Cast,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The round's prompt was posted, the bot died before recording its event, a participant
    replied in its thread while it was down: after the restart, the reply is read side by side
    with the run's restart that records the prompt, and must count as their report."""
    crash = CrashPoint(
        monkeypatch, round_store, "set_run", lambda *_, **fields: "prompt_event_id" in fields
    )
    running = RunningBot(load_settings(paging_env))
    await running.start()
    try:
        _ref, room = await activation_room(people, cast)
        member, bot = people["member"], cast.bot.user_id
        await member.send(room, "!icc round now --with member --window 60s")
        prompt = await member.wait_for(room, lambda e: "COORDINATION ROUND" in body(e), sender=bot)
        await crash.wait()
        await running.stop()
        crash.restore()
        thread = {
            "rel_type": "m.thread",
            "event_id": prompt["event_id"],
            "is_falling_back": True,
            "m.in_reply_to": {"event_id": prompt["event_id"]},
        }
        reply = await member.send(room, "Roads: N4 closed at Namur", **{"m.relates_to": thread})
        await running.start()
        await member.wait_for(
            room,
            lambda e: (
                e.get("type") == "m.reaction" and e["content"]["m.relates_to"]["event_id"] == reply
            ),
            sender=bot,
            timeout=30,
        )
        async with running.app.services.db.session() as session:  # type: ignore[union-attr]
            reports = (await session.exec(select(RoundReportRow))).all()
        assert [(r.event_id, r.text, r.via) for r in reports] == [
            (reply, "Roads: N4 closed at Namur", "thread")
        ]
    finally:
        await running.stop()


async def test_a_dm_room_created_just_before_a_crash_is_the_one_reused(
    paging_env: dict[str, str],
    people: dict[str, Person],
    cast: Cast,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bot created a partner's DM room and died before recording it: after the restart,
    the page goes to that room, and the partner is never invited to a second one."""
    crash = CrashPoint(monkeypatch, page_store, "save_dm_room")
    running = RunningBot(load_settings(paging_env))
    await running.start()
    try:
        _ref, room = await activation_room(people, cast)
        partner = people["partner"]
        await partner.sync(timeout_ms=0)
        before = set(partner.client.rooms) | partner.invites
        await people["member"].send(room, "!icc page partner Pumps in Liège? --ack 60s")
        await crash.wait()
        await running.stop()
        crash.restore()
        await running.start()
        dm, _page = await page_received(partner, cast, "Pumps in Liège?")
        await partner.quiet_period(2)
        assert (set(partner.client.rooms) | partner.invites) - before == {dm}
    finally:
        await running.stop()

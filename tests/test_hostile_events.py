"""No event can stop the sync loop (issue 16).

Event content is whatever JSON the sender's client (or anyone's script) put there: the homeserver
checks almost nothing inside it. One stranger's `{"msgtype": "m.text", "body": "hello",
"m.relates_to": "boom"}` in any room the bot was in once made `icc-bot` exit, and every restart
exited again, because the sync position never passed the event. Here such events reach the bot,
first the ones that were found, then generated ones of any JSON shape in every field the bot
reads; after each, a plain `!icc help` must still be answered, which is only possible once the
sync loop has moved past them.

The generated events run twice. In the fast tier, the real sync loop reads them from a scripted
homeserver (tests/support/homeserver.py) through nio, in front of the bot's real services with
what they send recorded (tests/support/desk.py): many examples, every shape. Through Synapse,
real clients send a smaller sample, delivered as the homeserver delivers them. The found events
and the restarts that met them again are tried through Synapse only. Each bot serves all of its
examples from a background event loop (tests/support/background.py), so that each Hypothesis
example is a plain function calling into it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, assume, example, given, settings
from hypothesis import strategies as st
from nio import RoomSendError
from sqlmodel import col, select

from bot.app import App
from bot.devserver import DevServer
from bot.matrix.sync import SyncLoop
from bot.runtime.tasks import TaskSupervisor
from bot.settings import load_settings
from bot.storage import core
from bot.storage.models import InboxEvent
from tests.support.background import ErrorLog, OnBackground, serving
from tests.support.bots import RunningBot, make_bot_env
from tests.support.cast import Cast, desk_cast, new_cast, people_of
from tests.support.databases import BACKENDS, fresh_database
from tests.support.desk import Desk, OnDesk
from tests.support.homeserver import ScriptedClient, echoed
from tests.support.matrix_people import Person, body

# The two contents of the issue: a relation that is a string, a reply to a string.
RELATION_IS_A_STRING = {"msgtype": "m.text", "body": "hello", "m.relates_to": "boom"}
REPLY_TO_A_STRING = {"msgtype": "m.text", "body": "hello", "m.relates_to": {"m.in_reply_to": "x"}}
HELP_ANSWER = "!icc help [<command>]"


def bot_joined(bot_id: str):  # type: ignore[no-untyped-def]
    """A check for the event of the bot joining."""

    def check(event: dict[str, Any]) -> bool:
        return (
            event.get("type") == "m.room.member"
            and event.get("state_key") == bot_id
            and event.get("content", {}).get("membership") == "join"
        )

    return check


async def room_with_the_bot(lead: Person, others: list[Person], bot_id: str) -> str:
    """A room made by the lead (so not one of the bot's own), with the bot and `others` in it."""
    room_id = await lead.create_room(invite=[bot_id, *(p.user_id for p in others)])
    for person in others:
        await person.join(room_id)
    await lead.wait_for(room_id, bot_joined(bot_id))
    return room_id


async def send_raw(person: Person, room_id: str, event_type: str, content: Any) -> str:
    """`content` exactly as given, in an unencrypted room: nothing checks or completes it."""
    response = await person.client.room_send(room_id, event_type, content)
    if isinstance(response, RoomSendError):
        raise RuntimeError(f"send: {response.status_code} {response.message}")
    return response.event_id


async def answers_help(person: Person, room_id: str, running: RunningBot, bot_id: str) -> None:
    reply = await person.ask(room_id, "!icc help", bot_id)
    assert HELP_ANSWER in body(reply), body(reply)
    assert running._task is not None
    assert not running._task.done(), "the bot's run ended"


# -- the events that were found ---------------------------------------------------------------


@pytest.mark.synapse
async def test_a_strangers_relation_that_is_a_string_does_not_stop_the_bot(
    bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    """The event of the issue: anyone in any room of the bot's could stop it with one message."""
    room_id = await room_with_the_bot(
        people["lead"], [people["member"], people["stranger"]], cast.bot.user_id
    )
    await send_raw(people["stranger"], room_id, "m.room.message", RELATION_IS_A_STRING)
    await answers_help(people["member"], room_id, bot, cast.bot.user_id)


@pytest.mark.synapse
async def test_a_partners_reply_to_a_string_does_not_stop_the_bot(
    bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    """A directory member's reply is read as a possible answer to a page or a request, so its
    `m.in_reply_to` is read further than a stranger's: a string there must read as no reply."""
    room_id = await room_with_the_bot(
        people["lead"], [people["member"], people["partner"]], cast.bot.user_id
    )
    await send_raw(people["partner"], room_id, "m.room.message", REPLY_TO_A_STRING)
    await answers_help(people["member"], room_id, bot, cast.bot.user_id)


@pytest.mark.synapse
@pytest.mark.parametrize(
    ("sender", "content"),
    [("stranger", RELATION_IS_A_STRING), ("partner", REPLY_TO_A_STRING)],
    ids=["relation-is-a-string", "reply-to-a-string"],
)
async def test_a_restart_does_not_meet_the_malformed_event_again(
    bot: RunningBot, people: dict[str, Person], cast: Cast, sender: str, content: dict[str, Any]
) -> None:
    """Before the fix every restart exited again: the stored sync position stayed before the
    event. One such event arrives while the bot runs and one while it is down (so that the
    catch-up sync of the next start carries it); the restarted bot answers."""
    room_id = await room_with_the_bot(
        people["lead"], [people["member"], people[sender]], cast.bot.user_id
    )
    await send_raw(people[sender], room_id, "m.room.message", content)
    await answers_help(people["member"], room_id, bot, cast.bot.user_id)
    await bot.stop()
    await send_raw(people[sender], room_id, "m.room.message", content)
    await bot.start()
    await answers_help(people["member"], room_id, bot, cast.bot.user_id)
    await bot.stop()
    await bot.start()
    await answers_help(people["member"], room_id, bot, cast.bot.user_id)


# -- generated events ---------------------------------------------------------------------------

# Placeholders for real event IDs, filled in when sent: a relation to a real message of the bot's
# or of the lead's reaches further into the bot (an ack, an answer, an edit) than one to nothing,
# and a redaction of the sender's own last event (perhaps a ✅) further than one of another's.
BOT_ANSWER, LEAD_COMMAND, OWN_LAST = "⟨bot answer⟩", "⟨lead command⟩", "⟨own last⟩"
COMMANDS = [
    "!icc help",
    "!icc help page",
    "!icc hlep",
    "!icc",
    "!icc\nhelp",
    "/icc help",
    "!ack",
    "!icc ack",
    "!icc ack PG-1",
    "!icc status",
    "!icc contacts",
    "!icc pages",
    "!icc rounds",
    "!icc input RQ-1 we advise closing the river",
    "!icc unable PG-1 on another call",
    "!icc update two shelters open",
]
FALLBACKS = [
    "> <@someone:localhost> !icc help\n\n!icc help",
    "> <@someone:localhost> hello\n>\n\nack",
    ">\n\n!icc help",
    "> !icc help",
    "> quoted\n",
    ">",
]
TEXTS = [*COMMANDS, *FALLBACKS, "", " ", "ok", "✅", "\x00", "a\x00b", "\u202e", BOT_ANSWER]

MAX_INT = 2**53 - 1  # canonical JSON: no floats, no integer beyond ±(2**53 - 1)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-MAX_INT, MAX_INT),
    st.text(max_size=12),
    st.sampled_from(TEXTS),
)
keys = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["event_id", "rel_type", "key", "m.in_reply_to", "body", "msgtype"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)
texts = st.one_of(st.sampled_from(TEXTS), st.sampled_from(TEXTS), st.text(max_size=40))
msgtypes = st.sampled_from(["m.text", "m.text", "m.text", "m.notice", "m.emote", ""])
# Synapse refuses a relation (rel_type and event_id) to an event it does not know: such IDs are
# rare, and mostly a relation points at a real message of the bot's or the lead's.
event_ids = st.one_of(
    st.sampled_from([BOT_ANSWER, LEAD_COMMAND, OWN_LAST]),
    st.sampled_from([BOT_ANSWER, LEAD_COMMAND, OWN_LAST, "$nowhere:localhost", "", "x"]),
    json_values,
)
rel_types = st.one_of(
    st.sampled_from(["m.thread", "m.annotation", "m.replace", "m.reference", "org.example.x"]),
    json_values,
)
reaction_keys = st.one_of(
    st.sampled_from(["✅", "👍", "👍🏽", "✔️", "☑", "❤️", "", "✅✅"]), json_values
)
in_reply_to = st.one_of(st.fixed_dictionaries({"event_id": event_ids}), json_values)
# Relations as clients send them (a reply, a thread, an edit, a reaction) with any part of any
# type, loose dictionaries of the same keys, and anything at all.
relations = st.one_of(
    st.fixed_dictionaries({"m.in_reply_to": in_reply_to}),
    st.fixed_dictionaries(
        {"rel_type": st.just("m.thread"), "event_id": event_ids},
        optional={"m.in_reply_to": in_reply_to, "is_falling_back": json_values},
    ),
    st.fixed_dictionaries({"rel_type": st.just("m.replace"), "event_id": event_ids}),
    st.fixed_dictionaries(
        {"rel_type": st.just("m.annotation"), "event_id": event_ids, "key": reaction_keys}
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "rel_type": rel_types,
            "event_id": event_ids,
            "m.in_reply_to": in_reply_to,
            "key": reaction_keys,
            "is_falling_back": json_values,
        },
    ),
    json_values,
)
optional_message_fields = {
    "m.relates_to": relations,
    "m.new_content": st.one_of(
        st.fixed_dictionaries({"msgtype": msgtypes, "body": texts}),
        st.fixed_dictionaries({}, optional={"msgtype": json_values, "body": json_values}),
        json_values,
    ),
    "format": st.one_of(st.just("org.matrix.custom.html"), json_values),
    "formatted_body": st.one_of(st.sampled_from(["<b>!icc help</b>", "<mx-reply>"]), json_values),
}
# Synapse itself refuses a message without a msgtype and a body, or whose msgtype or body is not
# a string ("'body' not a string type"): most messages have both, so that they reach the bot.
message_contents = st.one_of(
    st.fixed_dictionaries(  # an edit, as clients send one
        {
            "msgtype": msgtypes,
            "body": texts.map(lambda text: f"* {text}"),
            "m.new_content": optional_message_fields["m.new_content"],
            "m.relates_to": st.fixed_dictionaries(
                {"rel_type": st.just("m.replace"), "event_id": event_ids}
            ),
        }
    ),
    st.fixed_dictionaries({"msgtype": msgtypes, "body": texts}, optional=optional_message_fields),
    st.fixed_dictionaries({"msgtype": msgtypes, "body": texts}, optional=optional_message_fields),
    st.fixed_dictionaries({"msgtype": msgtypes, "body": texts}, optional=optional_message_fields),
    st.fixed_dictionaries(
        {"msgtype": st.one_of(msgtypes, json_values), "body": st.one_of(texts, json_values)},
        optional=optional_message_fields,
    ),
)
reaction_contents = st.one_of(
    st.fixed_dictionaries({"m.relates_to": relations}),
    st.fixed_dictionaries(
        {},
        optional={"m.relates_to": relations, "key": reaction_keys, "body": json_values},
    ),
)
# An encrypted event in a room that is not encrypted: the bot cannot read it, says so, and asks
# the sender's devices for the key, reading the algorithm, sender key, device and session.
encrypted_contents = st.fixed_dictionaries(
    {"algorithm": st.one_of(st.just("m.megolm.v1.aes-sha2"), json_values)},
    optional={
        "ciphertext": st.one_of(st.just("AwgAEnAc"), json_values),
        "sender_key": st.one_of(st.just("c2VuZGVyIGtleQ"), json_values),
        "device_id": st.one_of(st.just("DEVICE"), json_values),
        "session_id": st.one_of(st.sampled_from(["s1", "s2"]), json_values),
        "m.relates_to": relations,
    },
)
# A redaction (perhaps of an ack): Synapse takes the redacted event's ID in the content too, and
# refuses one that is not a string, names no event it knows or another's event (but the lead's):
# mostly the sender's own last event, then.
redaction_contents = st.fixed_dictionaries(
    {"redacts": st.one_of(st.just(OWN_LAST), st.just(OWN_LAST), event_ids)},
    optional={"reason": json_values, "m.relates_to": relations, "body": json_values},
)
# From a directory member (read as a possible command, reply or acknowledgement) or a stranger.
senders = st.sampled_from(["lead", "partner", "partner", "stranger"])
events = st.one_of(
    st.tuples(senders, st.just("m.room.message"), message_contents),
    st.tuples(senders, st.just("m.room.message"), message_contents),
    st.tuples(senders, st.just("m.reaction"), reaction_contents),
    st.tuples(senders, st.just("m.room.encrypted"), encrypted_contents),
    st.tuples(senders, st.just("m.room.redaction"), redaction_contents),
)
batches = st.lists(events, min_size=1, max_size=6)


def filled(value: Any, ids: dict[str, str]) -> Any:
    """`value` with every placeholder string replaced by the real event ID."""
    if isinstance(value, str):
        return ids.get(value, value)
    if isinstance(value, list):
        return [filled(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: filled(v, ids) for k, v in value.items()}
    return value


# -- the fast tier: the real sync loop, fed by a scripted homeserver --------------------------------


class SyncedDesk(OnDesk):
    """The bot's services (a desk) behind the real sync loop, which a scripted homeserver feeds
    (tests/support/homeserver.py), in a room of the lead's with a partner and a stranger; on a
    background loop. Every event comes as given: nothing refuses it on the way, as Synapse
    refuses some; nio reads it as it reads Synapse's."""

    def __init__(self, directory: Path, database_url: str) -> None:
        self.directory, self.database_url = directory, database_url
        self.cast = desk_cast()
        self.errors = ErrorLog()
        self.tasks = TaskSupervisor()
        self.ids: dict[str, str] = {}
        self.last: dict[str, str] = {}  # each sender's last event
        self.sent = 0
        self._client: ScriptedClient | None = None
        self._loop: asyncio.Task[None] | None = None
        self._echoed = 0  # the bot's events already served back to it

    @property
    def client(self) -> ScriptedClient:
        assert self._client is not None
        return self._client

    async def start(self) -> None:
        self._desk = desk = await Desk.open(
            self.directory,
            self.database_url,
            people_of(self.cast),
            self.cast.directory(),
            env={"ICC_RATE_LIMIT": "1000000/1m"},
        )
        members = [self.cast.lead.user_id, self.cast.partner.user_id, self.cast.stranger.user_id]
        room_id = desk.messenger.add_room(members=members)
        self._client = ScriptedClient(desk.settings.user_id, room_id, members)
        runner = desk.runner

        def dispatch(items: list[InboxEvent]) -> None:  # as bot.app does
            for item in items:
                self.tasks.spawn(f"cmd:{item.event_id}", runner.run(item), lane=item.room_id)

        async def on_ready() -> None:
            async with desk.services.db.session() as session:
                dispatch(await core.pending_inbox(session))

        async def on_invite(room_id: str, inviter: str) -> None:
            raise AssertionError(f"an invite to {room_id} from {inviter}")

        sync = SyncLoop(
            self.client,
            desk.services.db,
            wants=runner.wants,
            dispatch=dispatch,
            on_invite=on_invite,
            on_ready=on_ready,
            on_undecryptable=runner.notify_undecryptable,
            on_room_created=desk.messenger.note_creator,
            key_wait=timedelta(0),  # no key will come: reported at once
            timeout_ms=0,
            backoff=(0.01, 0.05),
        )
        self._loop = asyncio.create_task(sync.run(), name="sync")
        await self.client.deliver([], self._loop)  # the first sync: history, never run
        self.errors.attach()
        await self.still_answers("set-up")

    async def stop(self) -> None:
        self.errors.detach()
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
        await self.tasks.drain(10)
        if self._client is not None:
            await self._client.close()
        if self._desk is not None:
            await self._desk.close()

    async def _serve(self, events: list[dict[str, Any]]) -> None:
        """One batch, with the bot's own events since the last one in front (as a homeserver
        serves them back); back once every command of it was handled."""
        assert self._loop is not None
        recorded = self.desk.messenger.recorded
        echoes = echoed(self.client, recorded[self._echoed :])
        self._echoed = len(recorded)
        await self.client.deliver(echoes + events, self._loop)
        await self.tasks.drain(60)

    async def feed(self, batch: list[tuple[str, str, Any]]) -> int:
        events = []
        for sender, event_type, content in batch:
            ids = self.ids | {OWN_LAST: self.last.get(sender, "")}
            content = filled(content, ids)
            top = {}
            if event_type == "m.room.redaction" and isinstance(content, dict):
                redacts = content.get("redacts")
                if isinstance(redacts, str):
                    top["redacts"] = redacts  # where room versions before 11 have it
            event = self.client.event(event_type, self.desk.who(sender), content, **top)
            self.last[sender] = event["event_id"]
            events.append(event)
        await self._serve(events)
        self.sent += len(events)
        return len(events)

    async def still_answers(self, context: str) -> None:
        """The lead's `!icc help` is answered, so the sync loop runs and moved past all that came
        before; the answer and the command become the next examples' relation targets."""
        errors = len(self.errors.records)
        lead = self.cast.lead.user_id
        command = self.client.event(
            "m.room.message", lead, {"msgtype": "m.text", "body": "!icc help"}
        )
        mark = len(self.desk.messenger.recorded)
        await self._serve([command])
        replies = [
            r for r in self.desk.messenger.recorded[mark:] if r.reply_to == command["event_id"]
        ]
        logged = "\n".join(self.errors.since(errors))
        assert len(replies) == 1, f"help answered {len(replies)} times after {context}\n{logged}"
        assert HELP_ANSWER in replies[0].body, f"{replies[0].body}\n{context}"
        assert replies[0].event_id is not None
        self.ids = {BOT_ANSWER: replies[0].event_id, LEAD_COMMAND: command["event_id"]}
        self.last["lead"] = command["event_id"]

    async def pending(self) -> list[InboxEvent]:
        async with self.desk.services.db.session() as session:
            return list(
                (
                    await session.exec(
                        select(InboxEvent).where(col(InboxEvent.status) == "pending")
                    )
                ).all()
            )


@pytest.fixture(scope="module", params=BACKENDS)
def synced_desk(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SyncedDesk]:
    """One per database backend: an event's content is written to the inbox as JSON, and a
    batch that cannot be written is fetched again and again."""
    directory = tmp_path_factory.mktemp(f"hostile-fast-{request.param}")
    with fresh_database(request.param, directory) as url:
        world = SyncedDesk(directory, url)
        with serving(world.start, world.stop) as background:
            world.background = background
            yield world


FAST_EXAMPLES = 50


def hostile_batches(examples: int) -> Callable[[Callable[..., None]], Callable[[], None]]:
    """`examples` batches of hostile events for a test taking `batch`, after the two that once
    broke the bot; derandomized, no example database, no shrinking (see each test)."""

    def given_batches(test: Callable[..., None]) -> Callable[[], None]:
        test = example(batch=[("partner", "m.room.message", REPLY_TO_A_STRING)])(test)
        test = example(batch=[("stranger", "m.room.message", RELATION_IS_A_STRING)])(test)
        return settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )(given(batch=batches)(test))

    return given_batches


def test_no_event_content_stops_the_sync_loop_or_the_commands(synced_desk: SyncedDesk) -> None:
    """Whatever JSON a member or a stranger puts in any field the bot reads (a message's msgtype,
    body, relation and its parts, an edit's new content, the format; a reaction's relation and
    key; an encrypted event's algorithm, keys and session; what a redaction redacts), read by
    nio as from a homeserver, the sync loop keeps running and passes the event, the next
    command is answered and no event is left pending in the inbox. Nothing is refused on the
    way (Synapse refuses some of these), so more shapes reach the bot here than through Synapse."""

    @hostile_batches(FAST_EXAMPLES)
    def fed(batch: list[tuple[str, str, Any]]) -> None:
        synced_desk.call(synced_desk.feed(batch))
        synced_desk.call(synced_desk.still_answers(f"the batch {batch!r}"))

    fed()
    left = synced_desk.call(synced_desk.pending())
    assert not left, [(row.event_id, row.sender, row.content) for row in left]


# -- through Synapse --------------------------------------------------------------------------------

SYNAPSE_EXAMPLES = 12  # the shapes Synapse lets through, as it delivers them; the rest: above


class World(OnBackground):
    """The running bot and a room of the lead's it shares with a partner and a stranger, on a
    background event loop."""

    timeout = 120

    def __init__(self, synapse: DevServer, cast: Cast, env: dict[str, str]) -> None:
        self.synapse, self.cast, self.env = synapse, cast, env
        self.people: dict[str, Person] = {}
        self.running = RunningBot(load_settings(env | {"ICC_RATE_LIMIT": "1000000/1m"}))
        self.room_id = ""
        self.ids: dict[str, str] = {}
        self.last: dict[str, str] = {}  # each sender's last event
        self.errors = ErrorLog()
        self.sent = self.refused = 0

    @property
    def app(self) -> App:
        assert self.running.app is not None
        return self.running.app

    async def start(self) -> None:
        for role in ("lead", "partner", "stranger"):
            account = getattr(self.cast, role)
            self.people[role] = await Person.login(
                self.synapse.base_url, account.user_id, account.password
            )
        await self.running.start()
        self.errors.attach()
        lead = self.people["lead"]
        others = [self.people["partner"], self.people["stranger"]]
        self.room_id = await room_with_the_bot(lead, others, self.cast.bot.user_id)
        await self.still_answers("set-up")

    async def stop(self) -> None:
        self.errors.detach()
        await self.running.stop()
        for person in self.people.values():
            await person.close()

    async def feed(self, batch: list[tuple[str, str, Any]]) -> int:
        """Send the batch as is; returns how many events the homeserver took. (Synapse refuses
        some contents outright, e.g. a relation it checks itself: those never reach the bot.)"""
        taken = 0
        for sender, event_type, content in batch:
            ids = self.ids | {OWN_LAST: self.last.get(sender, "")}
            response = await self.people[sender].client.room_send(
                self.room_id, event_type, filled(content, ids)
            )
            if isinstance(response, RoomSendError):
                assert response.status_code is not None, response  # an answer, not a failure
                self.refused += 1
                continue
            self.last[sender] = response.event_id
            taken += 1
        self.sent += taken
        return taken

    async def still_answers(self, context: str) -> None:
        """The lead's `!icc help` is answered, so the bot runs and its sync moved past all that
        came before; the answer and the command become the next examples' relation targets."""
        lead, bot_id = self.people["lead"], self.cast.bot.user_id
        errors = len(self.errors.records)
        event_id = await lead.send(self.room_id, "!icc help")
        try:
            reply = await lead.wait_for_reply(self.room_id, event_id, bot_id, timeout=20)
        except AssertionError as exc:
            logged = "\n".join(self.errors.since(errors))
            raise AssertionError(f"help not answered after {context}\n{logged}") from exc
        assert HELP_ANSWER in body(reply), f"{body(reply)}\n{context}"
        task = self.running._task
        assert task is not None
        assert not task.done(), f"the bot's run ended after {context}"
        self.ids = {BOT_ANSWER: reply["event_id"], LEAD_COMMAND: event_id}
        self.last["lead"] = event_id

    async def pending(self) -> list[InboxEvent]:
        """Inbox rows not yet finished, once the last answer had time to be marked done."""
        deadline = time.monotonic() + 10
        while True:
            async with self.app.services.db.session() as session:  # type: ignore[union-attr]
                rows = list(
                    (
                        await session.exec(
                            select(InboxEvent).where(col(InboxEvent.status) == "pending")
                        )
                    ).all()
                )
            if not rows or time.monotonic() > deadline:
                return rows
            await asyncio.sleep(0.1)


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, synapse: DevServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """One bot per database backend: an event's content is written to the inbox as JSON, and
    a batch that cannot be written is fetched again and again."""
    directory = tmp_path_factory.mktemp(f"hostile-{request.param}")
    cast = new_cast(synapse)
    with fresh_database(request.param, directory) as url:
        world = World(synapse, cast, make_bot_env(directory, synapse, cast, url))
        with serving(world.start, world.stop) as background:
            world.background = background
            yield world


@pytest.mark.synapse
def test_no_event_content_stops_the_bot_or_its_sync(world: World) -> None:
    """As above, with the events sent by real clients and delivered by Synapse, which refuses
    some and completes others (event IDs checked in relations, redactions of one's own events):
    a smaller sample of what the fast tier tries (`FAST_EXAMPLES`). Shrinking is off: against a
    live bot it costs minutes, and a batch of a few events reads as it is."""

    @hostile_batches(SYNAPSE_EXAMPLES)
    def fed(batch: list[tuple[str, str, Any]]) -> None:
        taken = world.call(world.feed(batch))
        assume(taken > 0)
        world.call(world.still_answers(f"the batch {batch!r}"))

    fed()
    left = world.call(world.pending())
    assert not left, [(row.event_id, row.sender, row.content) for row in left]
    print(f"{world.sent} events taken, {world.refused} refused by the homeserver")

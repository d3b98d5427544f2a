"""Property tests of every command handler against the real bot: whatever the ICC lead types —
random, truncated, a megabyte, unicode, HTML, Markdown, template and format-string syntax, NUL
and right-to-left characters, stray quotes — the bot answers once, with an answer or a clear
refusal (never the apology for an internal error), shows typed text as text (never evaluated,
never rendered as HTML), leaves nothing half-written, and keeps answering.

The commands come from the real registry, so a new command is covered without touching this
file; each command's arguments are drawn from its own declaration (params and options) mixed
with hostile text, and from truncations of its declared example.

For speed most examples are fed to the running App's own CommandRunner as the sync loop would
(an inbox row, then `run`), and the answers really go to the test Synapse; a few per command go
through Synapse end to end. The bot runs in an event loop on a background thread, so that each
command gets its own Hypothesis test while one bot, one database and one homeserver serve them
all. Timers are held (APScheduler paused) while one example runs, so that the row counts before
and after a refusal compare only what that command did; between examples, what is due runs.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from sqlmodel import col, or_, select

from bot.app import App
from bot.chat.args import (
    MAX_LINE,
    Choice,
    Duration,
    Flag,
    Number,
    Option,
    Param,
    Targets,
    Text,
    Word,
)
from bot.chat.registry import CommandSpec, Registry
from bot.commands import all_families
from bot.devserver import DevServer
from bot.render import Renderer
from bot.settings import load_settings
from bot.storage import activation_store, core, round_store
from bot.storage.models import InboxEvent, Timer
from bot.timeutil import utcnow
from tests.conftest import (
    Cast,
    RunningBot,
    fresh_database,
    make_bot_env,
    new_cast,
    paging_directory,
)
from tests.invariants import counts, problems
from tests.matrix_people import Person, body, replies_to
from tests.support.rooms import bot_joined, open_activation

pytestmark = pytest.mark.synapse

REGISTRY = Registry(all_families())
COMMANDS = [spec.name for spec in REGISTRY]
GENERATED_EXAMPLES = 6  # per command, on top of the fixed nasty ones below
MEGABYTE = 1_000_000
YEAR = utcnow().year

# -- what people might type --------------------------------------------------------------------

# Template syntax is wrapped in brackets nobody else uses, so that an evaluated copy ("⟦49⟧")
# can be told from the typed one wherever it turns up.
TEMPLATE_TEXT = [
    "⟦{{ 7*7 }}⟧",
    "⟦{{ 1234*5678 }}⟧",
    "⟦{% if true %}FZIF{% endif %}⟧",
    "⟦{# fz #}⟧",
    "⟦{{ config }}⟧",
    "⟦{{ self.__init__.__globals__ }}⟧",
    "⟦{% raw %}⟧",
]
EVALUATED = ["⟦49⟧", "⟦7006652⟧", "⟦FZIF⟧", "⟦⟧"]
assert [jinja2.Environment().from_string(t).render() for t in TEMPLATE_TEXT[:4]] == EVALUATED
NASTY = [
    *TEMPLATE_TEXT,
    '<script>alert("fz")</script>',
    '<b data-fz="1">bold</b>',
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">click</a>',
    "<iframe src=//evil.example>",
    "</p></code></b>",
    "**fz** __x__ `code` # heading > quote",
    "[fz](javascript:alert(1))",
    "![img](https://evil.example/x.png)",
    "%s %d %(x)s %n {0} {x} {x!r} {} %%",
    "\x00",
    "a\x00b",
    "\u202eRTL override\u202c",
    "\u200b\u200d\ufeff",
    "\x1b[31m",
    '"unterminated',
    "'",
    "“smart” «guillemets» „low“",
    "\\",
    "— dash",
    "🚨👍✅",
    "e\u0301\u0301\u0301",
    "\r\n",
    "\t",
    "@room",
    "!icc help",
]
PEOPLE = ["lead", "member", "partner", "dg", "deputy", "nobody", "@nobody:nowhere.example"]
REFS = [
    *(
        "PG-1",
        "PG-2",
        "pg-3",
        "PG-0",
        "RQ-1",
        "RQ-2",
        "rq-9",
        "RD-1",
        "RD-2",
        "#1",
        "#2",
        "3",
        "#0",
    ),
    *(f"ICC-{YEAR}-001", f"ICC-{YEAR}-002", f"EX-ICC-{YEAR}-001", "ICC-9999-99999999999999999999"),
    *("PG-99999999999999999999", "RQ-99999999999999999999", "RD-99999999999999999999"),
]
TIMES = ["14:05", "00:00", "23:59", "24:00", "7:3", f"{YEAR}-01-01T10:00", "2h", "1s", "30m"]
TIMES += ["9999-12-31T23:59:59-12:00", "0001-01-01", "0001-01-01T00:00+14:00", "every 30m"]
OTHER = ["amber", "TLP:RED", "tlp:amber+strict", "clear", "purple", "Europe/Brussels", "UTC"]
OTHER += ["Mars/Olympus", "../../../etc/passwd", "here", "dg", "md", "full", "Roads; Shelters"]
WORDS = PEOPLE + REFS + TIMES + OTHER
# A word parameter's name says what it holds (`ref`, `lead`, `at`…): mostly offer that kind.
WORDS_BY_NAME = {
    **dict.fromkeys(("lead", "handle"), PEOPLE),
    **dict.fromkeys(("ref", "page", "request", "round", "entry"), REFS),
    **dict.fromkeys(("at", "by", "every"), TIMES),
}
DURATIONS = ["30s", "1s", "15m", "2h", "1d", "0m", "-5m", "1.5h", "15", "99999999999999999999s"]
DURATIONS += ["999999999d", "١٥m"]
NUMBERS = ["1", "2", "0", "-1", "²", "٣", "99999999999999999999999", "1e3"]
KEYS = ["lead", "member", "partner", "dg", "deputy", "nccn", "ercc", "benelux", "icc", "nobody"]
KEYS += ["ICC", "@x:y", "a..b", "-x"]
SENTENCES = [
    "Water levels rising in Namur",
    "Shelters open; 340 people housed",
    *("every 30m", "every 1m", "every 7m", "daily 09:00", "weekdays 08:30", "0 9 * * 1-5"),
    *("0 0 31 2 *", "61 25 * * *", "every 99999999999999999999h", "* * * * *"),
    "Roads; Shelters; ;",
]
OPTION_NOISE = ["--bogus", "--", "---", "--ack=", "—level full", "--level", "--=x", "--tlp=red"]
CLASSIFIED = ["RESTREINT UE", "Secret UE/EU Secret", "NATO SECRET"]

unicode_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=120)
hostile = st.one_of(
    st.sampled_from(NASTY),
    unicode_text,
    st.lists(
        st.sampled_from(NASTY + WORDS + SENTENCES + OPTION_NOISE + CLASSIFIED),
        min_size=1,
        max_size=5,
    ).map(" ".join),
)


def quoted(value: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A token as typed: bare, or quoted (which a word with spaces needs)."""
    return st.tuples(value, st.sampled_from(["", '"', "“", "'"])).map(
        lambda pair: f"{pair[1]}{pair[0]}{ {'“': '”'}.get(pair[1], pair[1]) }"
    )


def valid_looking(param: Param) -> st.SearchStrategy[str]:
    if isinstance(param, Choice):
        return st.sampled_from(param.choices) | st.sampled_from(param.choices).map(str.upper)
    if isinstance(param, Duration):
        return st.sampled_from(DURATIONS)
    if isinstance(param, Number):
        return st.sampled_from(NUMBERS)
    if isinstance(param, Targets):
        return st.lists(st.sampled_from(KEYS), min_size=1, max_size=4).map(",".join)
    if isinstance(param, Text):
        return st.sampled_from(SENTENCES) | st.sampled_from(WORDS)
    return st.sampled_from(WORDS_BY_NAME.get(param.name, WORDS))


def value_of(param: Param) -> st.SearchStrategy[str]:
    """A value for one declared parameter: mostly what it expects, often something hostile."""
    valid = valid_looking(param)
    if isinstance(param, Text):
        return st.one_of(
            valid, hostile, st.lists(valid | hostile, min_size=2, max_size=4).map(" ".join)
        )
    return st.one_of(valid, valid, quoted(hostile))


def option_text(option: Option | Flag) -> st.SearchStrategy[str]:
    if isinstance(option, Flag):
        return st.sampled_from([f"--{option.name}", f"--{option.name.upper()}"])
    value = quoted(value_of(option.value))
    return st.one_of(
        value.map(lambda v: f"--{option.name} {v}"),
        value.map(lambda v: f"--{option.name}={v}"),
        st.just(f"--{option.name}"),  # the value left out
    )


@st.composite
def declared(draw: st.DrawFn, spec: CommandSpec) -> str:
    """A line built from the command's own declaration, with hostile values mixed in."""
    parts = [
        draw(value_of(param))
        for param in spec.signature.params
        if draw(st.integers(0, 9)) > 0  # sometimes a parameter is left out
    ]
    parts += [draw(option_text(option)) for option in spec.signature.options if draw(st.booleans())]
    if draw(st.integers(0, 9)) == 0:
        parts.append(draw(st.sampled_from(OPTION_NOISE)))
    if draw(st.booleans()):
        parts = draw(st.permutations(parts))
    separator = draw(st.sampled_from([" ", "  ", "\n", "\t", " \u00a0"]))
    return f"{spec.name} {separator.join(parts)}"


def truncated(spec: CommandSpec) -> st.SearchStrategy[str]:
    """The command's own example, cut anywhere, sometimes with something nasty after the cut."""
    return st.tuples(st.integers(0, len(spec.example)), st.sampled_from(["", " ", *NASTY])).map(
        lambda cut: spec.example[: cut[0]] + cut[1]
    )


def huge(spec: CommandSpec) -> st.SearchStrategy[str]:
    """About a megabyte after the command's example (far past what Synapse accepts)."""
    units = ["x", "é", "🚨", "<b>", "{{ 7*7 }}", "a,", "word ", "\u202e", "\x00", "--x "]
    return st.sampled_from(units).map(
        lambda unit: f"{spec.example} {unit * (MEGABYTE // len(unit.encode()))}"
    )


def lines(spec: CommandSpec) -> st.SearchStrategy[str]:
    return st.one_of(
        declared(spec),
        declared(spec),
        truncated(spec),
        hostile.map(lambda text: f"{spec.name} {text}"),
        huge(spec),
    )


# Values at the edges of what each kind of parameter parses, for lines that otherwise get through.
EDGES: dict[type, list[str]] = {
    Duration: ["99999999999999999999s", "999999999d", "1s"],
    Number: ["²", "99999999999999999999999", "٣"],
    Word: [
        *("PG-99999999999999999999", "9999-12-31T23:59:59-12:00", "#99999999999999999999"),
        *("RQ-99999999999999999999", "RD-99999999999999999999", "0001-01-01T00:00+14:00"),
    ],
    Text: ["0 0 31 2 *", "every 99999999999999999999h", " ".join(NASTY)],
    Targets: ["icc", "lead,partner", "deputy"],
}


def edge_value(param: Param, i: int) -> str:
    if isinstance(param, Choice):
        return param.choices[i % len(param.choices)]
    values = next((v for kind, v in EDGES.items() if isinstance(param, kind)), EDGES[Word])
    value = values[i % len(values)]
    return f'"{value}"' if " " in value and not isinstance(param, Text) else value


def edge_lines(spec: CommandSpec) -> list[str]:
    """The command with every parameter and option at an edge value, in turn."""
    declared = [
        *spec.signature.params,
        *(o.value for o in spec.signature.options if isinstance(o, Option)),
    ]
    if not declared:
        return []
    kinds = [
        len(param.choices) if isinstance(param, Choice) else len(values)
        for param in declared
        for kind, values in [
            next(((k, v) for k, v in EDGES.items() if isinstance(param, k)), (Word, EDGES[Word]))
        ]
    ]
    made = []
    for i in range(max(kinds)):
        positional = [edge_value(p, i) for p in spec.signature.params]
        options = [
            f"--{o.name}" if isinstance(o, Flag) else f"--{o.name} {edge_value(o.value, i)}"
            for o in spec.signature.options
            if isinstance(o, Option) or i % 2  # flags every other line
        ]
        made.append(" ".join([spec.name, *positional, *options]))
    return list(dict.fromkeys(made))


def fixed_lines(spec: CommandSpec, backend: str) -> list[tuple[str, str]]:
    """The nasty cases every command gets, always (as Hypothesis explicit examples)."""
    everything = " ".join(NASTY)
    cases = [
        (f"{spec.example} {everything}", "activation"),
        (f"{spec.example} {'x<{{ ⟦{{ 7*7 }}⟧ ' * (MEGABYTE // 20)}", "activation"),
    ]
    if backend != "sqlite":
        return cases  # what differs between databases: how they store such text
    return [
        *cases,
        (f"{spec.example} {everything}", "dm"),
        (f"{spec.name}{'x' * MEGABYTE}", "activation"),
        (spec.example[: len(spec.example) // 2], "activation"),
        (spec.name, "activation"),
        *((line, "activation") for line in edge_lines(spec)),
    ]


# -- what the bot must never send --------------------------------------------------------------


def _template_markup() -> tuple[set[str], set[str]]:
    """The HTML tags and attributes the bot's own templates use; anything else came from users."""
    sources = [
        p.read_text()
        for p in (Path(__file__).parent.parent / "bot" / "templates").glob("*.html.j2")
    ]
    tags = {t.lower() for s in sources for t in re.findall(r"</?([a-zA-Z][a-zA-Z0-9]*)", s)}
    attributes = {a.lower() for s in sources for a in re.findall(r"\s([a-zA-Z-]+)=", s)}
    return tags | {"p", "b"}, attributes  # the activation frame: <p><b>TLP…</b></p>


TEMPLATE_TAGS, TEMPLATE_ATTRIBUTES = _template_markup()
APOLOGIES = [
    Renderer().render("internal_error", ref="\x00").body.split("\x00")[0],
    Renderer().render("database_unavailable", command="\x00").body.split("\x00")[0],
]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


def markup_problems(html: str) -> list[str]:
    parser = _Tags()
    parser.feed(html)
    parser.close()
    found = []
    for tag, attrs in parser.found:
        if tag not in TEMPLATE_TAGS:
            found.append(f"tag <{tag}>")
        for name, value in attrs:
            if name not in TEMPLATE_ATTRIBUTES or "javascript:" in (value or "").lower():
                found.append(f"attribute {name}={value!r} on <{tag}>")
    return found


def unsafe(text: str) -> list[str]:
    """Typed template syntax that was evaluated."""
    return [e for e in EVALUATED if e in text]


@dataclass
class Sent:
    room_id: str
    event_type: str
    content: dict[str, Any]
    error: str | None = None


def check_message(sent: Sent, context: str) -> None:
    content = sent.content
    texts = [str(content.get("body", "")), str(content.get("formatted_body", ""))]
    for text in texts:
        assert not unsafe(text), f"evaluated {unsafe(text)} in {text[:500]!r}\n{context}"
    assert not markup_problems(texts[1]), (
        f"raw HTML {markup_problems(texts[1])} in {texts[1][:800]!r}\n{context}"
    )


INJECTED_TAGS = {"script", "img", "iframe", "svg", "object", "embed", "style", "link"}


def injected_markup(html: str) -> list[str]:
    """Markup only a user could have put there (for documents, whose own tags vary)."""
    parser = _Tags()
    parser.feed(html)
    parser.close()
    return [
        f"<{tag} {attrs}>"
        for tag, attrs in parser.found
        if tag in INJECTED_TAGS
        or any(
            name == "data-fz" or name.startswith("on") or "javascript:" in (value or "").lower()
            for name, value in attrs
        )
    ]


def check_file(name: str, mimetype: str, data: bytes, context: str) -> None:
    text = data.decode(errors="replace")
    assert not unsafe(text), f"evaluated {unsafe(text)} in {name}\n{context}"
    if mimetype == "text/html":
        assert not injected_markup(text), f"raw {injected_markup(text)} in {name}\n{context}"
    if mimetype == "text/markdown":  # Markdown viewers render links, emphasis and raw HTML
        live = re.findall(r"\]\(javascript:|\*\*fz\*\*|(?<!\\)<(?:script|img|iframe|b data)", text)
        assert not live, f"live Markdown {live} in {name}\n{context}"


# -- the world: one bot, its rooms, on a loop of its own ----------------------------------------

ANSWERED = {"done", "usage", "refused", "unknown"}
REFUSED = {"usage", "refused", "unknown"}


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        trace = logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        self.records.append(f"{record.name}: {record.getMessage()[:500]}\n{trace}")


class World:
    """The running bot, the lead's client, an activation room and a DM, on a background loop."""

    def __init__(self, synapse: DevServer, cast: Cast, env: dict[str, str], backend: str) -> None:
        self.synapse, self.cast, self.env, self.backend = synapse, cast, env, backend
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.rooms: dict[str, str] = {}
        self.people: dict[str, Person] = {}
        self.sent: list[Sent] = []
        self.files: list[tuple[str, str, bytes]] = []
        self.errors = _Errors()
        self.running: RunningBot | None = None
        self.examples = 0
        self.held = False  # timers paused between one example's settling and the next

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 300) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def app(self) -> App:
        assert self.running is not None
        assert self.running.app is not None
        return self.running.app

    # -- set-up -----------------------------------------------------------------------------------

    async def start(self) -> None:
        cast = self.cast
        for role in ("lead", "dg"):
            account = getattr(cast, role)
            self.people[role] = await Person.login(
                self.synapse.base_url, account.user_id, account.password
            )
        lead, dg = self.people["lead"], self.people["dg"]
        dg_room = await dg.create_room(invite=[cast.bot.user_id, cast.lead.user_id], name="DG")
        await lead.join(dg_room)
        env = self.env | {"ICC_DG_ROOM": dg_room, "ICC_RATE_LIMIT": "1000000/1m"}
        self.running = RunningBot(load_settings(env))
        await self.running.start()
        await dg.wait_for(dg_room, bot_joined(cast.bot.user_id))
        dm = await lead.create_room(invite=[cast.bot.user_id], name="lead and bot")
        await lead.wait_for(dm, bot_joined(cast.bot.user_id))
        _ref, room, _ = await open_activation(lead, dm, cast, '!icc activate "Fuzzing"')
        await lead.join(room)
        self.rooms = {"activation": room, "dm": dm}
        self._spy()
        logging.getLogger("bot").addHandler(self.errors)

    def _spy(self) -> None:
        """Record every message and file the bot sends; they still go to Synapse."""
        messenger = self.app.services.messenger  # type: ignore[union-attr]
        send, send_file = messenger.send, messenger.send_file

        async def recording_send(
            room_id: str,
            content: dict[str, Any],
            *,
            event_type: str = "m.room.message",
            txn_id: str | None = None,
        ) -> str:
            sent = Sent(room_id, event_type, content)
            self.sent.append(sent)
            try:
                return await send(room_id, content, event_type=event_type, txn_id=txn_id)
            except Exception as exc:
                sent.error = str(exc)
                raise

        async def recording_send_file(
            room_id: str, data: bytes, *, filename: str, mimetype: str, txn_id: str | None = None
        ) -> str:
            self.files.append((filename, mimetype, data))
            return await send_file(
                room_id, data, filename=filename, mimetype=mimetype, txn_id=txn_id
            )

        messenger.send = recording_send  # type: ignore[method-assign]
        messenger.send_file = recording_send_file  # type: ignore[method-assign]

    async def stop(self) -> None:
        logging.getLogger("bot").removeHandler(self.errors)
        if self.running is not None:
            await self.running.stop()
        for person in self.people.values():
            await person.close()

    # -- timers -----------------------------------------------------------------------------------

    def _no_new_errors(self, since: int, context: str) -> None:
        new = self.errors.records[since:]
        assert not new, "the bot logged errors:\n" + "\n".join(new) + f"\n{context}"

    async def settle(self, context: str, *, hold: bool = True) -> None:
        """Let every timer due within the next second run to its end, then (with `hold`) pause
        the scheduler, so that nothing but the next command changes the database."""
        scheduler = self.app.services.scheduler  # type: ignore[union-attr]
        scheduler.aps.resume()
        errors = len(self.errors.records)
        deadline = time.monotonic() + 30
        while True:
            soon = utcnow() + timedelta(seconds=1)
            async with self.app.services.db.session() as session:  # type: ignore[union-attr]
                busy = (
                    await session.exec(
                        select(Timer).where(
                            col(Timer.completed_at).is_(None),
                            col(Timer.cancelled_at).is_(None),
                            or_(col(Timer.fired_at).is_not(None), col(Timer.due_at) <= soon),
                        )
                    )
                ).all()
            if not busy:
                break
            self._no_new_errors(errors, context)
            assert time.monotonic() < deadline, f"timers stuck: {busy}\n{context}"
            await asyncio.sleep(0.05)
        if hold:
            scheduler.aps.pause()
        self.held = hold

    # -- one example --------------------------------------------------------------------------------

    def inbox_event(self, room_id: str, text: str) -> InboxEvent:
        """A command event as the sync loop records it."""
        self.examples += 1
        now = utcnow()
        content = {"msgtype": "m.text", "body": text}
        assert self.app.runner is not None
        assert self.app.runner.wants("m.room.message", content)
        return InboxEvent(
            event_id=f"$fuzz{self.examples}-{secrets.token_hex(4)}",
            room_id=room_id,
            sender=self.cast.lead.user_id,
            origin_ts=now,
            received_at=now,
            content=content,
            event_type="m.room.message",
        )

    async def check(self, spec: CommandSpec, line: str, place: str) -> None:
        services = self.app.services
        assert services is not None
        assert self.app.runner is not None
        context = f"command {spec.name!r} in the {place}: {line[:300]!r}… ({len(line)} chars)"
        if not self.held:
            await self.settle(context)
        room_id = self.rooms[place]
        before = await counts(services.db)
        sent_mark, files_mark, errors_mark = (
            len(self.sent),
            len(self.files),
            len(self.errors.records),
        )
        item = self.inbox_event(room_id, f"{services.settings.command_prefix} {line}")
        async with services.db.session() as session:
            await core.record_inbox(session, [item])
        await asyncio.wait_for(self.app.runner.run(item), 120)
        async with services.db.session() as session:
            status = (await session.get(InboxEvent, item.event_id)).status  # type: ignore[union-attr]
        sent, files = self.sent[sent_mark:], self.files[files_mark:]
        replies = [s for s in sent if replies_to({"content": s.content}) == item.event_id]
        shown = [
            str(s.content.get("body", ""))[:600] + (f" [{s.error}]" if s.error else "")
            for s in sent
        ]
        context += f"\noutcome {status}; sent: {shown}"
        self._no_new_errors(errors_mark, context)
        assert status in ANSWERED, f"not answered as it should be\n{context}"
        for message in sent:
            assert message.error is None, f"a send failed\n{context}"
            check_message(message, context)
        for name, mimetype, data in files:
            check_file(name, mimetype, data, context)
        for reply in replies:
            assert not any(a in str(reply.content.get("body")) for a in APOLOGIES), context
        if status in REFUSED:
            assert len(replies) == 1, f"one refusal\n{context}"
            assert len(sent) == 1, f"nothing but the refusal sent\n{context}"
            assert not files, f"no file with a refusal\n{context}"
            assert await counts(services.db) == before, f"a refusal changed the database\n{context}"
        else:
            started = await self._round_started(spec, item.event_id)
            assert len(replies) == (0 if started else 1), f"one answer\n{context}"
        await self.settle(context)
        for message in self.sent[sent_mark:]:
            check_message(message, context)
        if status not in REFUSED:  # (a refusal changed nothing, so what held still holds)
            if spec.name == "round now":
                await self._prompted(item.event_id, sent_mark, context)
            found = await problems(services.db)
            assert not found, "inconsistent database:\n" + "\n".join(found) + f"\n{context}"
            await self.keep_activation_open()

    async def _round_started(self, spec: CommandSpec, event_id: str) -> bool:
        """`round now` answers with the round's prompt (a ring), not a reply."""
        if spec.name != "round now":
            return False
        async with self.app.services.db.session() as session:  # type: ignore[union-attr]
            return await round_store.series_by_event(session, event_id) is not None

    async def _prompted(self, event_id: str, since: int, context: str) -> None:
        async with self.app.services.db.session() as session:  # type: ignore[union-attr]
            series = await round_store.series_by_event(session, event_id)
        assert series is not None, context
        prompts = [
            s
            for s in self.sent[since:]
            if s.room_id == series.room_id
            and s.content.get("msgtype") == "m.text"
            and series.ref in str(s.content.get("body"))
        ]
        assert prompts, f"{series.ref} started without a prompt\n{context}"

    async def keep_activation_open(self) -> None:
        """`close` (or a hand-over game) may end the activation the examples run in: open another."""
        services = self.app.services
        assert services is not None
        async with services.db.session() as session:
            activation = await activation_store.by_room(session, self.rooms["activation"])
        if activation is not None and activation.status == "open":
            return
        _, opened = await services.lifecycle.open(
            title=f"Fuzzing {self.examples}",
            level="monitoring",
            exercise=False,
            tlp="TLP:AMBER",
            lead=self.cast.lead.user_id,
            event_id=f"$reopen-{secrets.token_hex(6)}",
        )
        assert opened.room_id is not None
        self.rooms["activation"] = opened.room_id

    # -- end to end -------------------------------------------------------------------------------

    async def through_synapse(self, spec: CommandSpec, line: str) -> None:
        """The lead types `line` in a real client; the answer arrives through Synapse."""
        services = self.app.services
        assert services is not None
        context = f"end to end: {line[:300]!r}"
        await self.settle(context, hold=False)
        lead, room_id = self.people["lead"], self.rooms["activation"]
        await lead.join(room_id)
        errors = len(self.errors.records)
        reply = await lead.ask(
            room_id, f"{services.settings.command_prefix} {line}", self.cast.bot.user_id
        )
        assert not any(a in body(reply) for a in APOLOGIES), f"{body(reply)}\n{context}"
        check_message(Sent(room_id, reply["type"], reply["content"]), context)
        await self.settle(context, hold=False)
        self._no_new_errors(errors, context)
        found = await problems(services.db)
        assert not found, "inconsistent database:\n" + "\n".join(found) + f"\n{context}"
        await self.keep_activation_open()

    async def still_answers_help(self) -> None:
        lead = self.people["lead"]
        prefix = self.app.services.settings.command_prefix  # type: ignore[union-attr]
        reply = await lead.ask(self.rooms["dm"], f"{prefix} help", self.cast.bot.user_id)
        assert f"{prefix} help [<command>]" in body(reply), body(reply)


def fuzz_directory(cast: Cast) -> dict[str, Any]:
    """The paging cast (with backups; ERCC is the partner and the DG), plus the `benelux` group
    the commands' own examples name, so that those examples get through to the handlers."""
    directory = paging_directory(cast)
    directory["groups"]["benelux"] = "Benelux crisis centres"
    for contact in directory["contacts"]:
        if contact["handle"] in ("partner", "dg"):
            contact["groups"] = [*contact.get("groups", []), "benelux"]
    return directory


# Commands that create what others act on run first (a page before `ack`, a request before
# `advice`, a round before `update`), the rest in the registry's order, so new ones are included.
FIRST = ["activate", "page", "ask", "round now", "round schedule", "commscheck", "log"]
LAST = ["handover", "level", "realworld", "close"]
ORDER = [n for n in FIRST if n in COMMANDS]
ORDER += [n for n in COMMANDS if n not in FIRST + LAST] + [n for n in LAST if n in COMMANDS]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, synapse: DevServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    backend = request.param
    directory = tmp_path_factory.mktemp(f"fuzz-{backend}")
    cast = new_cast(synapse)
    with fresh_database(backend, directory) as url:
        env = make_bot_env(directory, synapse, cast, url)
        (Path(env["ICC_CONFIG_DIR"]) / "directory.yaml").write_text(
            yaml.safe_dump(fuzz_directory(cast))
        )
        world = World(synapse, cast, env, backend)
        world.thread.start()
        try:
            world.call(world.start())
            yield world
        finally:
            try:
                world.call(world.stop(), timeout=60)
            finally:
                world.loop.call_soon_threadsafe(world.loop.stop)
                world.thread.join(10)


@pytest.mark.parametrize("name", ORDER)
def test_every_command_answers_bad_input_and_writes_nothing_half(world: World, name: str) -> None:
    spec = REGISTRY.get(name)
    assert spec is not None
    # PostgreSQL runs the fixed nasty cases only (NUL bytes, megabytes): cheap, and what differs.
    # No shrinking: against a live bot it costs minutes, and the failing line is readable as is.
    phases = [Phase.explicit] if world.backend == "postgresql" else [Phase.explicit, Phase.generate]

    @settings(
        max_examples=GENERATED_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=phases,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        line=lines(spec), place=st.sampled_from(["activation", "activation", "activation", "dm"])
    )
    def typed(line: str, place: str) -> None:
        world.call(world.check(spec, line, place))

    for line, place in fixed_lines(spec, world.backend):
        typed = example(line=line, place=place)(typed)
    typed()
    nasty = f"{spec.example} ⟦{{{{ 7*7 }}}}⟧ <b data-fz=1>x</b> [x](javascript:1) %s {{0}}"
    world.call(world.through_synapse(spec, nasty))
    world.call(world.still_answers_help())


def test_an_answer_too_big_for_one_matrix_event_still_reaches_the_sender(world: World) -> None:
    log, sitrep = REGISTRY.get("log"), REGISTRY.get("sitrep")
    assert log is not None
    assert sitrep is not None
    long = "Update from the field: " + "water levels still rising along the quays " * 85
    assert len(long) < MAX_LINE
    for _ in range(12):  # twelve long entries: the sitrep quotes them all
        world.call(world.check(log, f"log {long}", "activation"))
    world.call(world.check(sitrep, "sitrep", "activation"))
    name, mimetype, data = world.files[-1]
    assert name.startswith("sitrep-")
    assert mimetype == "text/plain"
    assert data.decode().count("water levels still rising") >= 12 * 85
    notice = str(world.sent[-1].content["body"])
    assert "too long for one Matrix message" in notice
    assert name in notice

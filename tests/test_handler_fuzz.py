"""Property tests of every command handler against the real bot: whatever the ICC lead types —
random, truncated, a megabyte, unicode, HTML, Markdown, template and format-string syntax, NUL
and right-to-left characters, stray quotes — the bot answers once, with an answer or a clear
refusal (never the apology for an internal error), shows typed text as text (never evaluated,
never rendered as HTML), leaves nothing half-written, and keeps answering.

The commands come from the real registry, so a new command is covered without touching this
file; each command's arguments are drawn from its own declaration (params and options) mixed
with hostile text, and from truncations of its declared example.

The examples run in the fast tier, on a desk (tests/support/desk.py): the real services, command
runner and database (SQLite, and PostgreSQL for the fixed cases), with what the bot sends
recorded, and refused as Synapse would refuse it (too large, a room the bot is not in). The desk
runs on a background loop (tests/support/background.py), so that each command gets its own
Hypothesis test while one bot and one database serve them all. Timers fire only when an example
has been checked (`settle`), so that the row counts before and after a refusal compare only what
that command did. One test per backend then types each command's nastiest line in a real client,
through the test homeserver.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Iterator
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
from bot.render import LIGHT_ATTRIBUTES, LIGHT_TAGS, Renderer
from bot.storage import activation_store, round_store
from bot.storage.db import Database
from bot.storage.models import InboxEvent, Timer
from bot.timeutil import utcnow
from tests.support.background import ErrorLog, serving
from tests.support.bots import bot_running
from tests.support.cast import Cast, desk_cast, paging_directory, people_of
from tests.support.databases import BACKENDS, fresh_database
from tests.support.desk import Desk, OnDesk
from tests.support.invariants import counts, problems
from tests.support.matrix_people import Person, body
from tests.support.recording import Recorded
from tests.support.rooms import bot_joined, open_activation

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
    # The activation frame (<p><b>TLP…</b></p>), and the light formatting kept in what people
    # typed (bot.render.light_markdown).
    return tags | {"p", "b"} | LIGHT_TAGS, attributes | LIGHT_ATTRIBUTES


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


def check_message(sent: Recorded, context: str) -> None:
    content = sent.content
    texts = [str(content.get("body", "")), str(content.get("formatted_body", ""))]
    for text in texts:
        assert not unsafe(text), f"evaluated {unsafe(text)} in {text[:500]!r}\n{context}"
    assert not markup_problems(texts[1]), (
        f"raw HTML {markup_problems(texts[1])} in {texts[1][:800]!r}\n{context}"
    )


# Not `svg` nor `style`: the after-action review's HTML draws its charts as inline SVG with their
# own style; markup someone typed still shows by these tags, or by an on… handler, a javascript:
# value or the payloads' data-fz attribute on any element, svg included.
INJECTED_TAGS = {"script", "img", "iframe", "object", "embed", "link"}


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
        # An escaped bracket (\]) cannot close a link; an unescaped one before (javascript: could.
        live = re.findall(
            r"(?<!\\)\]\(javascript:|\*\*fz\*\*|(?<!\\)<(?:script|img|iframe|b data)", text
        )
        assert not live, f"live Markdown {live} in {name}\n{context}"


# -- the world: one bot, its rooms, on a loop of its own ----------------------------------------

ANSWERED = {"done", "usage", "refused", "unknown"}
REFUSED = {"usage", "refused", "unknown"}
DG_ROOM = "!dg-platform:desk.test"


def fuzz_directory(cast: Cast) -> dict[str, Any]:
    """The paging cast (with backups; ERCC is the partner and the DG), plus the `benelux` group
    the commands' own examples name, so that those examples get through to the handlers."""
    directory = paging_directory(cast)
    directory["groups"]["benelux"] = "Benelux crisis centres"
    for contact in directory["contacts"]:
        if contact["handle"] in ("partner", "dg"):
            contact["groups"] = [*contact.get("groups", []), "benelux"]
    return directory


class World(OnDesk):
    """The bot's services on a desk (tests/support/desk.py), an activation room and the lead's
    room with the bot, on a background loop: what the bot sends is recorded, not sent."""

    def __init__(self, directory: Path, database_url: str, backend: str) -> None:
        self.directory, self.database_url, self.backend = directory, database_url, backend
        self.cast = desk_cast()
        self.rooms: dict[str, str] = {}
        self.errors = ErrorLog()
        self.examples = 0

    @property
    def sent(self) -> list[Recorded]:
        """Every event the bot sent or tried to send (a refused one has its error)."""
        return [r for r in self.desk.messenger.recorded if r.event_type]

    @property
    def files(self) -> list[Recorded]:
        return [r for r in self.sent if r.kind == "file" and r.error is None]

    async def start(self) -> None:
        self._desk = await Desk.open(
            self.directory,
            self.database_url,
            people_of(self.cast),
            fuzz_directory(self.cast),
            env={"ICC_DG_ROOM": DG_ROOM, "ICC_RATE_LIMIT": "1000000/1m"},
        )
        self.desk.joins(DG_ROOM, "dg", "lead")
        dm = self.desk.room("lead", name="lead and bot")
        opened = await self.desk.ask("lead", dm, '!icc activate "Fuzzing"')
        link = re.search(r"https://matrix.to/#/(!\S+)", opened.body)
        assert link, opened.body
        self.rooms = {"activation": link.group(1), "dm": dm}
        self.errors.attach()

    async def stop(self) -> None:
        self.errors.detach()
        if self._desk is not None:
            await self._desk.close()

    # -- timers -----------------------------------------------------------------------------------

    def _no_new_errors(self, since: int, context: str) -> None:
        new = self.errors.since(since)
        assert not new, "the bot logged errors:\n" + "\n".join(new) + f"\n{context}"

    async def settle(self, context: str) -> None:
        """Run every timer due within the next second to its end (and those they arm, due as
        soon), so that nothing but the next command changes the database. Timers never fire
        on their own on the desk."""
        errors = len(self.errors.records)
        try:
            await self.desk.fire_due()
        finally:
            self._no_new_errors(errors, context)

    # -- one example --------------------------------------------------------------------------------

    async def check(self, spec: CommandSpec, line: str, place: str) -> None:
        desk, services = self.desk, self.desk.services
        context = f"command {spec.name!r} in the {place}: {line[:300]!r}… ({len(line)} chars)"
        room_id = self.rooms[place]
        before = await counts(services.db)
        sent_mark, errors_mark = len(desk.messenger.recorded), len(self.errors.records)
        self.examples += 1
        content = {"msgtype": "m.text", "body": f"{services.settings.command_prefix} {line}"}
        item = desk.inbox_event("lead", room_id, content)
        assert item is not None, "the sync loop would not even record it"
        await asyncio.wait_for(desk.handle(item), 120)
        async with services.db.session() as session:
            status = (await session.get(InboxEvent, item.event_id)).status  # type: ignore[union-attr]
        recorded = desk.messenger.recorded[sent_mark:]
        sent = [r for r in recorded if r.event_type]
        files = [r for r in sent if r.kind == "file"]
        replies = [s for s in sent if s.reply_to == item.event_id]
        shown = [s.body[:600] + (f" [{s.error}]" if s.error else "") for s in sent]
        context += f"\noutcome {status}; sent: {shown}"
        self._no_new_errors(errors_mark, context)
        assert status in ANSWERED, f"not answered as it should be\n{context}"
        for message in sent:
            assert message.error is None, f"a send failed\n{context}"
            check_message(message, context)
        for file in files:
            assert file.data is not None
            check_file(file.filename or "", file.mimetype or "", file.data, context)
        for reply in replies:
            assert not any(a in reply.body for a in APOLOGIES), context
        if status in REFUSED:
            assert len(replies) == 1, f"one refusal\n{context}"
            assert len(recorded) == 1, f"nothing but the refusal sent\n{context}"
            assert await counts(services.db) == before, f"a refusal changed the database\n{context}"
        else:
            started = await self._round_started(spec, item.event_id)
            assert len(replies) == (0 if started else 1), f"one answer\n{context}"
        await self.settle(context)
        for message in desk.messenger.recorded[sent_mark:]:
            assert message.error is None, f"a send failed\n{context}"
            if message.event_type:
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
        async with self.desk.services.db.session() as session:
            return await round_store.series_by_event(session, event_id) is not None

    async def _prompted(self, event_id: str, since: int, context: str) -> None:
        async with self.desk.services.db.session() as session:
            series = await round_store.series_by_event(session, event_id)
        assert series is not None, context
        prompts = [
            s
            for s in self.desk.messenger.recorded[since:]
            if s.room_id == series.room_id and s.msgtype == "m.text" and series.ref in s.body
        ]
        assert prompts, f"{series.ref} started without a prompt\n{context}"

    async def keep_activation_open(self) -> None:
        """`close` (or a hand-over game) may end the activation the examples run in: open another."""
        services = self.desk.services
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


# Commands that create what others act on run first (a page before `ack`, a request before
# `advice`, a round before `update`), the rest in the registry's order, so new ones are included.
FIRST = ["activate", "page", "ask", "round now", "round schedule", "commscheck", "log"]
LAST = ["handover", "level", "realworld", "close"]
ORDER = [n for n in FIRST if n in COMMANDS]
ORDER += [n for n in COMMANDS if n not in FIRST + LAST] + [n for n in LAST if n in COMMANDS]


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    backend = request.param
    directory = tmp_path_factory.mktemp(f"fuzz-{backend}")
    with fresh_database(backend, directory) as url:
        world = World(directory, url, backend)
        with serving(world.start, world.stop) as background:
            world.background = background
            yield world


@pytest.mark.parametrize("name", ORDER)
def test_every_command_answers_bad_input_and_writes_nothing_half(world: World, name: str) -> None:
    spec = REGISTRY.get(name)
    assert spec is not None
    # PostgreSQL runs the fixed nasty cases only (NUL bytes, megabytes): what differs.
    # No shrinking: the failing line is readable as it is.
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


def test_an_answer_too_big_for_one_matrix_event_still_reaches_the_sender(world: World) -> None:
    log, sitrep = REGISTRY.get("log"), REGISTRY.get("sitrep")
    assert log is not None
    assert sitrep is not None
    long = "Update from the field: " + "water levels still rising along the quays " * 85
    assert len(long) < MAX_LINE
    for _ in range(12):  # twelve long entries: the sitrep quotes them all
        world.call(world.check(log, f"log {long}", "activation"))
    world.call(world.check(sitrep, "sitrep", "activation"))
    file = world.files[-1]
    assert file.filename is not None
    assert file.filename.startswith("sitrep-")
    assert file.mimetype == "text/plain"
    assert file.data is not None
    assert file.data.decode().count("water levels still rising") >= 12 * 85
    notice = world.sent[-1].body
    assert "too long for one Matrix message" in notice
    assert file.filename in notice


# -- end to end, through the test homeserver -----------------------------------------------------


def nasty_line(spec: CommandSpec) -> str:
    return f"{spec.example} ⟦{{{{ 7*7 }}}}⟧ <b data-fz=1>x</b> [x](javascript:1) %s {{0}}"


async def timers_settled(db: Database, context: str) -> None:
    """Wait until every timer due within the next second has run to its end (the running bot
    fires them on its own)."""
    deadline = time.monotonic() + 30
    while True:
        soon = utcnow() + timedelta(seconds=1)
        async with db.session() as session:
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
            return
        assert time.monotonic() < deadline, f"timers stuck: {busy}\n{context}"
        await asyncio.sleep(0.05)


@pytest.mark.synapse
@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_every_commands_nasty_line_is_answered_through_synapse(
    bot_env: dict[str, str], people: dict[str, Person], cast: Cast
) -> None:
    """What the desk cannot show: each command's answer to a nasty line, typed in a real client,
    reaches it through Synapse as sent (no apology, no evaluated template, no raw HTML), and the
    bot still answers `help` after them all."""
    (Path(bot_env["ICC_CONFIG_DIR"]) / "directory.yaml").write_text(
        yaml.safe_dump(fuzz_directory(cast))
    )
    lead, dg = people["lead"], people["dg"]
    dg_room = await dg.create_room(invite=[cast.bot.user_id, cast.lead.user_id], name="DG")
    await lead.join(dg_room)
    errors = ErrorLog()
    env = bot_env | {"ICC_DG_ROOM": dg_room, "ICC_RATE_LIMIT": "1000000/1m"}
    async with bot_running(env) as running:
        services = running.app.services  # type: ignore[union-attr]
        assert services is not None
        await dg.wait_for(dg_room, bot_joined(cast.bot.user_id))
        dm = await lead.create_room(invite=[cast.bot.user_id], name="lead and bot")
        await lead.wait_for(dm, bot_joined(cast.bot.user_id))
        _ref, room_id, _ = await open_activation(lead, dm, cast, '!icc activate "Fuzzing"')
        errors.attach()
        try:
            for name in ORDER:
                spec = REGISTRY.get(name)
                assert spec is not None
                line = nasty_line(spec)
                context = f"end to end: {line[:300]!r}"
                await lead.join(room_id)
                mark = len(errors.records)
                reply = await lead.ask(room_id, f"!icc {line}", cast.bot.user_id)
                assert not any(a in body(reply) for a in APOLOGIES), f"{body(reply)}\n{context}"
                check_message(Recorded("message", room_id, content=reply["content"]), context)
                await timers_settled(services.db, context)
                assert not errors.since(mark), "\n".join(errors.since(mark)) + context
                found = await problems(services.db)
                assert not found, "inconsistent database:\n" + "\n".join(found) + f"\n{context}"
                async with services.db.session() as session:
                    activation = await activation_store.by_room(session, room_id)
                if activation is None or activation.status != "open":
                    _, opened = await services.lifecycle.open(
                        title=f"Fuzzing after {name}",
                        level="monitoring",
                        exercise=False,
                        tlp="TLP:AMBER",
                        lead=cast.lead.user_id,
                        event_id=f"$reopen-{secrets.token_hex(6)}",
                    )
                    assert opened.room_id is not None
                    room_id = opened.room_id
            reply = await lead.ask(dm, "!icc help", cast.bot.user_id)
            assert "!icc help [<command>]" in body(reply), body(reply)
        finally:
            errors.detach()

"""The command registry: each family in `bot/commands/` declares its commands here.

A declaration carries everything a person needs — name, role, arguments, summary, example — so
`help`, usage lines and the role check are all generated from it, never written twice.
"""

from __future__ import annotations

import difflib
import inspect
import re
import typing
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.chat.args import Flag, Option, Param, Signature
from bot.chat.render import Message
from bot.directory.roles import Role

if TYPE_CHECKING:
    from bot.directory.model import Contact
    from bot.services import Services


@dataclass(frozen=True)
class CommandContext:
    """What a handler knows about the command it runs: who, where, with which arguments."""

    services: Services
    sender: str
    role: Role
    contact: Contact | None
    room_id: str
    event_id: str
    sent_at: datetime
    relates_to: str | None = None  # the event this one replies or reacts to
    thread_root: str | None = None  # the thread it was typed in
    via: str = "command"  # how it came: command, reply or reaction

    def render(self, template: str, /, **context: Any) -> Message:
        return self.services.renderer.render(template, **context)


# `async def page(ctx, *, targets: list[str], message: str, ack: timedelta | None, urgent: bool)`:
# the context, then one keyword argument per declared parameter, typed as it parses.
Handler = Callable[..., Awaitable[Message | None]]


def check_handler(name: str, handler: Handler, signature: Signature) -> None:
    """Refuse, at import, a handler whose keyword parameters differ from the declaration.

    mypy checks each handler against its annotations; this checks the annotations against what
    the declared arguments parse to, so that the two cannot drift apart.
    """
    declared = signature.types()
    parameters = list(inspect.signature(handler).parameters.values())[1:]
    keywords = {p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}
    if keywords != set(declared) or len(parameters) != len(keywords):
        raise TypeError(
            f"`{name}` declares {sorted(declared)} but its handler takes "
            f"{[p.name for p in parameters]} (keyword-only, after the context)"
        )
    hints = typing.get_type_hints(handler)
    for keyword, kind in declared.items():
        if hints.get(keyword) != kind:
            raise TypeError(
                f"`{name}`: `{keyword}` parses to {kind}, annotated {hints.get(keyword)}"
            )


@dataclass(frozen=True)
class CommandSpec:
    name: str
    role: Role
    summary: str
    example: str
    handler: Handler
    signature: Signature = field(default_factory=Signature)
    any_age: bool = False  # an answer (ack) stays true however late it is handled
    hidden: bool = False  # internal (a reply routed to its handler): not in help
    # Its answer shows activation content (status, pages, contacts, exports): refused in a room
    # where someone outside the directory is joined or invited.
    confidential: bool = False

    def usage(self, prefix: str) -> str:
        args = self.signature.usage()
        return f"{prefix} {self.name} {args}".rstrip()


class CommandFamily:
    """A module's list of commands, filled by the `command` decorator."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.commands: list[CommandSpec] = []

    def command(
        self,
        name: str,
        *,
        role: Role,
        summary: str,
        example: str,
        params: Iterable[Param] = (),
        options: Iterable[Option | Flag] = (),
        any_age: bool = False,
        hidden: bool = False,
        confidential: bool = False,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            signature = Signature(tuple(params), tuple(options))
            check_handler(name, handler, signature)
            self.commands.append(
                CommandSpec(
                    name, role, summary, example, handler, signature, any_age, hidden, confidential
                )
            )
            return handler

        return register


class Registry:
    def __init__(self, families: Iterable[CommandFamily]) -> None:
        self._by_name: dict[str, CommandSpec] = {}
        for family in families:
            for spec in family.commands:
                if spec.name in self._by_name:
                    raise ValueError(f"command `{spec.name}` declared twice")
                self._by_name[spec.name] = spec

    def __iter__(self) -> Iterator[CommandSpec]:
        """The commands people can type, by name."""
        return iter(
            sorted((s for s in self._by_name.values() if not s.hidden), key=lambda s: s.name)
        )

    def get(self, name: str) -> CommandSpec | None:
        spec = self._by_name.get(name.lower().strip())
        return spec if spec is not None and not spec.hidden else None

    def match(self, text: str) -> tuple[CommandSpec | None, str, str]:
        """Split `round schedule daily 09:00` into (spec, argument text, typed name).

        The longest declared name wins, so `log correct …` is not read as `log` with text.
        """
        stripped = text.strip()
        for size in (2, 1):
            found = re.match(r"(\S+)" + r"\s+(\S+)" * (size - 1) + r"(?=\s|$)", stripped)
            if found is None:
                continue
            name = " ".join(found.groups()).lower()
            spec = self._by_name.get(name)
            if spec is not None:
                return spec, stripped[found.end() :].strip(), name
        first = stripped.split(None, 1)
        typed = first[0].lower() if first else ""
        return None, "", typed if len(typed) <= 40 else typed[:40] + "…"  # it is quoted back

    def visible_to(self, role: Role) -> list[CommandSpec]:
        return [spec for spec in self if role.allows(spec.role)]

    def suggest(self, name: str) -> str | None:
        typed = [s.name for s in self]
        names = typed + sorted({n.split()[0] for n in typed})
        hits = difflib.get_close_matches(name.lower(), names, n=1, cutoff=0.6)
        return hits[0] if hits else None


def split_command(body: str, prefix: str, aliases: dict[str, str]) -> str | None:
    """The command text after the prefix (`!icc` or `/icc`), or None if this is not a command.

    `aliases` maps a short form such as `!ack` to the command words it stands for.
    """
    stripped = body.lstrip()
    first, _, rest = stripped.partition(" ")
    first_line, newline, after = first.partition("\n")
    if newline:  # `!icc\nhelp`: the prefix may be followed by a line break
        first, rest = first_line, after + (" " + rest if rest else "")
    word = first.lower()
    bare = prefix.lstrip("!/").lower()
    if word in (prefix.lower(), f"!{bare}", f"/{bare}"):
        return rest.strip()
    if word in aliases:
        return f"{aliases[word]} {rest}".strip()
    return None

"""The command registry: each family in `bot/commands/` declares its commands here.

A declaration carries everything a person needs — name, role, arguments, summary, example — so
`help`, usage lines and the role check are all generated from it, never written twice.

Besides commands, a family may take the events people send without typing a command: a reply to
one of the bot's messages, a reaction, a redaction (`CommandFamily.on`). Those are passive: never
in help, never refused with a usage line, one handler per kind.
"""

from __future__ import annotations

import difflib
import inspect
import re
import typing
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from bot.activations.asked import Said
from bot.chat.args import Flag, Option, Param, Signature
from bot.directory.roles import Role
from bot.render import Message

if TYPE_CHECKING:
    from bot.directory.model import Contact
    from bot.services import Services
    from bot.storage.models import ActivationRow


@dataclass(frozen=True)
class Reply:
    """An answer about a given activation, or explicitly about none: the dispatcher frames it
    with that activation's TLP and exercise markers (or not at all), whatever the room. A plain
    `Message` is framed with the activation of the room it is answered in."""

    message: Message
    about: ActivationRow | None


class Via(StrEnum):
    """How an event reached a handler."""

    COMMAND = "command"  # typed with the prefix
    EDIT = "edit"  # an edited command: never run again, the sender is told so
    REPLY = "reply"  # a plain reply to one of the bot's messages
    REACTION = "reaction"  # an annotation on one of them
    REDACTION = "redaction"  # something taken back, perhaps a reaction
    # An edit of something that was not a command: perhaps a reply the bot took (an input, an
    # update in a round's thread), which the reply's family takes again as a new version.
    REVISION = "revision"


PASSIVE = (Via.REPLY, Via.REACTION, Via.REDACTION, Via.REVISION)


@dataclass(frozen=True)
class CommandContext:
    """What a handler knows about the event it handles: who, where, how it came.

    For a passive event, `relates_to` is the event replied or reacted to, or the one redacted,
    and `text` the reply's body or the reaction's key.
    """

    services: Services
    sender: str
    role: Role
    contact: Contact | None
    room_id: str
    event_id: str
    sent_at: datetime
    relates_to: str | None = None
    thread_root: str | None = None  # the thread it was typed in
    via: Via = Via.COMMAND
    text: str = ""

    def render(self, template: str, /, **context: Any) -> Message:
        return self.services.renderer.render(template, **context)

    def said(self, text: str, via: str) -> Said:
        """`text`, as this event's sender wrote it, to be recorded as theirs."""
        return Said(self.sender, text, via, self.event_id, self.sent_at)


# `async def page(ctx, *, targets: list[str], message: str, ack: timedelta | None, urgent: bool)`:
# the context, then one keyword argument per declared parameter, typed as it parses.
Handler = Callable[..., Awaitable[Message | Reply | None]]
PassiveHandler = Callable[[CommandContext], Awaitable[Message | Reply | None]]


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
    # An edit of this command is a new version of what it sent (an input, an update): run
    # again, the latest counting, both kept. Any other edited command is never run again.
    revised_by_edit: bool = False
    # Its answer shows activation content (status, pages, contacts, exports): refused in a room
    # where someone outside the directory is joined or invited.
    confidential: bool = False
    # It writes nothing (a look-up): the sync loop may answer it before its inbox row is
    # committed (`bot.matrix.sync`). A crash in that moment answers it once more at the next
    # start, under the same transaction ID; a command that writes must never be marked so.
    reads_only: bool = False

    def usage(self, prefix: str) -> str:
        args = self.signature.usage()
        return f"{prefix} {self.name} {args}".rstrip()


@dataclass(frozen=True)
class PassiveSpec:
    via: Via
    role: Role
    handler: PassiveHandler
    accepts: Callable[[str], bool]


class CommandFamily:
    """A module's list of commands, filled by the `command` decorator."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.commands: list[CommandSpec] = []
        self.passive: list[PassiveSpec] = []

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
        confidential: bool = False,
        revised_by_edit: bool = False,
        reads_only: bool = False,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            signature = Signature(tuple(params), tuple(options))
            check_handler(name, handler, signature)
            self.commands.append(
                CommandSpec(
                    name,
                    role,
                    summary,
                    example,
                    handler,
                    signature,
                    any_age=any_age,
                    revised_by_edit=revised_by_edit,
                    confidential=confidential,
                    reads_only=reads_only,
                )
            )
            return handler

        return register

    def on(
        self, via: Via, *, role: Role, accepts: Callable[[str], bool] = lambda _: True
    ) -> Callable[[PassiveHandler], PassiveHandler]:
        """Take every `via` event (a reply, a reaction, a redaction) from people of `role` and
        up whose text (the reply's body, the reaction's key) `accepts` says is for the bot."""
        if via not in PASSIVE:
            raise ValueError(f"{via.value} is not a passive event")

        def register(handler: PassiveHandler) -> PassiveHandler:
            self.passive.append(PassiveSpec(via, role, handler, accepts))
            return handler

        return register


class Registry:
    def __init__(self, families: Iterable[CommandFamily]) -> None:
        self._by_name: dict[str, CommandSpec] = {}
        self._passive: dict[Via, PassiveSpec] = {}
        for family in families:
            for spec in family.commands:
                if spec.name in self._by_name:
                    raise ValueError(f"command `{spec.name}` declared twice")
                self._by_name[spec.name] = spec
            for taker in family.passive:
                if taker.via in self._passive:
                    raise ValueError(f"two handlers of {taker.via.value}s")
                self._passive[taker.via] = taker

    def __iter__(self) -> Iterator[CommandSpec]:
        """The commands people can type, by name."""
        return iter(sorted(self._by_name.values(), key=lambda s: s.name))

    def get(self, name: str) -> CommandSpec | None:
        return self._by_name.get(name.lower().strip())

    def passive(self, via: Via) -> PassiveSpec | None:
        """Who takes replies, reactions or redactions; None: the bot ignores them."""
        return self._passive.get(via)

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

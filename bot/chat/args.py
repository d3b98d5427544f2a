"""Command arguments: declared once, parsed from what a person typed, described in help.

A command declares its parameters (`Word`, `Text`, `Duration`, `Targets`, `Choice`, `Option`,
`Flag`); the same declaration parses the line and writes the usage line, so help never drifts from
behaviour. Free text keeps its exact spelling, line breaks included: only declared `--options` are
cut out of it (and NUL characters, which nobody types on purpose), so nothing a user typed is lost.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from keyword import iskeyword
from typing import Any, ClassVar

from bot.errors import UsageError
from bot.timeutil import parse_duration

QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’", "«": "»", "„": "“"}
# The longest argument text a command takes. An answer may quote what was typed, in its body and
# again, escaped, in its HTML; both must fit in one Matrix event (64 KiB, JSON-escaped), or the
# answer cannot be sent at all and the sender hears nothing.
MAX_LINE = 4000


@dataclass(frozen=True)
class Token:
    value: str
    quoted: bool
    start: int
    end: int


def tokenize(line: str) -> list[Token]:
    """Split on white space; a quote opens a quoted token only at the start of a word.

    So `don't` and `l'eau` stay words, while `"Flood in Liège"` is one token. A quote that is
    never closed is taken literally: prose such as `He said "no objection` must not be refused.
    """
    tokens: list[Token] = []
    i, n = 0, len(line)
    while i < n:
        if line[i].isspace():
            i += 1
            continue
        closing = QUOTES.get(line[i])
        end = line.find(closing, i + 1) if closing is not None else -1
        if end != -1:
            tokens.append(Token(line[i + 1 : end], True, i, end + 1))
            i = end + 1
            continue
        start = i
        while i < n and not line[i].isspace():
            i += 1
        tokens.append(Token(line[start:i], False, start, i))
    return tokens


# -- parameter kinds ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """A positional parameter. `parse` turns the token text into the value the handler gets."""

    name: str
    help: str = ""
    required: bool = True
    metavar: str = ""
    shown: str = ""  # the usage text itself, where the generated one would mislead
    produces: ClassVar[Any] = str  # the type `parse` returns: the handler's parameter type

    def parse(self, text: str) -> Any:
        return text

    def usage(self) -> str:
        if self.shown:
            return self.shown
        label = f"<{self.metavar or self.name}>"
        return label if self.required else f"[{label}]"


@dataclass(frozen=True)
class Word(Param):
    pass


@dataclass(frozen=True)
class Text(Param):
    """The rest of the line, exactly as typed (minus declared options)."""


@dataclass(frozen=True)
class Duration(Param):
    produces: ClassVar[Any] = timedelta

    def parse(self, text: str) -> timedelta:
        try:
            return parse_duration(text)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc


@dataclass(frozen=True)
class Number(Param):
    """A whole number from 1 up (a page, a count)."""

    produces: ClassVar[Any] = int

    def parse(self, text: str) -> int:
        if not text.isdecimal() or int(text) < 1:  # isdigit() also takes ² , which int() refuses
            raise UsageError(f"`{text}` is not a whole number from 1 up")
        return int(text)


@dataclass(frozen=True)
class Choice(Param):
    choices: tuple[str, ...] = ()

    def parse(self, text: str) -> str:
        return parse_choice(self.name, text, self.choices)

    def usage(self) -> str:
        label = "|".join(self.choices)
        return f"<{label}>" if self.required else f"[{label}]"


@dataclass(frozen=True)
class Targets(Param):
    """Comma-separated directory keys; `ercc, benelux` (with spaces after commas) works too."""

    produces: ClassVar[Any] = list[str]

    def parse(self, text: str) -> list[str]:
        keys = [part.strip().lower() for part in text.split(",")]
        keys = [k for k in keys if k]
        if not keys:
            raise UsageError("no targets given; name contact handles, organisations or groups")
        bad = [k for k in keys if not re.fullmatch(r"[a-z0-9][a-z0-9._\-@:]*", k)]
        if bad:
            raise UsageError(f"`{bad[0]}` is not a directory key (letters, digits, . _ -)")
        return list(dict.fromkeys(keys))


@dataclass(frozen=True)
class Option:
    """`--name value`; `parse` converts the value (a Param does the work)."""

    name: str
    value: Param
    default: Any = None
    help: str = ""
    required: bool = False  # an option the command cannot do without (`--until`)

    def usage(self) -> str:
        shown = f"--{self.name} {self.value.metavar or self.value.name}"
        return shown if self.required else f"[{shown}]"

    @property
    def produces(self) -> Any:
        """Its value's type; `T | None` when it may be left out and has no default."""
        kind = self.value.produces
        return kind | None if self.default is None and not self.required else kind


@dataclass(frozen=True)
class Flag:
    name: str
    help: str = ""
    produces: ClassVar[Any] = bool

    def usage(self) -> str:
        return f"[--{self.name}]"


def parse_choice(name: str, text: str, choices: Sequence[str]) -> str:
    lowered = text.lower()
    if lowered in choices:
        return lowered
    hint = difflib.get_close_matches(lowered, choices, n=1)
    suggestion = f" Did you mean `{hint[0]}`?" if hint else ""
    raise UsageError(f"`{text}` is not a valid {name}: one of {', '.join(choices)}.{suggestion}")


# -- the signature --------------------------------------------------------------------------------


def keyword(name: str) -> str:
    """The handler's keyword for an argument: `--dry-run` is `dry_run`, `--with` is `with_`."""
    word = name.replace("-", "_")
    return f"{word}_" if iskeyword(word) else word


@dataclass(frozen=True)
class Signature:
    params: tuple[Param, ...] = ()
    options: tuple[Option | Flag, ...] = field(default=())

    def types(self) -> dict[str, Any]:
        """{keyword: type} of what `parse` returns: what the handler must declare."""
        types = {
            keyword(p.name): p.produces if p.required else p.produces | None for p in self.params
        }
        return types | {keyword(o.name): o.produces for o in self.options}

    def usage(self) -> str:
        return " ".join([p.usage() for p in self.params] + [o.usage() for o in self.options])

    def parse(self, line: str) -> dict[str, Any]:
        """Parse the argument part of a command line into {keyword: value}; raise UsageError.

        NUL characters are dropped first: invisible, never meant, and PostgreSQL cannot store
        them in text (the command would fail as if the database were down).
        """
        line = line.replace("\x00", "")
        if len(line.strip()) > MAX_LINE:
            raise UsageError(
                f"That is {len(line.strip()):,} characters; a command takes at most "
                f"{MAX_LINE:,}. Shorten it, or split it over several commands."
            )
        tokens = tokenize(line)
        values, remaining = self._take_options(line, tokens)
        missing = [o for o in self.options if isinstance(o, Option) and o.required]
        for option in missing:
            if values[option.name] is None:
                raise UsageError(f"missing {option.usage()}")
        values.update(self._take_positionals(line, remaining))
        return {keyword(name): value for name, value in values.items()}

    def _take_options(self, line: str, tokens: list[Token]) -> tuple[dict[str, Any], list[Token]]:
        by_name = {o.name: o for o in self.options}
        values: dict[str, Any] = {
            o.name: (False if isinstance(o, Flag) else o.default) for o in self.options
        }
        remaining: list[Token] = []
        i = 0
        while i < len(tokens):
            token = tokens[i]
            if token.quoted or not token.value.startswith("--") or len(token.value) < 3:
                remaining.append(token)
                i += 1
                continue
            name, _, inline = token.value[2:].partition("=")
            option = by_name.get(name.lower())
            if option is None:
                raise UsageError(_unknown_option(name, list(by_name)))
            if isinstance(option, Flag):
                values[option.name] = True
                i += 1
                continue
            if isinstance(option.value, Text):  # free text: to the next option or the end
                end = self._phrase_end(tokens, i + 1)
                words = tokens[i + 1 : end]
                raw = " ".join([inline, _raw_text(line, words)] if words else [inline]).strip()
                if not raw:
                    raise UsageError(f"--{option.name} needs a value: {option.usage()}")
                i = end
            elif inline:
                raw = inline
                i += 1
            elif i + 1 < len(tokens):
                raw = tokens[i + 1].value
                i += 2
            else:
                raise UsageError(f"--{option.name} needs a value: {option.usage()}")
            values[option.name] = option.value.parse(raw)
        return values, remaining

    def _phrase_end(self, tokens: list[Token], start: int) -> int:
        """Where a free-text option's value ends: at the next declared `--option`."""
        names = {o.name for o in self.options}
        for index in range(start, len(tokens)):
            token = tokens[index]
            name = token.value[2:].partition("=")[0].lower()
            if not token.quoted and token.value.startswith("--") and name in names:
                return index
        return len(tokens)

    def _take_positionals(self, line: str, tokens: list[Token]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        i = 0
        for param in self.params:
            if i >= len(tokens):
                if param.required:
                    raise UsageError(f"missing {param.usage()}")
                values[param.name] = None
                continue
            if isinstance(param, Text):
                values[param.name] = _raw_text(line, tokens[i:])
                i = len(tokens)
            elif isinstance(param, Targets):
                j = i
                while tokens[j].value.endswith(",") and j + 1 < len(tokens):
                    j += 1
                values[param.name] = param.parse(" ".join(t.value for t in tokens[i : j + 1]))
                i = j + 1
            else:
                values[param.name] = param.parse(tokens[i].value)
                i += 1
        if i < len(tokens):
            extra = " ".join(t.value for t in tokens[i:])
            raise UsageError(f"unexpected `{extra[:60]}`")
        return values


def _raw_text(line: str, tokens: list[Token]) -> str:
    """The text the tokens span in `line`, with option tokens (already removed) cut out."""
    if len(tokens) == 1 and tokens[0].quoted:
        return tokens[0].value
    pieces: list[str] = []
    for index, token in enumerate(tokens):
        if index and tokens[index - 1].end != token.start:
            gap = line[tokens[index - 1].end : token.start]
            pieces.append(gap if gap.strip() == "" else " ")
        pieces.append(line[token.start : token.end])
    return "".join(pieces).strip()


def _unknown_option(name: str, known: list[str]) -> str:
    if not known:
        return f"this command takes no options (`--{name}`)"
    hint = difflib.get_close_matches(name, known, n=1)
    suggestion = f"; did you mean --{hint[0]}?" if hint else ""
    return f"unknown option --{name}{suggestion} (options: {', '.join('--' + k for k in known)})"

"""The shape of `directory.yaml`: its sections, the fields of each entry, the type of each, and
the JSON Schema editors check the file against (`icc-bot directory schema`).

The models refuse any key they do not declare. Before them a typo (`langauges:`, `backups:`, a
top-level `group:`) was an unknown key, ignored: that contact silently got English and no
backup. What the values mean (an organisation that exists, a backup that is a contact, a time
zone) is checked after the shape, in `model.py`, with the same problem lines.

A file with shape problems is still read as far as it goes (`Shape`: each entry without the keys
that were wrong), so the checks after it run too and an operator sees every problem at once.
Problems point at lines of the file through `Positions`, which reads the YAML nodes themselves.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.json_schema import WithJsonSchema
from pydantic_core import ErrorDetails

from bot.directory.roles import Role
from bot.settings import MATRIX_USER_ID

ORGANISATION_KINDS = ("national", "eu", "nato", "benelux", "embassy", "international", "other")
LANGUAGES = ("en", "fr", "nl", "de")
CHANNELS = ("matrix", "email", "sms")  # how a person can be reached, tried in their order
ROLES = tuple(role.value for role in Role if role is not Role.STRANGER)
KEY = r"[a-z0-9][a-z0-9._\-]*"
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

Where = tuple[str | int, ...]  # where in the file, as pydantic says it: ("contacts", 3, "backup")


def _text(**schema: Any) -> WithJsonSchema:
    """What an editor is told a text field may hold; the bot's own check is in `model.py`, with
    its own wording, so the models take any text here."""
    return WithJsonSchema({"type": "string", **schema})


Key = Annotated[str, _text(pattern=f"^{KEY}$")]
Kind = Annotated[str, _text(enum=list(ORGANISATION_KINDS))]
RoleName = Annotated[str, _text(enum=list(ROLES))]
Language = Annotated[str, _text(enum=list(LANGUAGES))]
MatrixId = Annotated[str, _text(pattern=MATRIX_USER_ID.pattern)]


def _listed(value: object) -> object:
    """`languages: fr` is read as `[fr]`, as it always was."""
    return [value] if isinstance(value, str) else value


def _one_or_many(item: dict[str, Any]) -> WithJsonSchema:
    return WithJsonSchema({"anyOf": [{"type": "array", "items": item}, item, {"type": "null"}]})


Languages = Annotated[
    list[Language] | None,
    BeforeValidator(_listed),
    _one_or_many({"type": "string", "enum": list(LANGUAGES)}),
]
Channels = Annotated[
    list[Annotated[str, _text(enum=list(CHANNELS))]] | None,
    BeforeValidator(_listed),
    _one_or_many({"type": "string", "enum": list(CHANNELS)}),
]
Groups = Annotated[
    list[Key] | None,
    BeforeValidator(_listed),
    _one_or_many({"type": "string", "pattern": f"^{KEY}$"}),
]

# Every key declared, nothing else taken; text is text (an unquoted `no` or `12` is not).
M = TypeVar("M", bound=BaseModel)

ENTRY = ConfigDict(extra="forbid", strict=True, frozen=True)


class OrganisationEntry(BaseModel):
    """One organisation under `organisations:`."""

    model_config = ENTRY | ConfigDict(title="organisation")

    key: Key = Field(description="what targets and contacts call it: nccn, ercc, nl-ncc")
    name: str | None = Field(None, description="its full name (default: the key)")
    kind: Kind | None = Field(None, description="what it is (default: other)")
    country: str | None = Field(None, description="BE, EU, NATO, …")


class ContactEntry(BaseModel):
    """One person under `contacts:`."""

    model_config = ENTRY | ConfigDict(title="contact")

    handle: Key = Field(description="how commands name them: amertens")
    name: str | None = Field(None, description="their name (default: the handle)")
    organisation: Key = Field(description="the key of their organisation")
    matrix_id: MatrixId | None = Field(
        None,
        description="their Matrix user ID: @name:server (none for someone reached only by "
        "e-mail or SMS)",
    )
    role: RoleName | None = Field(None, description="what they may do (default: partner)")
    languages: Languages = Field(
        None, description="the languages they are written to in, preferred first (default: en)"
    )
    timezone: str | None = Field(
        None, description="IANA time zone (default: Europe/Brussels)", examples=["Europe/Paris"]
    )
    groups: Groups = Field(None, description="groups they belong to, declared under groups")
    backup: Key | None = Field(
        None, description="the handle of who is paged when they do not acknowledge"
    )
    email: str | None = Field(
        None, description="their e-mail address, for the email channel", examples=["a@b.example"]
    )
    phone: str | None = Field(
        None, description="their mobile number in E.164, for the sms channel", examples=["+32475"]
    )
    channels: Channels = Field(
        None,
        description="how to reach them, in order: matrix, email, sms (default: matrix, or for "
        "someone without a matrix_id the channels they have an address for); matrix, when "
        "listed, comes first; the next one is tried when the one before brought no "
        "acknowledgement in ICC_FALLBACK_AFTER",
    )


def _no_entries(value: object) -> object:
    """An empty section (`contacts:` with nothing under it) has no entries, as it always had."""
    return [] if value is None else value


def _no_groups(value: object) -> object:
    return {} if value is None else value


GroupTable = Annotated[
    dict[str, str | None],
    BeforeValidator(_no_groups),
    WithJsonSchema(
        {
            "type": "object",
            "propertyNames": {"pattern": f"^{KEY}$"},
            "additionalProperties": {"type": ["string", "null"]},
        }
    ),
]


class DirectoryFile(BaseModel):
    """`directory.yaml`: the ICC liaison bot's organisations, contacts and groups."""

    model_config = ENTRY | ConfigDict(title="ICC liaison directory")

    organisations: Annotated[list[OrganisationEntry], BeforeValidator(_no_entries)] = []
    contacts: Annotated[list[ContactEntry], BeforeValidator(_no_entries)] = []
    groups: GroupTable = Field(
        {}, description="group name: description; contacts list the groups they belong to"
    )


def json_schema() -> dict[str, Any]:
    """The JSON Schema of directory.yaml, for editors (`icc-bot directory schema`)."""
    return {"$schema": SCHEMA_DIALECT, **DirectoryFile.model_json_schema()}


SECTIONS: dict[str, type[BaseModel]] = {
    "organisations": OrganisationEntry,
    "contacts": ContactEntry,
}
NAMED_BY = {"organisations": "key", "contacts": "handle"}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the file: where (`path`, for its line), which entry, which field."""

    path: Where
    entry: str | None
    field: str | None
    message: str
    meant: str | None = None  # for an unknown key, the known key it most likely stands for

    @property
    def subject(self) -> Where:
        """The entry's field this is about (a list item's problem is its field's): a model's
        problem with a field stands for any later check of that same field."""
        return (
            self.path[:3] if len(self.path) > 1 and isinstance(self.path[1], int) else self.path[:2]
        )

    def line(self, positions: Positions | None) -> int | None:
        return positions.line(self.path) if positions else None

    def text(self, source: str, positions: Positions | None) -> str:
        number = self.line(positions)
        parts = [source, f"line {number}" if number else None, self.entry, self.field]
        return ": ".join([p for p in parts if p] + [self.message])


def entry_name(section: str, index: int, item: object) -> str:
    """`contacts[3] amertens`: the entry's place and, when it has one, its name."""
    name = item.get(NAMED_BY[section]) if isinstance(item, dict) else None
    return f"{section}[{index}] {name or '?'}" if isinstance(item, dict) else f"{section}[{index}]"


@dataclass
class Shape:
    """The file as far as it is well-formed: entries by their place in the file, each without
    the keys that were wrong (so the value checks and cross-entry checks run on the rest)."""

    organisations: list[tuple[int, OrganisationEntry]] = field(default_factory=list)
    contacts: list[tuple[int, ContactEntry]] = field(default_factory=list)
    groups: dict[str, str | None] = field(default_factory=dict)


def validated(model: type[M], raw: object) -> tuple[M | None, list[ErrorDetails]]:
    """`raw` read as `model`, or None and every error pydantic found (the directory's file and
    a playbook's are both read this way, then salvaged)."""
    try:
        return model.model_validate(raw), []
    except ValidationError as exc:
        return None, exc.errors(include_url=False)


def read_shape(raw: dict[str, Any]) -> tuple[Shape, list[Problem]]:
    """Validate the file's shape with the models; every problem found, and what is usable."""
    whole, errors = validated(DirectoryFile, raw)
    if whole is not None:
        return Shape(
            organisations=list(enumerate(whole.organisations)),
            contacts=list(enumerate(whole.contacts)),
            groups=dict(whole.groups),
        ), []
    problems = [_problem(raw, error) for error in errors]
    return _salvage(raw, [tuple(error["loc"]) for error in errors]), problems


def _salvage(raw: dict[str, Any], wrong: list[Where]) -> Shape:
    """What is left of the file once every key with a problem is set aside."""
    shape = Shape()
    top = {loc[0] for loc in wrong if len(loc) == 1}
    for section, model in SECTIONS.items():
        items = raw.get(section) if section not in top else None
        for index, item in enumerate(items or []):
            inside = [loc[2:] for loc in wrong if loc[:2] == (section, index)]
            entry = (
                _without(model, item, {str(loc[0]) for loc in inside if loc}) if inside else item
            )
            if entry is not None and () not in inside:
                try:
                    getattr(shape, section).append((index, model.model_validate(entry)))
                except ValidationError:  # nothing usable is left of it
                    continue
    groups = raw.get("groups") if "groups" not in top else None
    wrong_groups = {loc[1] for loc in wrong if len(loc) > 1 and loc[0] == "groups"}
    shape.groups = {k: v for k, v in (groups or {}).items() if k not in wrong_groups}
    return shape


def _without(model: type[BaseModel], item: object, keys: set[str]) -> dict[str, Any] | None:
    """The entry without `keys`; a required one among them is left empty, for the value checks
    to pass over (the model already said what is wrong with it)."""
    if not isinstance(item, dict):
        return None
    kept = {k: v for k, v in item.items() if str(k) not in keys}
    for name, info in model.model_fields.items():
        if info.is_required() and name not in kept:
            kept[name] = ""
    return kept


def _problem(raw: dict[str, Any], error: ErrorDetails) -> Problem:
    """A pydantic error as the operator reads it: entry, field, and what to do."""
    loc: Where = tuple(error["loc"])
    kind, value = error["type"], error["input"]
    if len(loc) == 1:
        name = str(loc[0])
        if kind == "extra_forbidden":
            return _unknown(loc, "top level", name, DirectoryFile)
        if name == "groups":
            return Problem(loc, "top level", name, "expected `name: description` pairs")
        if kind == "list_type":
            return Problem(loc, "top level", name, "expected a list of entries")
        return Problem(loc, "top level", name, _wrong(kind, value, str(error["msg"])))
    section = str(loc[0])
    if section == "groups":
        group = f"groups {loc[1]}"
        if loc[-1] == "[key]":
            return Problem(loc, group, "name", _wrong(kind, value, str(error["msg"])))
        return Problem(loc, group, "description", _wrong(kind, value, str(error["msg"])))
    index = int(loc[1])
    items = raw.get(section)
    entry = entry_name(section, index, items[index] if isinstance(items, list) else None)
    if len(loc) == 2:
        return Problem(loc, entry, None, "expected a mapping of fields")
    name = str(loc[2])
    if kind == "extra_forbidden":
        return _unknown(loc, entry, name, SECTIONS[section])
    return Problem(loc, entry, name, _wrong(kind, value, str(error["msg"])))


def _unknown(loc: Where, entry: str, key: str, model: type[BaseModel]) -> Problem:
    return Problem(loc, entry, key, *unknown_key(key, model))


def unknown_key(key: str, model: type[BaseModel]) -> tuple[str, str | None]:
    """What to say of a key `model` does not declare, and the key most likely meant (or the
    ones there are): the directory's, the rotas' and the playbooks' files say it alike."""
    known = [info.alias or name for name, info in model.model_fields.items()]
    close = difflib.get_close_matches(key.lower(), known, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean `{close[0]}`?", close[0]
    return f"unknown key; the keys here are {', '.join(known)}", None


def _wrong(kind: str, value: object, fallback: str) -> str:
    if kind == "missing":
        return "missing"
    if kind == "string_type":
        return f"expected text, got {shown(value)}"
    if kind == "list_type":
        return f"expected a list such as `[a, b]`, got {shown(value)}"
    return f"{fallback}, got {shown(value)}"


def shown(value: object) -> str:
    """A wrong value as the operator wrote it, or what YAML made of it (the rota's files say
    the same)."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return (
            "a yes/no value (YAML reads an unquoted yes, no, on, off, true or false that way);"
            " put the text in quotes"
        )
    if isinstance(value, int | float):
        return f"the number `{value}`; put it in quotes to make it text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"`{value}`"


class Positions:
    """Where each key and item of the file starts: the YAML nodes, kept with their marks."""

    def __init__(self, root: yaml.Node | None) -> None:
        self._root = root

    @classmethod
    def read(cls, text: str, loader: type[Any] = yaml.SafeLoader) -> Positions:
        """The node tree of `text` (composed, never constructed: no value is built)."""
        return cls(yaml.compose(text, Loader=loader))

    def line(self, path: Sequence[str | int]) -> int | None:
        """The 1-based line of the deepest part of `path` the file has: a key's own line, a list
        item's first line, or, for a key that is missing, the line of the entry it is missing
        from."""
        node = self._root
        if node is None:
            return None
        line = node.start_mark.line + 1
        for part in path:
            if isinstance(node, yaml.MappingNode):
                # The last of two equal keys is the one YAML keeps.
                for key, value in reversed(node.value):
                    if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                        line, node = key.start_mark.line + 1, value
                        break
                else:
                    return line
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if not 0 <= part < len(node.value):
                    return line
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return line
        return line

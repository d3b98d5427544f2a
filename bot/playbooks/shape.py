"""The shape of a playbook, `config/playbooks/<key>.yaml`, and the JSON Schema editors check it
with (`icc-bot directory schema playbook`).

```yaml
name:                         # one text, or a text per language: en (required), fr, nl, de
  en: Nuclear or radiological accident abroad
  fr: Accident nucléaire ou radiologique à l'étranger
description: What it is for, when to use it.
level: information-sharing    # as `activate --level` (default monitoring)
tlp: amber                    # as `activate --tlp` (default TLP:AMBER)
exercise: false               # as `activate --exercise`
invite: [national]            # directory groups invited into the activation room
checklist:                    # what must be done, by whom, by when after activation
  - text: {en: Confirm the ECURIE notification, fr: …, nl: …}
    owner: lead               # lead, member, or a handle, organisation, group, duty:<team>
    due: +15m                 # +30m, +2h, +1d
pages:                        # sent at once, as `page`
  - targets: [fanc, duty:ercc]
    text: {en: …, fr: …}
    ack: 10m                  # the ack deadline (default ICC_ACK_TIMEOUT; 5m when urgent)
    urgent: true
rounds:                       # as `round schedule` (`when: now`: as `round now`)
  - when: every 2h            # every 30m, daily 09:00, weekdays 08:30, a 5-field cron, now
    with: [icc, benelux]      # the participants (default: the ICC roster; in the DG room the DGs)
    room: here                # here (the activation room) or dg
    agenda: [Radiological situation, Protective actions abroad]
    window: 30m
    tz: Europe/Brussels
```

The models refuse any key they do not declare, like the directory's and the rotas'
(`bot.directory.shape`): a typo (`ownr:`, `checklists:`) would otherwise silently drop an owner
or a whole checklist. What the values mean (a target in the directory, a team with a rota, a
duration, a level) is checked after the shape, in `load.py`, with the same problem lines. A file
with shape problems is read as far as it goes: the keys that were wrong are set aside, so an
operator sees every problem at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.json_schema import WithJsonSchema
from pydantic_core import ErrorDetails

from bot.activations.activation import LEVELS, TLPS
from bot.directory.shape import (
    ENTRY,
    KEY,
    LANGUAGES,
    SCHEMA_DIALECT,
    Positions,
    Where,
    shown,
    unknown_key,
    validated,
)
from bot.playbooks.model import BASE_LANGUAGE
from bot.playbooks.problems import SECTIONS, TEXT_FIELDS, PlaybookProblem, place

E = TypeVar("E", bound=BaseModel)
ROOMS = ("here", "dg")
DURATION = r"^\d+\s*[smhdSMHD]$"  # as `parse_duration` reads it: 30s, 15m, 2h, 1d
TARGET = rf"^(duty:)?{KEY}$"


class Texts(BaseModel):
    """A text in the bot's languages (`bot.directory.shape.LANGUAGES`); English is required,
    the others fall back to it."""

    model_config = ENTRY | ConfigDict(title="texts")

    en: str
    fr: str | None = None
    nl: str | None = None
    de: str | None = None


def _one_text(value: object) -> object:
    """`text: Check the notification` is that text in every language (the English one, which
    the others fall back to)."""
    return {BASE_LANGUAGE: value} if isinstance(value, str) else value


def _listed(value: object) -> object:
    """`targets: fanc` is read as `[fanc]`."""
    return [value] if isinstance(value, str) else value


def _none_empty(value: object) -> object:
    """An empty section (`pages:` with nothing under it) has no entries."""
    return [] if value is None else value


def _string(**schema: Any) -> WithJsonSchema:
    """What an editor is told a text field may hold; the bot's own check is in `load.py`, with
    its own wording, so the models take any text here."""
    return WithJsonSchema({"type": "string", **schema})


def _one_or_many(item: dict[str, Any]) -> WithJsonSchema:
    return WithJsonSchema({"anyOf": [{"type": "array", "items": item}, item]})


TEXT_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "description": "the same text in every language"},
        {
            "type": "object",
            "description": "the text per language; English is required",
            "properties": {lang: {"type": "string"} for lang in LANGUAGES},
            "required": [BASE_LANGUAGE],
            "additionalProperties": False,
        },
    ]
}
Text = Annotated[Texts, BeforeValidator(_one_text), WithJsonSchema(TEXT_SCHEMA)]
Targets = Annotated[
    list[str],
    BeforeValidator(_listed),
    _one_or_many({"type": "string", "pattern": TARGET}),
]
Groups = Annotated[
    list[str], BeforeValidator(_listed), _one_or_many({"type": "string", "pattern": f"^{KEY}$"})
]
Agenda = Annotated[list[str], BeforeValidator(_listed), _one_or_many({"type": "string"})]
Duration = Annotated[str, _string(pattern=DURATION, examples=["15m", "2h"])]
# The forms `activate --tlp` takes that an editor should offer: the label, or its colour.
TLP_FORMS = [form for label in TLPS for form in (label, label[4:].lower(), label[4:])]


class ChecklistEntry(BaseModel):
    """One item under `checklist:`: an action the playbook creates."""

    model_config = ENTRY | ConfigDict(title="checklist item")

    text: Text = Field(description="what must be done")
    owner: Annotated[str, _string(pattern=rf"^(lead|member|duty:{KEY}|{KEY})$")] = Field(
        description="who does it: lead or member (the activation's lead, an ICC member), or a "
        "handle, organisation, group or duty:<team>",
        examples=["lead", "fpsfa", "duty:icc"],
    )
    due: Annotated[str, _string(pattern=r"^\+\s*\d+\s*[smhdSMHD]$")] = Field(
        description="when, after the activation opens: +15m, +2h, +1d", examples=["+30m"]
    )


class PageEntry(BaseModel):
    """One item under `pages:`: a page sent as the playbook is applied."""

    model_config = ENTRY | ConfigDict(title="page")

    targets: Targets = Field(
        description="handles, organisations, groups or duty:<team>", examples=[["fanc", "ercc"]]
    )
    text: Text = Field(description="what they must know and do")
    ack: Duration | None = Field(
        None, description="the ack deadline (default ICC_ACK_TIMEOUT; 5m when urgent)"
    )
    urgent: bool = Field(False, description="urgent: the 5-minute ack deadline, rung at once")


class RoundEntry(BaseModel):
    """One item under `rounds:`: a coordination round scheduled as the playbook is applied."""

    model_config = ENTRY | ConfigDict(title="round")

    when: Annotated[str, _string(examples=["every 2h", "daily 08:00", "0 9 * * 1-5", "now"])] = (
        Field(
            description="every 30m, daily 09:00, weekdays 08:30, a 5-field cron, or now (a round "
            "at once)"
        )
    )
    participants: Targets | None = Field(
        None,
        alias="with",
        description="who takes part, people on Matrix (default: the ICC roster; in the DG room, "
        "the DGs)",
    )
    room: Annotated[str, _string(enum=list(ROOMS))] = Field(
        "here", description="here (the activation room, default) or dg (the DG platform room)"
    )
    agenda: Agenda | None = Field(None, description="the agenda's items (default: the 4 questions)")
    window: Duration | None = Field(None, description="how long it runs (default 30m)")
    tz: str | None = Field(
        None, description="IANA time zone of `when` (default ICC_TIMEZONE)", examples=["UTC"]
    )


class PlaybookFile(BaseModel):
    """`config/playbooks/<key>.yaml`: a playbook of the ICC liaison bot."""

    model_config = ENTRY | ConfigDict(title="ICC playbook")

    name: Text = Field(description="what kind of crisis it is for")
    description: Text | None = Field(None, description="when to use it, what it does")
    level: Annotated[str, _string(enum=list(LEVELS))] | None = Field(
        None, description="the activation's level (default monitoring)"
    )
    tlp: Annotated[str, _string(enum=TLP_FORMS)] | None = Field(
        None, description="the activation's TLP (default TLP:AMBER)"
    )
    exercise: bool = Field(False, description="an exercise: every message marked, refs EX-")
    invite: Groups = Field([], description="directory groups invited into the activation room")
    checklist: Annotated[list[ChecklistEntry], BeforeValidator(_none_empty)] = []
    pages: Annotated[list[PageEntry], BeforeValidator(_none_empty)] = []
    rounds: Annotated[list[RoundEntry], BeforeValidator(_none_empty)] = []


MODELS: dict[str, type[BaseModel]] = {
    "checklist": ChecklistEntry,
    "pages": PageEntry,
    "rounds": RoundEntry,
}
# What stands in for a required key set aside for its problem, so the rest of its item is still
# checked (the key itself is not: its problem was said).
FILLERS: dict[str, object] = {
    "name": {BASE_LANGUAGE: ""},
    "text": {BASE_LANGUAGE: ""},
    "targets": [],
}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a playbook, for editors (`icc-bot directory schema playbook`)."""
    return {"$schema": SCHEMA_DIALECT, **PlaybookFile.model_json_schema()}


@dataclass
class Shape:
    """The file as far as it is well-formed: its own keys (`top`; its sections are read from
    the items below), and each section's items by their place in the file, without the keys
    that had a problem."""

    top: PlaybookFile
    checklist: list[tuple[int, ChecklistEntry]] = field(default_factory=list)
    pages: list[tuple[int, PageEntry]] = field(default_factory=list)
    rounds: list[tuple[int, RoundEntry]] = field(default_factory=list)


def read_shape(
    raw: object, file: str, positions: Positions
) -> tuple[Shape | None, list[PlaybookProblem]]:
    """The file's shape checked by the models: every problem, and what is usable (None: not
    even a mapping of keys)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        keys = ", ".join(PlaybookFile.model_fields)
        return None, [PlaybookProblem(file, 1, None, None, f"expected the keys {keys}")]
    whole, errors = validated(PlaybookFile, raw)
    if whole is not None:
        return Shape(
            whole,
            list(enumerate(whole.checklist)),
            list(enumerate(whole.pages)),
            list(enumerate(whole.rounds)),
        ), []
    problems = [_problem(error, file, positions) for error in errors]
    return _salvage(raw, [tuple(error["loc"]) for error in errors]), problems


def _salvage(raw: dict[Any, Any], wrong: list[Where]) -> Shape:
    """What is left of the file once every key with a problem is set aside."""
    bad = {loc[0] for loc in wrong if loc[0] not in SECTIONS or len(loc) == 1}
    top = {k: v for k, v in raw.items() if k not in bad and k not in SECTIONS}
    return Shape(
        PlaybookFile.model_validate(_filled(PlaybookFile, top)),
        _entries(raw.get("checklist"), ChecklistEntry, "checklist", wrong, bad),
        _entries(raw.get("pages"), PageEntry, "pages", wrong, bad),
        _entries(raw.get("rounds"), RoundEntry, "rounds", wrong, bad),
    )


def _entries(
    items: object, model: type[E], section: str, wrong: list[Where], bad: set[str | int]
) -> list[tuple[int, E]]:
    """A section's items, each without its keys that had a problem, with its place."""
    if section in bad or not isinstance(items, list):
        return []
    entries: list[tuple[int, E]] = []
    for index, item in enumerate(items):
        inside = [loc[2:] for loc in wrong if loc[:2] == (section, index)]
        if () in inside or not isinstance(item, dict):
            continue  # not a mapping of keys: nothing in it to check
        keys = {loc[0] for loc in inside}
        kept = _filled(model, {k: v for k, v in item.items() if k not in keys})
        try:
            entries.append((index, model.model_validate(kept)))
        except ValidationError:  # nothing usable is left of it
            continue
    return entries


def _filled(model: type[BaseModel], values: dict[Any, Any]) -> dict[Any, Any]:
    """`values` with a filler for each required key missing (its problem was said)."""
    for name, info in model.model_fields.items():
        key = info.alias or name
        if info.is_required() and key not in values:
            values[key] = FILLERS.get(key, "")
    return values


def _problem(error: ErrorDetails, file: str, at: Positions) -> PlaybookProblem:
    """A pydantic error as the operator reads it: the line, the item, the field, what to do."""
    loc: Where = tuple(error["loc"])
    kind, value = error["type"], error["input"]
    item, name = place(loc)

    def problem(message: str, meant: str | None = None) -> PlaybookProblem:
        return PlaybookProblem(file, at.line(loc), item, name, message, meant, loc)

    if name is None:
        return problem("expected a mapping of keys")
    inside_item = item is not None
    field_at = 2 if inside_item else 0
    key = str(loc[field_at])
    in_text = key in TEXT_FIELDS and len(loc) > field_at + 1 and isinstance(loc[-1], str)
    if kind == "extra_forbidden":
        if in_text:
            return problem(f"not a language of the bot; the languages are {', '.join(LANGUAGES)}")
        model: type[BaseModel] = MODELS[str(loc[0])] if inside_item else PlaybookFile
        return problem(*unknown_key(key, model))
    if kind == "missing":
        return problem("missing: every text has its English version" if in_text else "missing")
    if kind == "model_type" and key in TEXT_FIELDS:
        return problem(
            f"expected text, or a text per language ({', '.join(LANGUAGES)}), got {shown(value)}"
        )
    if kind == "list_type" and not inside_item and key in SECTIONS:
        return problem("expected a list of entries")
    if kind == "string_type":
        return problem(f"expected text, got {shown(value)}")
    if kind == "list_type":
        return problem(f"expected a list such as `[a, b]`, got {shown(value)}")
    if kind == "bool_type":
        return problem(f"expected true or false, got {shown(value)}")
    return problem(f"{error['msg']}, got {shown(value)}")

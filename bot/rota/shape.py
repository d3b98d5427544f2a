"""The shape of a YAML rota, `config/rota/<team>.yaml`, and the JSON Schema editors check it with.

```yaml
timezone: Europe/Brussels     # the team's zone (default: the bot's, ICC_TIMEZONE)
coverage: 24/7                # someone must always be on duty: a gap in the next 14 days warns
shifts:                       # the weekly pattern, in the team's zone
  - days: mon-fri             # mon … sun, ranges (fri-mon wraps), lists [sat, sun], daily
    from: "07:00"
    to: "19:00"               # a `to` not after `from` ends the next day; "24:00" is midnight
    who: amertens             # one handle, or a list: all of them on duty together
  - days: daily
    from: "19:00"
    to: "07:00"
    rotate: [jdupont, lpeeters]   # in turn, one week each (weeks from Monday) …
    starting: 2026-01-05          # … the first of them in the week of this date
  - from: sat 07:00           # no `days`: a weekday with each time, a shift of up to a week
    to: mon 07:00
    who: mrenard
overrides:                    # dated, in the team's zone unless they carry an offset
  - from: 2026-04-06 07:00
    to: 2026-04-06 19:00
    who: jdupont              # replaces whoever the pattern has on duty then
    note: An Mertens on leave
```

Every key is optional, and a file for a team whose shifts come from a calendar
(`<team>.ics` beside it) usually holds only `timezone`, `coverage` and `overrides`.

The models refuse any key they do not declare, like the directory's (`bot.directory.shape`): a
typo (`overides:`) would otherwise silently drop an override. What the values mean (a day, a
time, a person) is checked after the shape, in `weekly.py`, with the same problem lines. A file
with shape problems is read as far as it goes: the entries and keys that were wrong are set
aside, so an operator sees every problem at once.

YAML 1.1 reads an unquoted `19:00` as the number 1140 (base 60) and `2026-04-06` as a date:
both are taken back as the text that was written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.json_schema import WithJsonSchema
from pydantic_core import ErrorDetails

from bot.directory.shape import SCHEMA_DIALECT, Positions, shown, unknown_key
from bot.rota.problems import Findings

ROUND_THE_CLOCK = "24/7"
E = TypeVar("E", bound=BaseModel)
SECTIONS = ("shifts", "overrides")


def _listed(value: object) -> object:
    """`who: amertens` is read as `[amertens]`."""
    return [value] if isinstance(value, str) else value


def _clock(value: object) -> object:
    """An unquoted `19:00`, which YAML 1.1 reads as 19 × 60, back to the time it was."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 24 * 60:
        return f"{value // 60:02d}:{value % 60:02d}"
    return value


def _written(value: object) -> object:
    """An unquoted date (or date and time with seconds), which YAML reads as one, as text."""
    return value.isoformat(sep=" ") if isinstance(value, datetime) else _date(value)


def _date(value: object) -> object:
    return value.isoformat() if isinstance(value, date) else value


def _none_empty(value: object) -> object:
    """An empty section (`overrides:` with nothing under it) has no entries."""
    return [] if value is None else value


def _one_or_many(item: dict[str, Any]) -> WithJsonSchema:
    return WithJsonSchema({"anyOf": [{"type": "array", "items": item}, item]})


Names = Annotated[list[str], BeforeValidator(_listed), _one_or_many({"type": "string"})]
Clock = Annotated[
    str,
    BeforeValidator(_clock),
    WithJsonSchema({"type": "string", "examples": ["07:00", "mon 09:00"]}),
]
Moment = Annotated[
    str,
    BeforeValidator(_written),
    WithJsonSchema({"type": "string", "examples": ["2026-04-06 07:00"]}),
]
Day = Annotated[str, BeforeValidator(_date), WithJsonSchema({"type": "string", "format": "date"})]

# Every key declared, nothing else taken; text is text (an unquoted `no` or `12` is not).
ENTRY = ConfigDict(extra="forbid", strict=True, frozen=True)


class ShiftEntry(BaseModel):
    """One line of the weekly pattern under `shifts:`."""

    model_config = ENTRY | ConfigDict(title="shift")

    days: Names | None = Field(
        None, description="the days it starts on: mon-fri, [sat, sun], daily (or a weekday in from)"
    )
    start: Clock = Field(alias="from", description="when it starts: 07:00, or mon 07:00")
    end: Clock = Field(alias="to", description="when it ends: 19:00; not after from: the next day")
    who: Names | None = Field(None, description="the handle(s) on duty, together")
    rotate: Names | None = Field(None, description="handles on duty in turn, a week each")
    starting: Day | None = Field(None, description="a date in the first person's week")
    note: str | None = None


class OverrideEntry(BaseModel):
    """One dated override under `overrides:`: someone on duty instead of the pattern."""

    model_config = ENTRY | ConfigDict(title="override")

    start: Moment = Field(alias="from", description="local date and time: 2026-04-06 07:00")
    end: Moment = Field(alias="to", description="local date and time, after from")
    who: Names = Field(description="the handle(s) on duty, together")
    note: str | None = None


class RotaFile(BaseModel):
    """`config/rota/<team>.yaml`: a team's duty rota for the ICC liaison bot."""

    model_config = ENTRY | ConfigDict(title="ICC duty rota")

    timezone: str | None = Field(None, description="IANA zone of the team's times")
    coverage: Literal["24/7"] | None = Field(None, description="24/7: nobody on duty warns")
    shifts: Annotated[list[ShiftEntry], BeforeValidator(_none_empty)] = []
    overrides: Annotated[list[OverrideEntry], BeforeValidator(_none_empty)] = []


MODELS: dict[str, type[BaseModel]] = {"shifts": ShiftEntry, "overrides": OverrideEntry}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a YAML rota, for editors."""
    return {"$schema": SCHEMA_DIALECT, **RotaFile.model_json_schema()}


@dataclass
class Shape:
    """The file as far as it is well-formed: entries by their place in the file (for their
    lines), without the ones that had a problem."""

    timezone: str | None = None
    coverage: str | None = None
    shifts: list[tuple[int, ShiftEntry]] = field(default_factory=list)
    overrides: list[tuple[int, OverrideEntry]] = field(default_factory=list)


def read_shape(raw: object, findings: Findings, positions: Positions) -> Shape:
    """The file's shape checked by the models: every problem into `findings`, and what is
    usable (the entries and keys with no problem)."""
    if raw is None:
        return Shape()
    if not isinstance(raw, dict):
        findings.add(1, None, None, "expected keys timezone, coverage, shifts, overrides")
        return Shape()
    try:
        whole = RotaFile.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    else:
        shifts, overrides = list(enumerate(whole.shifts)), list(enumerate(whole.overrides))
        return Shape(whole.timezone, whole.coverage, shifts, overrides)
    for error in errors:
        _report(error, findings, positions)
    return _salvage(raw, [tuple(error["loc"]) for error in errors])


def _salvage(raw: dict[str, Any], wrong: list[tuple[str | int, ...]]) -> Shape:
    """The file without the top-level keys and the entries that had a problem."""
    top = {key: value for key, value in raw.items() if (key,) not in wrong}
    settings = RotaFile.model_validate({k: v for k, v in top.items() if k not in SECTIONS})
    return Shape(
        settings.timezone,
        settings.coverage,
        _entries(top.get("shifts"), ShiftEntry, "shifts", wrong),
        _entries(top.get("overrides"), OverrideEntry, "overrides", wrong),
    )


def _entries(
    items: object, model: type[E], section: str, wrong: list[tuple[str | int, ...]]
) -> list[tuple[int, E]]:
    """A section's entries that had no problem, each with its place in the file."""
    if not isinstance(items, list):
        return []
    bad = {loc[1] for loc in wrong if len(loc) > 1 and loc[0] == section}
    return [(i, model.model_validate(item)) for i, item in enumerate(items) if i not in bad]


def _report(error: ErrorDetails, findings: Findings, at: Positions) -> None:
    """A pydantic error as the operator reads it: the line, the entry, the field, what to do."""
    loc = tuple(error["loc"])
    line = at.line(loc)
    kind, value = error["type"], error["input"]
    if len(loc) == 2:
        findings.add(line, f"{loc[0]}[{loc[1]}]", None, "expected a mapping of keys")
        return
    entry = f"{loc[0]}[{loc[1]}]" if len(loc) > 2 else None
    name = str(loc[2] if len(loc) > 2 else loc[0])
    model: type[BaseModel] = RotaFile if entry is None else MODELS[str(loc[0])]
    if kind == "extra_forbidden":
        findings.add(line, entry, name, *unknown_key(name, model))
    elif kind == "missing":
        findings.add(line, entry, name, "missing")
    elif kind == "literal_error":
        findings.add(
            line, entry, name, f"expected `{ROUND_THE_CLOCK}` or nothing, got {shown(value)}"
        )
    elif kind == "list_type" and name in SECTIONS:
        findings.add(line, entry, name, "expected a list of entries")
    elif kind in ("string_type", "list_type"):
        wanted = "text" if kind == "string_type" else "a list such as `[a, b]`"
        findings.add(line, entry, name, f"expected {wanted}, got {shown(value)}")
    else:
        findings.add(line, entry, name, f"{error['msg']}, got {shown(value)}")

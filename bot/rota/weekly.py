"""A YAML rota (`shape.py` has its schema): its values read — days, times, people, dates — and
its weekly pattern and dated overrides expanded into shifts over a window.

Times are wall-clock times in the team's zone. A shift's end is its start's date plus the days
it spans, at its end time, turned into UTC only then: 07:00–19:00 is 07:00–19:00 on the days
the clocks change too (and the night across the change 11 or 13 hours long), never a fixed
number of hours. A wall time the clock skips or repeats is read as zoneinfo reads it (fold 0,
the offset before the change), alike for the shift that ends and the one that starts then, so
they still meet.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import PurePath
from zoneinfo import ZoneInfo

import yaml

from bot.directory.model import SAFE_LOADER
from bot.directory.shape import Positions, Where
from bot.rota.model import FixedShifts, Shift, Timetable
from bot.rota.people import People
from bot.rota.problems import Findings
from bot.rota.shape import ROUND_THE_CLOCK, OverrideEntry, ShiftEntry, read_shape
from bot.timeutil import load_zone

DAY = 24 * 60  # minutes
WEEK = 7 * DAY
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_NUMBER = {name: n for names in (WEEKDAYS, _FULL) for n, name in enumerate(names)}
_CLOCK = re.compile(r"^(?:([a-z]+)\s+)?([01]?\d|2[0-4]):([0-5]\d)$")
_TIMES = 'use HH:MM ("07:00") or a weekday and HH:MM ("mon 07:00")'
_NO_FORM = (
    'give `days:` and times (`from: "07:00"`), or no days and a weekday with each time'
    " (`from: mon 09:00`)"
)


@dataclass(frozen=True)
class WeeklyShift:
    """One line of the pattern: on each of `days` (0 = Monday), from `start` minutes after local
    midnight, for `span` minutes of wall-clock time; `people` together, or in turn a week each
    from the Monday `rotation`."""

    days: frozenset[int]
    start: int
    span: int
    people: tuple[str, ...]
    rotation: date | None
    source: str

    def on(self, day: date) -> tuple[str, ...]:
        """Who works this line's shift starting on `day`."""
        if self.rotation is None:
            return self.people
        turn = (day - self.rotation).days // 7
        return (self.people[turn % len(self.people)],)

    def times(self, day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """The shift starting on `day`, as UTC instants (wall-clock arithmetic first)."""
        midnight = datetime.combine(day, time(0))
        start = midnight + timedelta(minutes=self.start)
        end = start + timedelta(minutes=self.span)
        return _instant(start, zone), _instant(end, zone)


class WeeklyPattern:
    """The `shifts:` of a YAML rota, as a `Timetable`."""

    def __init__(self, team: str, zone: ZoneInfo, lines: Sequence[WeeklyShift]) -> None:
        self.team = team
        self.zone = zone
        self.lines = tuple(lines)

    def shifts(self, start: datetime, end: datetime) -> Iterator[Shift]:
        # A shift spans at most a week: one started 8 days before the window may still run.
        day = start.astimezone(self.zone).date() - timedelta(days=8)
        last = end.astimezone(self.zone).date()
        while day <= last:
            for line in self.lines:
                if day.weekday() not in line.days:
                    continue
                begin, finish = line.times(day, self.zone)
                if begin < end and finish > start:
                    for handle in line.on(day):
                        yield Shift(self.team, handle, begin, finish, line.source)
            day += timedelta(days=1)


@dataclass(frozen=True)
class YamlRota:
    """What a YAML rota says: its zone (None: not given), coverage, and its timetables."""

    zone: ZoneInfo | None
    round_the_clock: bool
    coverage_line: int | None
    timetables: tuple[Timetable, ...]


def read_yaml(
    text: str, team: str, people: People, findings: Findings, default_zone: ZoneInfo
) -> YamlRota | None:
    """Read a YAML rota; every problem into `findings` (None when it is not YAML at all).

    Times are read in the file's `timezone`, else `default_zone` (the calendar's beside it, or
    the bot's)."""
    try:
        raw = yaml.load(text, Loader=SAFE_LOADER)
        positions = Positions.read(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        findings.add(line, None, None, f"not valid YAML: {exc}".replace("\n", " "))
        return None
    return _Reader(team, people, findings, positions).read(raw, default_zone)


class _Reader:
    """One pass over a YAML rota; every problem is collected, none stops the pass."""

    def __init__(self, team: str, people: People, findings: Findings, at: Positions) -> None:
        self.team = team
        self.people = people
        self.findings = findings
        self.at = at
        self.file = PurePath(findings.file).name

    def problem(self, path: Where, field: str | None, message: str) -> None:
        entry = f"{path[0]}[{path[1]}]" if len(path) > 1 else None
        self.findings.add(self.at.line(path), entry, field, message)

    def read(self, raw: object, default_zone: ZoneInfo) -> YamlRota:
        shape = read_shape(raw, self.findings, self.at)
        zone = self._zone(shape.timezone)
        local = zone or default_zone
        lines = [line for i, entry in shape.shifts if (line := self._line(i, entry))]
        overrides = [s for i, entry in shape.overrides for s in self._override(i, entry, local)]
        timetables: list[Timetable] = []
        if lines:
            timetables.append(WeeklyPattern(self.team, local, lines))
        if overrides:
            timetables.append(FixedShifts(overrides))
        return YamlRota(
            zone=zone,
            round_the_clock=shape.coverage == ROUND_THE_CLOCK,
            coverage_line=self.at.line(("coverage",)),
            timetables=tuple(timetables),
        )

    def _zone(self, name: str | None) -> ZoneInfo | None:
        if name is None:
            return None
        try:
            return load_zone(name)
        except ValueError as exc:
            self.problem(("timezone",), "timezone", str(exc))
            return None

    def _line(self, index: int, entry: ShiftEntry) -> WeeklyShift | None:
        """One line of the pattern, or None (its problems said)."""
        at = ("shifts", index)
        times = self._times(at, entry)
        people = self._people(at, entry)
        rotates, rotation = self._rotation(at, entry)
        if times is None or people is None or (rotates and rotation is None):
            return None
        days, start, span = times
        source = f"{self.file} line {self.at.line(at)}"
        return WeeklyShift(days, start, span, people, rotation, source)

    def _times(self, at: Where, entry: ShiftEntry) -> tuple[frozenset[int], int, int] | None:
        """The line's days, start (minutes after midnight) and span (minutes of wall clock)."""
        start, end = self._clock(at, "from", entry.start), self._clock(at, "to", entry.end)
        days = self._days(at, entry.days) if entry.days is not None else None
        if start is None or end is None or (entry.days is not None and days is None):
            return None
        (start_day, start_minute), (end_day, end_minute) = start, end
        if days is not None and start_day is None and end_day is None:
            span = (end_minute - start_minute) % DAY or DAY
            return days, start_minute, span
        if entry.days is None and start_day is not None and end_day is not None:
            first, last = start_day * DAY + start_minute, end_day * DAY + end_minute
            return frozenset({start_day}), start_minute, (last - first) % WEEK or WEEK
        self.problem((*at, "days"), "days", _NO_FORM)
        return None

    def _clock(self, at: Where, key: str, text: str) -> tuple[int | None, int] | None:
        """`07:00` → (None, 420); `mon 09:00` → (0, 540); None (and a problem) otherwise."""
        match = _CLOCK.match(text.strip().lower())
        day = match.group(1) if match else None
        minutes = int(match.group(2)) * 60 + int(match.group(3)) if match else DAY + 1
        if match is None or minutes > DAY or (day is not None and day not in _DAY_NUMBER):
            self.problem((*at, key), key, f"`{text}` is not a time: {_TIMES}")
            return None
        return (_DAY_NUMBER[day] if day else None), minutes

    def _days(self, at: Where, names: list[str]) -> frozenset[int] | None:
        """`[mon-fri]`, `[sat, sun]`, `[daily]` → weekday numbers; None (and a problem)."""
        days: set[int] = set()
        for index, name in enumerate(names):
            try:
                days |= _day_range(name)
            except ValueError as exc:
                self.problem((*at, "days", index), "days", str(exc))
                return None
        return frozenset(days)

    def _people(self, at: Where, entry: ShiftEntry) -> tuple[str, ...] | None:
        """Who the line puts on duty (`who`, or in turn `rotate`); None (and a problem)."""
        if (entry.who is None) == (entry.rotate is None):
            self.problem(at, "who", "give `who:` (together) or `rotate:` (in turn), one of them")
            return None
        key = "who" if entry.who is not None else "rotate"
        return self._handles((*at, key), key, entry.who or entry.rotate or [])

    def _handles(self, at: Where, key: str, names: list[str]) -> tuple[str, ...] | None:
        handles: list[str] = []
        for index, name in enumerate(names):
            handle = self.people.handle(name)
            if handle is None:
                message, meant = self.people.refusal(name)
                entry = f"{at[0]}[{at[1]}]"
                self.findings.add(self.at.line((*at, index)), entry, key, message, meant)
            else:
                handles.append(handle)
        if not names:
            self.problem(at, key, "names nobody")
        return tuple(handles) if handles and len(handles) == len(names) else None

    def _rotation(self, at: Where, entry: ShiftEntry) -> tuple[bool, date | None]:
        """Whether the line rotates, and the Monday of its first turn (None, and a problem,
        when its `starting` is wrong or missing)."""
        if entry.rotate is None:
            if entry.starting is not None:
                self.problem((*at, "starting"), "starting", "only a `rotate:` line has a start")
            return False, None
        if entry.starting is None:
            self.problem(at, "starting", "missing: a date in the week the first of `rotate` is on")
            return True, None
        try:
            first = date.fromisoformat(entry.starting)
        except ValueError:
            wrong = f"`{entry.starting}` is not a date (2026-01-05)"
            self.problem((*at, "starting"), "starting", wrong)
            return True, None
        return True, first - timedelta(days=first.weekday())

    def _override(self, index: int, entry: OverrideEntry, zone: ZoneInfo) -> list[Shift]:
        """The override's shifts (one per person), or none (its problems said)."""
        at = ("overrides", index)
        start = self._moment((*at, "from"), "from", entry.start, zone)
        end = self._moment((*at, "to"), "to", entry.end, zone)
        people = self._handles((*at, "who"), "who", entry.who)
        if start is not None and end is not None and end <= start:
            self.problem((*at, "to"), "to", f"`{entry.end}` is not after `{entry.start}`")
            return []
        if start is None or end is None or people is None:
            return []
        source = f"{self.file} line {self.at.line(at)}"
        return [Shift(self.team, handle, start, end, source, override=True) for handle in people]

    def _moment(self, at: Where, key: str, text: str, zone: ZoneInfo) -> datetime | None:
        """A local date and time (an offset, if written, is kept) as a UTC instant."""
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            self.problem(at, key, f"`{text}` is not a date and time: use 2026-04-06 07:00")
            return None
        if moment.tzinfo is not None:
            return moment.astimezone(UTC)
        return _instant(moment, zone)


def _day_range(name: str) -> set[int]:
    """`mon`, `monday`, `mon-fri`, `fri-mon` (across the weekend), `daily` → weekday numbers."""
    text = name.strip().lower()
    if text in ("daily", "every day"):
        return set(range(7))
    first, _, last = text.partition("-")
    if first not in _DAY_NUMBER or (last and last not in _DAY_NUMBER):
        raise ValueError(
            f"`{name}` is not a day: use {', '.join(WEEKDAYS)}, a range (mon-fri) or daily"
        )
    start = _DAY_NUMBER[first]
    length = (_DAY_NUMBER[last] - start) % 7 + 1 if last else 1
    return {(start + n) % 7 for n in range(length)}


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """A wall-clock time in `zone` as a UTC instant."""
    return wall.replace(tzinfo=zone).astimezone(UTC)

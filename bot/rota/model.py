"""Who is on duty in a team at any instant: the team's shifts as one timeline, UTC inside.

A rota's files (`load.py`) describe shifts as people plan them — a weekly pattern, recurring
calendar events, dated overrides — in the team's zone. Here they are `Shift`s with aware UTC
ends, and a team's shifts are one timeline, built once and indexed:

- Recurrences are infinite, and expanding them is slow (recurring-ical-events takes ~20 ms for
  a year of one daily event), while the bot asks who is on duty at every page and every
  escalation step. So a rota is expanded once, over a bounded window (a day back, 400 days
  ahead of the moment it is built), and re-expanded on reload or by `renewed`. A question
  outside the window raises `OutsideWindow` rather than answering "nobody": an empty answer
  that is only an artefact of the window is the one answer a duty rota must never give.
- Overrides beat the pattern: where an override runs, the pattern's shifts are cut away, so
  every question (`on_duty`, `next_after`, `shifts_between`, `gaps`) reads the same timeline.
- A person's back-to-back shifts of one kind are one shift, so that "on duty until" is when
  they actually hand over.
- The timeline is cut into segments at every instant somebody comes or goes, each segment with
  the shifts that run through it: `on_duty` is one bisect over floats (bench/bench_rota.py).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import islice, takewhile
from typing import Protocol
from zoneinfo import ZoneInfo

DUTY = "duty:"  # a target naming a team's duty officer: duty:icc (resolved in duty.py)

WINDOW_BEFORE = timedelta(days=1)
WINDOW_AFTER = timedelta(days=400)


@dataclass(frozen=True)
class Shift:
    """One person on duty in one team from `start` up to (not including) `end`, both aware UTC."""

    team: str
    handle: str
    start: datetime
    end: datetime
    source: str  # where it is written, for the operator: `icc.yaml line 12`
    override: bool = False  # a dated override (or a one-off calendar event), not the pattern


@dataclass(frozen=True)
class Gap:
    """A stretch of time with nobody on duty."""

    start: datetime
    end: datetime


class Timetable(Protocol):
    """A source of shifts (a weekly pattern, a calendar, a list of overrides)."""

    def shifts(self, start: datetime, end: datetime) -> Iterable[Shift]:
        """Every shift that overlaps [start, end); one that began earlier is given whole."""
        ...


class FixedShifts:
    """Shifts given one by one (a YAML rota's overrides; later, those put in the database), as
    a `Timetable`."""

    def __init__(self, shifts: Iterable[Shift]) -> None:
        self.fixed = tuple(shifts)

    def shifts(self, start: datetime, end: datetime) -> list[Shift]:
        return [shift for shift in self.fixed if shift.start < end and shift.end > start]


class OutsideWindow(ValueError):
    """Asked about an instant the rota was not expanded for (see the module's docstring)."""


class Rota:
    """One team's duty timeline over a window; build a new one rather than changing it."""

    def __init__(
        self,
        team: str,
        zone: ZoneInfo,
        timetables: Sequence[Timetable],
        *,
        around: datetime,
        round_the_clock: bool = False,
    ) -> None:
        self.team = team
        self.zone = zone  # the team's zone: how its shifts are written and shown
        self.round_the_clock = round_the_clock  # `coverage: 24/7`: a gap is a warning
        self.around = _utc(around)
        self.start = self.around - WINDOW_BEFORE
        self.end = self.around + WINDOW_AFTER
        self._timetables = tuple(timetables)
        planned = [s for table in timetables for s in table.shifts(self.start, self.end)]
        self.shifts: tuple[Shift, ...] = tuple(_timeline(planned))
        self._starts = [shift.start.timestamp() for shift in self.shifts]
        self._longest = max((s.end - s.start for s in self.shifts), default=timedelta(0))
        self._moments, self._segments = _segments(self.shifts)
        self._points = [moment.timestamp() for moment in self._moments]
        self._bounds = (self.start.timestamp(), self.end.timestamp())

    def renewed(self, around: datetime, *, adding: Iterable[Shift] = ()) -> Rota:
        """The same rota expanded over the window around `around` (the files are not re-read),
        with `adding` shifts over it — overrides beat the pattern there too — and in its own
        renewals after (renew the rota read from the files to drop them)."""
        extra = tuple(adding)
        return Rota(
            self.team,
            self.zone,
            (*self._timetables, FixedShifts(extra)) if extra else self._timetables,
            around=around,
            round_the_clock=self.round_the_clock,
        )

    def on_duty(self, at: datetime) -> list[Shift]:
        """The shifts running at `at`: overrides where there are any, else the pattern's."""
        index = bisect_right(self._points, self._stamp(at)) - 1
        return list(self._segments[index]) if index >= 0 else []

    def relieved(self, handle: str, at: datetime) -> datetime | None:
        """When `handle`, on duty at `at`, goes off duty: the end of their shift, or of the
        shifts that follow it without a break (a weekend, an override, the night after); None
        when they are not on duty at `at` (or are still on at the window's end)."""
        index = bisect_right(self._points, self._stamp(at)) - 1
        if index < 0 or all(shift.handle != handle for shift in self._segments[index]):
            return None
        for later in range(index + 1, len(self._segments)):
            if all(shift.handle != handle for shift in self._segments[later]):
                return self._moments[later]
        return None

    def next_after(self, at: datetime, *, besides: Collection[str] = ()) -> list[Shift]:
        """The shifts that start first after `at` (all of those starting at that instant),
        leaving out people in `besides`: who is on next, or (besides the duty officer) the
        next person on the rota, their backup. Empty when nobody comes within the window."""
        later = (
            shift
            for shift in islice(self.shifts, bisect_right(self._starts, self._stamp(at)), None)
            if shift.handle not in besides
        )
        first = next(later, None)
        if first is None:
            return []
        return [first, *takewhile(lambda shift: shift.start == first.start, later)]

    def shifts_between(self, start: datetime, end: datetime) -> list[Shift]:
        """The shifts that overlap [start, end), in the order they start."""
        if end <= start:
            return []
        self._stamp(start)
        self._stamp(end, closing=True)
        low = bisect_left(self._starts, (start - self._longest).timestamp())
        high = bisect_left(self._starts, end.timestamp())
        return [shift for shift in self.shifts[low:high] if shift.end > start]

    def gaps(self, start: datetime, days: int = 14) -> list[Gap]:
        """The stretches of [start, start + days) with nobody on duty."""
        end = start + timedelta(days=days)
        found: list[Gap] = []
        covered = _utc(start)
        for shift in self.shifts_between(start, end):
            if shift.start > covered:
                found.append(Gap(covered, shift.start))
            covered = max(covered, shift.end)
        if covered < end:
            found.append(Gap(covered, _utc(end)))
        return found

    def _stamp(self, at: datetime, *, closing: bool = False) -> float:
        """`at` as a POSIX timestamp; refuses a naive time and one outside the window (its end
        is in it only as the `closing` end of a span)."""
        if at.tzinfo is None:
            raise ValueError("naive datetime: times inside the bot are UTC-aware")
        stamp = at.timestamp()
        low, high = self._bounds
        if not (low <= stamp < high or (closing and stamp == high)):
            raise OutsideWindow(
                f"the {self.team} rota is expanded from {self.start:%Y-%m-%d %H:%MZ} to"
                f" {self.end:%Y-%m-%d %H:%MZ}, not for {at.astimezone(UTC):%Y-%m-%d %H:%MZ};"
                " renew it"
            )
        return stamp


class Rotas:
    """Every team's rota in force, by team key (the file's name); never mutated, replaced whole."""

    def __init__(self, rotas: Mapping[str, Rota]) -> None:
        self._rotas = dict(sorted(rotas.items()))

    @classmethod
    def empty(cls) -> Rotas:
        return cls({})

    def teams(self) -> list[str]:
        return list(self._rotas)

    def __contains__(self, team: object) -> bool:
        return team in self._rotas

    def __getitem__(self, team: str) -> Rota:
        return self._rotas[team]

    def __len__(self) -> int:
        return len(self._rotas)

    def on_duty(self, team: str, at: datetime) -> list[Shift]:
        """Who is on duty in `team` at `at` (KeyError for a team with no rota)."""
        return self._rotas[team].on_duty(at)

    def next_after(self, team: str, handle: str, at: datetime) -> list[Shift]:
        """The next person on `team`'s rota after `handle`, from `at`: the backup of a duty
        officer whose contact names none."""
        return self._rotas[team].next_after(at, besides=(handle,))

    @property
    def expires(self) -> datetime | None:
        """When the first rota's window ends: renew before then."""
        return min((rota.end for rota in self._rotas.values()), default=None)

    def renewed(self, around: datetime) -> Rotas:
        """Every rota expanded again around `around`, from the files as they were read."""
        return Rotas({team: rota.renewed(around) for team, rota in self._rotas.items()})


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: times inside the bot are UTC-aware")
    return moment.astimezone(UTC)


def _timeline(planned: Iterable[Shift]) -> list[Shift]:
    """The shifts as they will be worked: each override whole, the pattern where no override
    runs, a person's back-to-back shifts of one kind joined; in the order they start."""
    real = [shift for shift in planned if shift.end > shift.start]
    overrides = [shift for shift in real if shift.override]
    cover = _union(overrides)
    pattern = [piece for shift in real if not shift.override for piece in _outside(shift, cover)]
    worked = _joined(overrides) + _joined(pattern)
    return sorted(worked, key=lambda shift: (shift.start, shift.end, shift.handle))


def _union(shifts: Iterable[Shift]) -> list[tuple[datetime, datetime]]:
    """The time the shifts cover, as sorted, disjoint intervals."""
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted((shift.start, shift.end) for shift in shifts):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _outside(shift: Shift, cover: list[tuple[datetime, datetime]]) -> Iterator[Shift]:
    """The parts of `shift` outside the `cover` intervals."""
    start = shift.start
    index = bisect_right(cover, shift.start, key=lambda interval: interval[1])
    while index < len(cover) and cover[index][0] < shift.end:
        if cover[index][0] > start:
            yield replace(shift, start=start, end=cover[index][0])
        start = max(start, cover[index][1])
        index += 1
    if start < shift.end:
        yield replace(shift, start=start)


def _joined(shifts: Iterable[Shift]) -> list[Shift]:
    """A person's overlapping or back-to-back shifts as one (the first one's source)."""
    joined: list[Shift] = []
    for shift in sorted(shifts, key=lambda s: (s.handle, s.start)):
        last = joined[-1] if joined else None
        if last is not None and last.handle == shift.handle and shift.start <= last.end:
            joined[-1] = replace(last, end=max(last.end, shift.end))
        else:
            joined.append(shift)
    return joined


def _segments(shifts: Sequence[Shift]) -> tuple[list[datetime], list[tuple[Shift, ...]]]:
    """Every instant somebody comes or goes, and who is on duty from it to the next."""
    points = sorted({s.start for s in shifts} | {s.end for s in shifts})
    coming: dict[datetime, list[int]] = {}
    going: dict[datetime, list[int]] = {}
    for index, shift in enumerate(shifts):
        coming.setdefault(shift.start, []).append(index)
        going.setdefault(shift.end, []).append(index)
    running: dict[int, Shift] = {}
    segments: list[tuple[Shift, ...]] = []
    for point in points:
        for index in going.get(point, ()):
            del running[index]
        for index in coming.get(point, ()):
            running[index] = shifts[index]
        segments.append(tuple(running[index] for index in sorted(running)))
    return points, segments

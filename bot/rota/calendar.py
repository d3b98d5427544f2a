"""A rota kept in a calendar and exported as `config/rota/<team>.ics` (Outlook, Google,
Nextcloud): who each event names, checked with the directory, and its events expanded by
recurring-ical-events (RRULE, RDATE, EXDATE, RECURRENCE-ID; icalendar unfolds long lines).

Who is on duty: the handles written in the event's SUMMARY (`Duty: amertens`, `amertens`,
`amertens + jdupont`). When the summary names no handle, its ATTENDEEs by e-mail address
(`people.py`: for now, the address's local part is the handle), leaving out those marked
ROLE=NON-PARTICIPANT or PARTSTAT=DECLINED. A summary that names someone wins over the attendee
list, because exported meetings list the rota's keeper and the organiser too. An event that
names nobody known is a problem on the line of its SUMMARY or ATTENDEE, with the handle most
likely meant.

Which event wins: a one-off event (no RRULE or RDATE, no RECURRENCE-ID) is an override: where
it runs it replaces the recurring events' shifts, because that is how a swap is entered in a
calendar. A moved or changed occurrence (RECURRENCE-ID) belongs to its series, an EXDATE
removes one, a cancelled event (STATUS:CANCELLED) is nobody's shift.

The team's zone: `timezone:` in `<team>.yaml` beside the calendar if it says one, else the
calendar's X-WR-TIMEZONE (Google), else the TZID of its first event (Outlook's Windows names,
`Romance Standard Time`, read as their IANA zone), else the bot's zone. It is the zone of
floating times and all-day events, and the zone the team's times are shown in; times with a
TZID or in UTC are what they say.

icalendar keeps no line numbers, so the text is read once more for the line each event's
properties begin on (`_event_lines`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import recurring_ical_events
from icalendar import Calendar, Component
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from bot.rota.model import Shift
from bot.rota.people import People
from bot.rota.problems import Findings
from bot.timeutil import load_zone

_PROPERTY = re.compile(r"[;:]")
_LEFT_OUT = {("ROLE", "NON-PARTICIPANT"), ("PARTSTAT", "DECLINED")}


def read_calendar(text: str, findings: Findings) -> Calendar | None:
    """The calendar in `text`, or None (and a problem) when it is not one."""
    try:
        calendar = Calendar.from_ical(text)
    except ValueError as exc:
        findings.add(None, None, None, f"not an iCalendar file: {exc}")
        return None
    if not isinstance(calendar, Calendar):
        findings.add(1, None, None, "not an iCalendar file: it must begin with BEGIN:VCALENDAR")
        return None
    return calendar


def declared_zone(calendar: Calendar) -> ZoneInfo | None:
    """The zone the calendar says it is kept in: X-WR-TIMEZONE, else its first event's TZID."""
    names = [str(calendar.get("X-WR-TIMEZONE", ""))]
    names += [dict(_params(event.get("DTSTART"))).get("TZID", "") for event in _events(calendar)]
    for name in filter(None, names):
        try:
            return load_zone(WINDOWS_TO_OLSON.get(name, name))
        except ValueError:
            continue
    return None


@dataclass(frozen=True)
class _Named:
    """Who one event names, and the names (property, its n-th line, text) that are nobody."""

    handles: tuple[str, ...]
    unknown: tuple[tuple[str, int, str], ...]


class CalendarRota:
    """A calendar's events as a `Timetable`; `check` reports who they name that is nobody."""

    def __init__(
        self, team: str, zone: ZoneInfo, calendar: Calendar, text: str, people: People, file: str
    ) -> None:
        self.team = team
        self.zone = zone
        self._calendar = calendar
        self._people = people
        self._file = file
        self._named: dict[tuple[Any, ...], _Named] = {}
        self._events = list(zip(_events(calendar), _event_lines(text), strict=False))
        self._series = {_uid(e) for e, _ in self._events if "RRULE" in e or "RDATE" in e}
        self._lines = {_changed(event): lines["BEGIN"][0] for event, lines in self._events}

    def check(self, findings: Findings) -> None:
        """Every event's times and people, each problem on its line."""
        for event, lines in self._events:
            entry = f"event {_shown(event)}"
            for prop, message in _time_problems(event):
                findings.add(_line(lines, prop), entry, prop, message)
            for prop, nth, name in self._name(event).unknown:
                message, meant = self._people.refusal(name) if name else (_NOBODY, None)
                findings.add(_line(lines, prop, nth), entry, prop, message, meant)

    def shifts(self, start: datetime, end: datetime) -> Iterator[Shift]:
        for event in recurring_ical_events.of(self._calendar).between(start, end):
            if str(event.get("STATUS", "")).upper() == "CANCELLED":
                continue
            begin, finish = self._utc(event["DTSTART"].dt), self._utc(event["DTEND"].dt)
            line = self._lines.get(_changed(event)) or self._lines.get((_uid(event), None))
            source = f"{self._file} line {line}" if line else self._file
            one_off = _uid(event) not in self._series
            for handle in self._name(event).handles:
                yield Shift(self.team, handle, begin, finish, source, override=one_off)

    def _name(self, event: Component) -> _Named:
        """Who `event` names (remembered by its summary and attendees: every occurrence of a
        series asks again)."""
        summary = str(event.get("SUMMARY", ""))
        attendees = event.get("ATTENDEE", [])
        attendees = attendees if isinstance(attendees, list) else [attendees]
        key = (summary, *((str(a), _params(a)) for a in attendees))
        if key not in self._named:
            self._named[key] = self._naming(summary, attendees)
        return self._named[key]

    def _naming(self, summary: str, attendees: list[Any]) -> _Named:
        in_summary = self._people.in_text(summary)
        if in_summary:
            return _Named(tuple(in_summary), ())
        handles: list[str] = []
        unknown: list[tuple[str, int, str]] = []
        for nth, attendee in enumerate(attendees):
            if any((k, v.upper()) in _LEFT_OUT for k, v in _params(attendee)):
                continue
            handle = self._people.by_address(str(attendee))
            if handle:
                handles.append(handle)
            else:
                unknown.append(("ATTENDEE", nth, str(attendee).removeprefix("mailto:")))
        if not handles and not unknown:
            unknown.append(("SUMMARY", 0, summary.rsplit(":", 1)[-1].strip()))
        return _Named(tuple(dict.fromkeys(handles)), tuple(unknown))

    def _utc(self, moment: date | datetime) -> datetime:
        """An event's start or end as a UTC instant: floating times and dates in the team's
        zone."""
        if not isinstance(moment, datetime):
            moment = datetime.combine(moment, time(0))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.zone)
        return moment.astimezone(UTC)


_NOBODY = "names nobody: write a handle in its summary (Duty: amertens)"


def _events(calendar: Calendar) -> list[Component]:
    return list(calendar.walk("VEVENT"))


def _time_problems(event: Component) -> Iterator[tuple[str, str]]:
    """What is wrong with the event's start and end, as far as can be told before expanding
    (recurring-ical-events would stop at the first, or read an unknown zone as UTC)."""
    start, end = _dt(event.get("DTSTART")), _dt(event.get("DTEND"))
    if start is None:
        yield "DTSTART", "missing or not a date and time: when does it start?"
        return
    for prop, moment in (("DTSTART", start), ("DTEND", end)):
        tzid = dict(_params(event.get(prop))).get("TZID")
        if tzid and isinstance(moment, datetime) and moment.tzinfo is None:
            yield prop, f"`{tzid}` is not a time zone: use an IANA name or a VTIMEZONE block"
    with suppress(TypeError):  # a date against a time: recurring-ical-events makes it work
        if end is not None and end < start:
            yield "DTEND", "ends before it starts"


def _dt(prop: Any) -> date | datetime | None:
    """A property's date or time; None when it is missing or broken (icalendar keeps what it
    cannot read, and raises on reading it)."""
    try:
        moment = getattr(prop, "dt", None)
    except ValueError:
        return None
    return moment if isinstance(moment, date) else None


def _params(prop: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in getattr(prop, "params", {}).items())


def _line(lines: dict[str, list[int]], prop: str, nth: int = 0) -> int:
    """The line of the `nth` `prop` of an event (its first line when it has none)."""
    found = lines.get(prop) or lines["BEGIN"]
    return found[min(nth, len(found) - 1)]


def _uid(event: Component) -> str:
    return str(event.get("UID", ""))


def _changed(event: Component) -> tuple[str, str | None]:
    """Which event or occurrence this is: its UID, and the instant its RECURRENCE-ID names
    (None: not a changed occurrence)."""
    return _uid(event), _instant(_dt(event.get("RECURRENCE-ID")))


def _instant(moment: date | datetime | None) -> str | None:
    if isinstance(moment, datetime) and moment.tzinfo is not None:
        return moment.astimezone(UTC).isoformat()
    return moment.isoformat() if moment is not None else None


def _shown(event: Component) -> str:
    summary = " ".join(str(event.get("SUMMARY", "")).split())
    return f'"{summary[:40]}"' if summary else str(event.get("UID", "?"))


def _event_lines(text: str) -> list[dict[str, list[int]]]:
    """For each VEVENT in the text, in order: the lines its properties begin on, by name
    (BEGIN: the event's first line). A folded line's continuation begins with a space or tab;
    properties of a VALARM inside the event are not the event's."""
    events: list[dict[str, list[int]]] = []
    inside: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line or line[0] in " \t":
            continue
        name = _PROPERTY.split(line, maxsplit=1)[0].upper()
        value = line.partition(":")[2].strip().upper()
        if name == "BEGIN":
            inside.append(value)
            if value == "VEVENT":
                events.append({"BEGIN": [number]})
        elif name == "END":
            if inside:
                inside.pop()
        elif inside and inside[-1] == "VEVENT" and events:
            events[-1].setdefault(name, []).append(number)
    return events

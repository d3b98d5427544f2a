"""Every team's rota from the rota folder (`config/rota/`), checked with the directory.

A team is the name of its files: `icc.yaml` is the rota of team `icc` (the `duty:icc` target).
A team has a YAML rota (`shape.py`), a calendar (`calendar.py`), or both: then the YAML file
gives the team's `timezone`, `coverage` and `overrides` (and any shifts of its own), the
calendar the rest.

Problems are the operator's to fix (an unknown person, a time that is not one, a file that does
not read); a team with any is left out of the `Rotas` returned, and — like a bad directory — the
caller should refuse the whole set and keep the one in force. Warnings do not stop anything:
a file in the folder that is not a rota, and for a `coverage: 24/7` team every stretch of the
next 14 days with nobody on duty.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

from icalendar import Calendar

from bot.directory.model import Directory
from bot.directory.shape import KEY
from bot.rota.calendar import CalendarRota, declared_zone, read_calendar
from bot.rota.model import Rota, Rotas, Timetable
from bot.rota.people import People
from bot.rota.problems import Findings, RotaProblem
from bot.rota.weekly import YamlRota, read_yaml
from bot.timeutil import format_local_utc, load_zone, utcnow

GAP_HORIZON = timedelta(days=14)
GAPS_SHOWN = 3  # a rota with every night uncovered warns in a few lines, not fourteen
SUFFIXES = (".yaml", ".ics")


class RotaLoad(NamedTuple):
    """What `load_rotas` found: the rotas of every team without problems, the problems, and
    the warnings."""

    rotas: Rotas
    problems: list[RotaProblem]
    warnings: list[RotaProblem]


def load_rotas(
    folder: Path,
    directory: Directory,
    *,
    now: datetime | None = None,
    zone: ZoneInfo | None = None,
) -> RotaLoad:
    """Read every `<team>.yaml` and `<team>.ics` in `folder` (none at all: no rotas), expanded
    around `now`; `zone` (the bot's ICC_TIMEZONE) is a team's zone when its files name none."""
    now = now or utcnow()
    zone = zone or load_zone("Europe/Brussels")
    people = People(directory)
    problems: list[RotaProblem] = []
    warnings: list[RotaProblem] = []
    rotas: dict[str, Rota] = {}
    for team, files in _teams(folder, problems, warnings).items():
        reader = _TeamReader(team, people, zone, now)
        rota = reader.read(files)
        problems += sorted(reader.problems, key=_in_file_order)
        warnings += reader.warnings
        if rota is not None and not reader.problems:
            rotas[team] = rota
    return RotaLoad(Rotas(rotas), problems, warnings)


def _in_file_order(problem: RotaProblem) -> tuple[str, int]:
    return problem.file, problem.line or 0


def _teams(
    folder: Path, problems: list[RotaProblem], warnings: list[RotaProblem]
) -> dict[str, dict[str, Path]]:
    """The folder's rota files by team, then by suffix; other files are warned about."""
    teams: dict[str, dict[str, Path]] = {}
    paths = sorted(folder.iterdir()) if folder.is_dir() else []
    for path in paths:
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix not in SUFFIXES:
            hint = "; rename it to .yaml" if path.suffix == ".yml" else ""
            warnings.append(
                RotaProblem(
                    str(path), None, None, None, f"not a rota (.yaml or .ics): ignored{hint}"
                )
            )
        elif not re.fullmatch(KEY, path.stem):
            message = f"`{path.stem}` cannot name a team: use lower-case letters, digits, . _ -"
            problems.append(RotaProblem(str(path), None, None, None, message))
        else:
            teams.setdefault(path.stem, {})[path.suffix] = path
    return teams


class _TeamReader:
    """One team's files read into its `Rota`, with their problems and warnings."""

    def __init__(self, team: str, people: People, zone: ZoneInfo, now: datetime) -> None:
        self.team = team
        self.people = people
        self.zone = zone
        self.now = now
        self.problems: list[RotaProblem] = []
        self.warnings: list[RotaProblem] = []

    def read(self, files: dict[str, Path]) -> Rota | None:
        calendar = self._calendar(files[".ics"]) if ".ics" in files else None
        calendar_zone = declared_zone(calendar[0]) if calendar else None
        settings = self._yaml(files[".yaml"], calendar_zone) if ".yaml" in files else None
        zone = (settings.zone if settings else None) or calendar_zone or self.zone
        timetables: list[Timetable] = list(settings.timetables) if settings else []
        if calendar is not None:
            findings = Findings(str(files[".ics"]))
            source, text = calendar
            events = CalendarRota(self.team, zone, source, text, self.people, files[".ics"].name)
            events.check(findings)
            self.problems += findings.problems
            timetables.append(events)
        if self.problems:
            return None
        rota = self._expand(files, zone, timetables, settings)
        if rota is not None and not rota.shifts:
            self._warn(next(iter(files.values())), None, "no shifts: nobody is ever on duty")
        if rota is not None and settings is not None and rota.round_the_clock:
            self._check_coverage(rota, files[".yaml"], settings)
        return rota

    def _calendar(self, path: Path) -> tuple[Calendar, str] | None:
        findings = Findings(str(path))
        text = self._text(path, findings)
        calendar = read_calendar(text, findings) if text is not None else None
        self.problems += findings.problems
        return (calendar, text) if calendar is not None and text is not None else None

    def _yaml(self, path: Path, calendar_zone: ZoneInfo | None) -> YamlRota | None:
        findings = Findings(str(path))
        text = self._text(path, findings)
        zone = calendar_zone or self.zone
        settings = read_yaml(text, self.team, self.people, findings, zone) if text else None
        self.problems += findings.problems
        return settings

    def _text(self, path: Path, findings: Findings) -> str | None:
        """The file's text (a byte-order mark, as Outlook writes one, left out)."""
        try:
            return path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            findings.add(None, None, None, f"cannot be read: {exc}")
            return None

    def _expand(
        self,
        files: dict[str, Path],
        zone: ZoneInfo,
        timetables: list[Timetable],
        settings: YamlRota | None,
    ) -> Rota | None:
        """The team's rota around now; a calendar whose recurrences cannot be expanded (an
        RRULE or EXDATE icalendar or recurring-ical-events cannot read) is a problem of its
        file."""
        try:
            return Rota(
                self.team,
                zone,
                timetables,
                around=self.now,
                round_the_clock=bool(settings and settings.round_the_clock),
            )
        except (ValueError, KeyError) as exc:
            file = str(files.get(".ics") or files[".yaml"])
            self.problems.append(
                RotaProblem(file, None, None, None, f"its events cannot be expanded: {exc}")
            )
            return None

    def _check_coverage(self, rota: Rota, path: Path, settings: YamlRota) -> None:
        """For a 24/7 team, a warning for each stretch of the next 14 days nobody is on duty."""
        gaps = rota.gaps(self.now, days=GAP_HORIZON.days)
        for gap in gaps[:GAPS_SHOWN]:
            start = format_local_utc(gap.start, rota.zone, with_date=True)
            end = format_local_utc(gap.end, rota.zone, with_date=True)
            self._warn(path, settings.coverage_line, f"nobody on duty from {start} to {end}")
        if len(gaps) > GAPS_SHOWN:
            more = len(gaps) - GAPS_SHOWN
            self._warn(path, settings.coverage_line, f"and {more} more gaps in the next 14 days")

    def _warn(self, path: Path, line: int | None, message: str) -> None:
        field = "coverage" if line else None
        self.warnings.append(RotaProblem(str(path), line, None, field, message))

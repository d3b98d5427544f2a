"""Rota files written by tests: calendars as the calendar programs export them (CRLF lines,
VTIMEZONE blocks, long lines folded at 75 octets) and YAML rotas, read against the sample
directory."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import yaml

from bot.directory.model import Directory, parse_directory
from bot.rota.load import RotaLoad, load_rotas
from bot.timeutil import load_zone

REPO = Path(__file__).resolve().parent.parent.parent

BRUSSELS_VTIMEZONE = """BEGIN:VTIMEZONE
TZID:Europe/Brussels
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE"""


def z(text: str) -> datetime:
    """`2026-03-29T05:00` as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def sample_directory() -> Directory:
    raw = yaml.safe_load((REPO / "config" / "directory.yaml").read_text(encoding="utf-8"))
    return parse_directory(raw, source="directory.yaml")


def event(uid: str, start: str, end: str, *lines: str, tzid: str | None = "Europe/Brussels") -> str:
    """A VEVENT from `start` to `end` (`20260323T070000`, local to `tzid`; None: as written,
    floating or ending in Z) with further property lines."""
    zone = f";TZID={tzid}" if tzid else ""
    head = [f"UID:{uid}", f"DTSTART{zone}:{start}", f"DTEND{zone}:{end}"]
    return "\n".join(["BEGIN:VEVENT", *head, *lines, "END:VEVENT"])


def calendar(*events: str, header: tuple[str, ...] = (BRUSSELS_VTIMEZONE,)) -> str:
    """A whole .ics file, CRLF line ends as RFC 5545 has them."""
    parts = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//ICC tests//EN", *header, *events]
    return "\r\n".join("\n".join([*parts, "END:VCALENDAR"]).split("\n")) + "\r\n"


def fold(line: str, width: int = 75) -> str:
    """A content line folded as RFC 5545 folds long ones: CRLF and one space."""
    return "\n ".join(line[i : i + width] for i in range(0, len(line), width))


def load(folder: Path, files: dict[str, str], *, now: str = "2026-03-20T12:00") -> RotaLoad:
    """Write `files` (name: text) into `folder` and load them as of `now` (UTC)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return load_rotas(folder, sample_directory(), now=z(now), zone=load_zone("Europe/Brussels"))


def on_duty(result: RotaLoad, team: str, at: str) -> list[str]:
    """The handles on duty in `team` at `at` (UTC)."""
    return [shift.handle for shift in result.rotas.on_duty(team, z(at))]

"""Duty rota (issue 19): who is on duty now, for 20 teams with a year of weekly shifts each
(goal < 5 ms per resolution), and what loading those rotas costs.

Ten teams are calendars as a calendar program exports them (one VEVENT per weekly shift, with
a weekly RRULE over a year), ten are YAML rotas; each has 14 shifts a week (a day and a night,
seven days) and four people. A resolution is `rotas.on_duty(team, at)` for a random team at a
random instant of the coming year, timed one by one. For comparison, what the bot would pay
without the precomputed timeline: recurring-ical-events asked for the events at the instant
(`of(calendar).at(instant)`) at each question, on one of the calendars.

No homeserver involved: the suite runs it like the others (its server unused), and on its own
it starts none: .venv/bin/python -m bench.bench_rota [--quick]
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import recurring_ical_events
import yaml
from icalendar import Calendar

from bench.harness import Figure, Section, big_directory, fresh_work_dir, percentile
from bot.devserver import DevServer
from bot.directory.model import parse_directory
from bot.rota.load import load_rotas
from bot.rota.model import Rotas

TEAMS, PEOPLE, GOAL = 20, 4, 0.005
START = datetime(2026, 1, 5)  # a Monday: every team's first week
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _handles(team: int) -> list[str]:
    return [f"person-{team * PEOPLE + n}" for n in range(PEOPLE)]


def _calendar(team: int) -> str:
    """A team's weekly shifts, one VEVENT with a weekly RRULE for each (the rota expands a
    year and a month of them)."""
    events = []
    for day in range(7):
        for shift, (start, hours) in enumerate(((7, 12), (19, 12))):
            begin = START + timedelta(days=day, hours=start)
            end = begin + timedelta(hours=hours)
            who = _handles(team)[(day + shift) % PEOPLE]
            events += [
                "BEGIN:VEVENT",
                f"UID:t{team}-d{day}-s{shift}@bench",
                f"DTSTART;TZID=Europe/Brussels:{begin:%Y%m%dT%H%M%S}",
                f"DTEND;TZID=Europe/Brussels:{end:%Y%m%dT%H%M%S}",
                "RRULE:FREQ=WEEKLY",
                f"SUMMARY:Duty: {who}",
                "END:VEVENT",
            ]
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//bench//EN", *events, "END:VCALENDAR"]
    return "\r\n".join(lines) + "\r\n"


def _yaml(team: int) -> str:
    """The same pattern as a YAML rota: days and nights, in weekly turns."""
    people = _handles(team)
    shifts = [
        {
            "days": "daily",
            "from": "07:00",
            "to": "19:00",
            "rotate": people,
            "starting": "2026-01-05",
        },
        {
            "days": "daily",
            "from": "19:00",
            "to": "07:00",
            "rotate": people[::-1],
            "starting": "2026-01-05",
        },
    ]
    return yaml.safe_dump({"timezone": "Europe/Brussels", "coverage": "24/7", "shifts": shifts})


def write_rotas(folder: Path) -> None:
    """The `TEAMS` teams' rota files in `folder` (also the start-up bench's memory set-up): every
    other team a calendar, the rest YAML; their people are `big_directory`'s first handles."""
    folder.mkdir(parents=True, exist_ok=True)
    for team in range(TEAMS):
        name, text = (
            (f"team-{team}.ics", _calendar(team))
            if team % 2 == 0
            else (f"team-{team}.yaml", _yaml(team))
        )
        (folder / name).write_text(text, encoding="utf-8")


def _resolutions(rotas: Rotas, count: int) -> list[float]:
    """`count` resolutions at random (team, instant) pairs of the coming year, timed each."""
    rng = random.Random(19)
    teams = [f"team-{n}" for n in range(TEAMS)]
    questions = [
        (rng.choice(teams), NOW + timedelta(seconds=rng.randrange(365 * 86400)))
        for _ in range(count)
    ]
    samples = []
    for team, at in questions:
        start = time.perf_counter()
        rotas.on_duty(team, at)
        samples.append(time.perf_counter() - start)
    return samples


def _baseline(folder: Path, count: int) -> list[float]:
    """The same question answered by expanding the calendar each time."""
    calendar = Calendar.from_ical((folder / "team-0.ics").read_text(encoding="utf-8"))
    rng = random.Random(19)
    samples = []
    for _ in range(count):
        at = NOW + timedelta(seconds=rng.randrange(365 * 86400))
        start = time.perf_counter()
        recurring_ical_events.of(calendar).at(at)
        samples.append(time.perf_counter() - start)
    return samples


async def measure(server: DevServer | None, work: Path, quick: bool) -> Section:
    count, loads = (2_000, 1) if quick else (20_000, 3)
    folder = work / "rota"
    write_rotas(folder)
    directory = parse_directory(big_directory(TEAMS * PEOPLE, TEAMS), source="bench")
    load_times = []
    for _ in range(loads):
        start = time.perf_counter()
        result = load_rotas(folder, directory, now=NOW)
        load_times.append(time.perf_counter() - start)
    assert not result.problems, result.problems
    assert len(result.rotas) == TEAMS
    samples = _resolutions(result.rotas, count)
    baseline = _baseline(folder, 5 if quick else 20)
    shifts = sum(len(result.rotas[team].shifts) for team in result.rotas.teams())
    p99 = percentile(samples, 0.99)
    p99, typical = percentile(samples, 0.99), statistics.median(samples)
    expanding = statistics.median(baseline)
    figures = [
        Figure(
            f"who is on duty in a team, {TEAMS} teams, a year of weekly shifts each (p99)",
            p99 * 1000,
            unit="ms",
            goal="< 5 ms",
            met=p99 < GOAL,
        ),
        Figure("the same, median", typical * 1000, unit="ms"),
        Figure(
            "the same by expanding a calendar at each question (recurring-ical-events), median",
            expanding * 1000,
            unit="ms",
        ),
        Figure(f"load + validate + expand the {TEAMS} teams' rotas", statistics.median(load_times)),
    ]
    details = [
        f"- {count:,} resolutions at random instants of the coming year; slowest"
        f" {max(samples) * 1000:.3f} ms; {expanding / typical:,.0f}× faster than expanding the"
        f" calendar each time. {shifts:,} shifts in the timelines (a 401-day window).",
        f"- Load times: {', '.join(f'{t:.2f} s' for t in load_times)} (half the teams calendars,"
        " expanded by recurring-ical-events — most of the time, building a component for each"
        " occurrence — half YAML).",
    ]
    return Section(
        "Duty rota",
        f"{TEAMS} teams (10 calendars with a weekly RRULE per shift, 10 YAML rotas), 14 shifts a"
        " week each; each resolution timed on its own in this process, no homeserver.",
        figures,
        details,
    )


if __name__ == "__main__":
    # No homeserver needed, so none is started (harness.standalone would start one).
    section = asyncio.run(measure(None, fresh_work_dir("bench_rota"), "--quick" in sys.argv))
    print(section.markdown())

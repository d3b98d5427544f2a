"""Schedules mean what crontab means: the expected runs below were worked out by hand from the
crontab(5) rules and the 2026 Brussels clock changes (29 March 02:00 → 03:00, 25 October
03:00 → 02:00), not computed by the library under test."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.rounds.recurrence import describe, next_runs, to_cron

BRUSSELS = ZoneInfo("Europe/Brussels")


def z(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        # 0-6 is every day, Sunday first.
        ("0 9 * * 0-6", "2026-12-06T10:00", ["2026-12-07T08:00", "2026-12-08T08:00"]),
        # A step over the weekday field counts from Sunday: Sun, Tue, Thu, Sat.
        (
            "0 9 * * */2",
            "2026-12-07T10:00",
            ["2026-12-08T08:00", "2026-12-10T08:00", "2026-12-12T08:00", "2026-12-13T08:00"],
        ),
        # A step on a range keeps the step: Mon, Wed, Fri.
        (
            "0 9 * * 1-5/2",
            "2026-12-06T10:00",
            ["2026-12-07T08:00", "2026-12-09T08:00", "2026-12-11T08:00", "2026-12-14T08:00"],
        ),
        # Day of month and weekday both given: either matches (the 1st, and every Monday).
        (
            "0 9 1 * 1",
            "2026-11-29T10:00",
            ["2026-11-30T08:00", "2026-12-01T08:00", "2026-12-07T08:00"],
        ),
        # 7 is Sunday too.
        ("0 9 * * 7", "2026-12-07T10:00", ["2026-12-13T08:00"]),
        # Weekdays 09:00 across the spring change: 08:00Z on Friday, 07:00Z on Monday.
        ("0 9 * * 1-5", "2026-03-27T07:00", ["2026-03-27T08:00", "2026-03-30T07:00"]),
        # A time the clock skips runs when it resumes (03:00 CEST), then as usual.
        ("30 2 * * *", "2026-03-28T11:00", ["2026-03-29T01:00", "2026-03-30T00:30"]),
        # A time the clock repeats runs once; daily 09:00 moves from 07:00Z to 08:00Z.
        ("30 2 * * *", "2026-10-24T10:00", ["2026-10-25T00:30", "2026-10-26T01:30"]),
        ("0 9 * * *", "2026-10-24T06:00", ["2026-10-24T07:00", "2026-10-25T08:00"]),
    ],
)
def test_cron_runs_as_crontab_runs_it(cron: str, after: str, expected: list[str]) -> None:
    assert to_cron(cron) == cron
    runs = next_runs(cron, "Europe/Brussels", z(after), len(expected))
    assert runs == [z(moment) for moment in expected]


def test_a_run_exactly_at_the_start_is_not_the_next_one() -> None:
    assert next_runs("0 9 * * *", "Europe/Brussels", z("2026-12-07T08:00"), 1) == [
        z("2026-12-08T08:00")
    ]


@pytest.mark.parametrize(
    ("cron", "problem"),
    [("61 * * * *", "not a valid cron"), ("0 0 30 2 *", "never runs"), ("0 9 * *", "not a")],
)
def test_impossible_schedules_are_refused(cron: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        to_cron(cron)


def test_a_schedule_is_told_back_in_words() -> None:
    assert describe("0 9 * * 1-5") == "At 09:00 on Monday through Friday"
    assert describe(to_cron("every 30m")) == "Every 30th minute of every hour"

"""Duty rotas: who is on duty at an instant, from YAML rotas and exported calendars.

The expected instants were worked out by hand from the 2026 clock changes — Brussels 29 March
02:00 → 03:00 and 25 October 03:00 → 02:00; New York 8 March 02:00 → 03:00 and 1 November
02:00 → 01:00 — not computed by the code under test. Shifts run from their start up to, not
including, their end."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bot.rota.load import RotaLoad, load_rotas
from bot.rota.model import OutsideWindow
from tests.support.rota import (
    REPO,
    calendar,
    event,
    fold,
    load,
    on_duty,
    sample_directory,
    z,
)

DAY_AND_NIGHT_YAML = """\
timezone: Europe/Brussels
shifts:
  - days: daily
    from: "07:00"
    to: "19:00"
    who: amertens
  - days: daily
    from: "19:00"
    to: "07:00"
    who: jdupont
"""

DAY_AND_NIGHT_ICS = calendar(
    event(
        "day@icc",
        "20260301T070000",
        "20260301T190000",
        "RRULE:FREQ=DAILY",
        "SUMMARY:Duty: amertens",
    ),
    event(
        "night@icc",
        "20260301T190000",
        "20260302T070000",
        "RRULE:FREQ=DAILY",
        "SUMMARY:Duty: jdupont",
    ),
)

DAYS_ONLY_ICS = calendar(
    event(
        "day@icc",
        "20260301T070000",
        "20260301T190000",
        "RRULE:FREQ=DAILY",
        "SUMMARY:Duty: amertens",
    )
)


@pytest.fixture(scope="module", params=["icc.yaml", "icc.ics"])
def brussels(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> RotaLoad:
    """Days 07:00-19:00 amertens, nights jdupont, in Brussels: as a YAML rota and a calendar
    (read once for the module: a year of a calendar's recurrences takes a moment)."""
    text = DAY_AND_NIGHT_YAML if request.param.endswith(".yaml") else DAY_AND_NIGHT_ICS
    folder = tmp_path_factory.mktemp("brussels")
    return load(folder, {request.param: text}, now="2026-03-01T12:00")


@pytest.fixture(scope="module")
def new_york(tmp_path_factory: pytest.TempPathFactory) -> RotaLoad:
    """The same in a calendar kept in New York, its TZID with no VTIMEZONE block, as some
    programs write it."""
    text = calendar(
        *(
            event(uid, start, end, "RRULE:FREQ=DAILY", f"SUMMARY:{who}", tzid="America/New_York")
            for uid, start, end, who in (
                ("day@ny", "20260301T070000", "20260301T190000", "amertens"),
                ("night@ny", "20260301T190000", "20260302T070000", "jdupont"),
            )
        ),
        header=(),
    )
    return load(tmp_path_factory.mktemp("ny"), {"ny.ics": text}, now="2026-03-02T12:00")


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # The day before spring forward: 07:00 CET is 06:00Z.
        ("2026-03-28T05:59", "jdupont"),
        ("2026-03-28T06:00", "amertens"),
        # 29 March: 07:00 and 19:00 CEST are 05:00Z and 17:00Z.
        ("2026-03-29T04:59", "jdupont"),
        ("2026-03-29T05:00", "amertens"),
        ("2026-03-29T16:59", "amertens"),
        ("2026-03-29T17:00", "jdupont"),
        # 24 October, still summer time: 07:00 CEST is 05:00Z.
        ("2026-10-24T05:00", "amertens"),
        # 25 October: 07:00 and 19:00 CET are 06:00Z and 18:00Z.
        ("2026-10-25T05:59", "jdupont"),
        ("2026-10-25T06:00", "amertens"),
        ("2026-10-25T17:59", "amertens"),
        ("2026-10-25T18:00", "jdupont"),
    ],
)
def test_a_day_shift_stays_07_to_19_across_both_brussels_changes(
    brussels: RotaLoad, at: str, expected: str
) -> None:
    assert brussels.problems == []
    assert on_duty(brussels, "icc", at) == [expected]


@pytest.mark.parametrize(
    ("at", "start", "end"),
    [
        # 19:00 CET → 07:00 CEST: 11 hours.
        ("2026-03-29T00:00", "2026-03-28T18:00", "2026-03-29T05:00"),
        # 19:00 CEST → 07:00 CET: 13 hours.
        ("2026-10-25T00:00", "2026-10-24T17:00", "2026-10-25T06:00"),
    ],
)
def test_the_night_across_a_change_is_an_hour_shorter_or_longer(
    tmp_path: Path, at: str, start: str, end: str
) -> None:
    result = load(tmp_path, {"icc.yaml": DAY_AND_NIGHT_YAML}, now="2026-03-01T12:00")
    [shift] = result.rotas.on_duty("icc", z(at))
    assert (shift.handle, shift.start, shift.end) == ("jdupont", z(start), z(end))


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # 7 March, EST: 07:00 is 12:00Z.
        ("2026-03-07T11:59", "jdupont"),
        ("2026-03-07T12:00", "amertens"),
        # 8 March, EDT: 07:00 and 19:00 are 11:00Z and 23:00Z.
        ("2026-03-08T10:59", "jdupont"),
        ("2026-03-08T11:00", "amertens"),
        ("2026-03-08T22:59", "amertens"),
        ("2026-03-08T23:00", "jdupont"),
        # 1 November, EST again: 07:00 and 19:00 are 12:00Z and 00:00Z the next day.
        ("2026-11-01T11:59", "jdupont"),
        ("2026-11-01T12:00", "amertens"),
        ("2026-11-01T23:59", "amertens"),
        ("2026-11-02T00:00", "jdupont"),
    ],
)
def test_a_day_shift_stays_07_to_19_across_both_new_york_changes(
    new_york: RotaLoad, at: str, expected: str
) -> None:
    assert new_york.problems == []
    assert on_duty(new_york, "ny", at) == [expected]


def test_an_exdate_takes_one_occurrence_off_the_rota(tmp_path: Path) -> None:
    with_exdate = calendar(
        event(
            "day@icc",
            "20260301T070000",
            "20260301T190000",
            "RRULE:FREQ=DAILY",
            "EXDATE;TZID=Europe/Brussels:20260325T070000",
            "SUMMARY:Duty: amertens",
        )
    )
    result = load(tmp_path, {"icc.ics": with_exdate})
    assert on_duty(result, "icc", "2026-03-24T10:00") == ["amertens"]
    assert on_duty(result, "icc", "2026-03-25T10:00") == []
    assert on_duty(result, "icc", "2026-03-26T10:00") == ["amertens"]


def test_a_recurrence_id_moves_one_occurrence_to_another_person(tmp_path: Path) -> None:
    moved = event(
        "day@icc",
        "20260326T080000",
        "20260326T200000",
        "RECURRENCE-ID;TZID=Europe/Brussels:20260326T070000",
        "SUMMARY:Duty: jdupont",
    )
    result = load(
        tmp_path, {"icc.ics": DAYS_ONLY_ICS.replace("END:VCALENDAR", moved + "\r\nEND:VCALENDAR")}
    )
    # 07:30 CET, when the occurrence would have started; 19:30 CET, when the moved one runs.
    assert on_duty(result, "icc", "2026-03-26T06:30") == []
    assert on_duty(result, "icc", "2026-03-26T18:30") == ["jdupont"]
    assert on_duty(result, "icc", "2026-03-27T06:30") == ["amertens"]


def test_a_folded_summary_is_read_whole(tmp_path: Path) -> None:
    summary = fold("SUMMARY:Duty officer of the International Crisis Cell this week: lpeeters", 30)
    folded = calendar(event("week@icc", "20260323T070000", "20260323T190000", summary))
    result = load(tmp_path, {"icc.ics": folded})
    assert "\r\n " in folded
    assert on_duty(result, "icc", "2026-03-23T10:00") == ["lpeeters"]


def test_attendees_name_the_person_when_the_summary_does_not(tmp_path: Path) -> None:
    """The address's local part is the handle (contacts have no e-mail yet); a non-participant
    (the rota's keeper) is left out."""
    invited = calendar(
        event(
            "day@icc",
            "20260323T070000",
            "20260323T190000",
            "SUMMARY:ICC duty officer",
            "ATTENDEE;CN=Rota keeper;ROLE=NON-PARTICIPANT:mailto:keeper@crisis.example",
            "ATTENDEE;CN=Lies Peeters;ROLE=REQ-PARTICIPANT:mailto:lpeeters@diplobel.example",
        )
    )
    result = load(tmp_path, {"icc.ics": invited})
    assert result.problems == []
    assert on_duty(result, "icc", "2026-03-23T10:00") == ["lpeeters"]


def test_a_one_off_event_replaces_the_series_where_it_runs(tmp_path: Path) -> None:
    swap = event("swap@icc", "20260324T120000", "20260324T140000", "SUMMARY:Duty: jdupont")
    result = load(
        tmp_path, {"icc.ics": DAYS_ONLY_ICS.replace("END:VCALENDAR", swap + "\r\nEND:VCALENDAR")}
    )
    # 12:00-14:00 CET is 11:00-13:00Z.
    assert on_duty(result, "icc", "2026-03-24T10:30") == ["amertens"]
    assert on_duty(result, "icc", "2026-03-24T11:30") == ["jdupont"]
    assert on_duty(result, "icc", "2026-03-24T13:00") == ["amertens"]


def test_a_yaml_override_beats_the_pattern_and_the_pattern_resumes(tmp_path: Path) -> None:
    rota = DAY_AND_NIGHT_YAML + (
        "overrides:\n"
        "  - from: 2026-03-24 07:00\n"
        "    to: 2026-03-24 12:00\n"
        "    who: lpeeters\n"
        "    note: An Mertens at the dentist\n"
    )
    result = load(tmp_path, {"icc.yaml": rota})
    [instead] = result.rotas.on_duty("icc", z("2026-03-24T06:30"))
    assert (instead.handle, instead.override) == ("lpeeters", True)
    assert on_duty(result, "icc", "2026-03-24T11:00") == ["amertens"]


def test_a_rotation_takes_turns_a_week_each(tmp_path: Path) -> None:
    """Weekly on call from Monday 09:00 to Monday 09:00; jdupont's turn is the week of 5
    January, so the week of 23 March (11 weeks on) is lpeeters's, across the spring change."""
    rota = (
        "timezone: Europe/Brussels\n"
        "shifts:\n"
        "  - from: mon 09:00\n"
        "    to: mon 09:00\n"
        "    rotate: [jdupont, lpeeters]\n"
        "    starting: 2026-01-07\n"
    )
    result = load(tmp_path, {"oncall.yaml": rota})
    assert on_duty(result, "oncall", "2026-03-23T07:59") == ["jdupont"]
    assert on_duty(result, "oncall", "2026-03-23T08:00") == ["lpeeters"]
    assert on_duty(result, "oncall", "2026-03-30T06:59") == ["lpeeters"]
    assert on_duty(result, "oncall", "2026-03-30T07:00") == ["jdupont"]


def test_an_unquoted_time_is_the_time_written(tmp_path: Path) -> None:
    """YAML 1.1 reads an unquoted 19:00 as 1140 (base 60)."""
    unquoted = DAY_AND_NIGHT_YAML.replace('"19:00"', "19:00")
    assert '"19:00"' not in unquoted
    result = load(tmp_path, {"icc.yaml": unquoted})
    assert result.problems == []
    assert on_duty(result, "icc", "2026-03-24T17:59") == ["amertens"]
    assert on_duty(result, "icc", "2026-03-24T18:00") == ["jdupont"]


def test_an_unknown_person_is_refused_with_its_line_and_the_handle_meant(tmp_path: Path) -> None:
    result = load(
        tmp_path, {"icc.yaml": DAY_AND_NIGHT_YAML.replace("who: amertens", "who: amertns")}
    )
    assert [str(p) for p in result.problems] == [
        f"{tmp_path}/icc.yaml: line 6: shifts[0]: who: unknown person `amertns`;"
        " did you mean `amertens`?"
    ]
    assert result.problems[0].meant == "amertens"
    assert "icc" not in result.rotas


def test_an_unknown_person_in_a_calendar_is_refused_with_its_line(tmp_path: Path) -> None:
    text = DAY_AND_NIGHT_ICS.replace("SUMMARY:Duty: jdupont", "SUMMARY:Duty: Julien Dupont")
    line = text.split("\r\n").index("SUMMARY:Duty: Julien Dupont") + 1
    result = load(tmp_path, {"icc.ics": text})
    assert [str(p) for p in result.problems] == [
        f'{tmp_path}/icc.ics: line {line}: event "Duty: Julien Dupont": SUMMARY:'
        " unknown person `Julien Dupont`; did you mean `jdupont`?"
    ]


def test_an_unknown_attendee_is_refused_with_its_line(tmp_path: Path) -> None:
    text = calendar(
        event(
            "day@icc",
            "20260323T070000",
            "20260323T190000",
            fold("SUMMARY:" + "ICC duty officer " * 6),
            "ATTENDEE;CN=Lies Peeters:mailto:lpeeters@diplobel.example",
            "ATTENDEE;CN=Somebody:mailto:somebody@elsewhere.example",
        ),
    )
    line = text.split("\r\n").index("ATTENDEE;CN=Somebody:mailto:somebody@elsewhere.example") + 1
    result = load(tmp_path, {"icc.ics": text})
    assert [(p.line, p.field, p.message) for p in result.problems] == [
        (line, "ATTENDEE", "unknown person `somebody@elsewhere.example`")
    ]


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        (
            ("DTSTART;TZID=Mars/Olympus:20260323T070000", "DTEND:20260323T180000Z"),
            "DTSTART: `Mars/Olympus` is not a time zone",
        ),
        (
            ("DTSTART:20260323T070000Z", "DTEND:20260323T060000Z"),
            "DTEND: ends before it starts",
        ),
        (("DTEND:20260323T060000Z",), "DTSTART: missing or not a date and time"),
        (
            ("DTSTART:20260323T070000Z", "DTEND:20260323T180000Z", "RRULE:FREQ=DAILY;UNTIL=xx"),
            "its events cannot be expanded: UNTIL parameter has a bad format",
        ),
    ],
)
def test_an_event_whose_times_mean_nothing_is_refused(
    tmp_path: Path, lines: tuple[str, ...], problem: str
) -> None:
    text = calendar(
        "\n".join(["BEGIN:VEVENT", "UID:x@icc", "SUMMARY:amertens", *lines, "END:VEVENT"])
    )
    result = load(tmp_path, {"icc.ics": text})
    [found] = result.problems
    assert problem in str(found)


def test_an_all_day_event_runs_from_midnight_in_the_teams_zone(tmp_path: Path) -> None:
    """A week of on-call as an all-day event, as Google and Nextcloud write it."""
    week = calendar(
        "\n".join(
            [
                "BEGIN:VEVENT",
                "UID:week@icc",
                "DTSTART;VALUE=DATE:20260323",
                "DTEND;VALUE=DATE:20260330",
                "SUMMARY:On call: mrenard",
                "END:VEVENT",
            ]
        ),
        header=("X-WR-TIMEZONE:Europe/Brussels",),
    )
    result = load(tmp_path, {"icc.ics": week})
    [shift] = result.rotas.on_duty("icc", z("2026-03-25T12:00"))
    # Monday 00:00 CET to Monday 00:00 CEST.
    assert (shift.handle, shift.start, shift.end) == (
        "mrenard",
        z("2026-03-22T23:00"),
        z("2026-03-29T22:00"),
    )


def test_an_organisation_is_not_a_person(tmp_path: Path) -> None:
    result = load(tmp_path, {"icc.yaml": DAY_AND_NIGHT_YAML.replace("who: amertens", "who: ercc")})
    assert [p.message for p in result.problems] == [
        "`ercc` is an organisation, not a person; a rota names people by handle"
    ]


def test_an_unknown_key_is_refused_with_the_key_meant(tmp_path: Path) -> None:
    rota = DAY_AND_NIGHT_YAML.replace('    from: "19:00"', '    form: "19:00"') + "overides: []\n"
    result = load(tmp_path, {"icc.yaml": rota})
    assert [str(p).removeprefix(f"{tmp_path}/icc.yaml: ") for p in result.problems] == [
        "line 7: shifts[1]: from: missing",
        "line 8: shifts[1]: form: unknown key; did you mean `from`?",
        "line 11: overides: unknown key; did you mean `overrides`?",
    ]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (('"07:00"', '"7h"'), 'line 4: shifts[0]: from: `7h` is not a time: use HH:MM ("07:00")'),
        (
            ('daily\n    from: "07', 'weekdays\n    from: "07'),
            "line 3: shifts[0]: days: `weekdays` is not a day",
        ),
        (
            ("Europe/Brussels", "Europe/Bruxelles"),
            "line 1: timezone: `Europe/Bruxelles` is not an IANA",
        ),
        (("who: amertens", "rotate: [amertens]"), "line 3: shifts[0]: starting: missing"),
    ],
)
def test_a_value_that_means_nothing_is_refused_with_its_line(
    tmp_path: Path, change: tuple[str, str], problem: str
) -> None:
    result = load(tmp_path, {"icc.yaml": DAY_AND_NIGHT_YAML.replace(*change, 1)})
    [found] = result.problems
    assert str(found).removeprefix(f"{tmp_path}/icc.yaml: ").startswith(problem)


def test_a_gap_in_a_round_the_clock_team_is_a_warning(tmp_path: Path) -> None:
    """Days only: every night of the next 14 days is a gap (three shown, the rest counted)."""
    result = load(tmp_path, {"icc.ics": DAYS_ONLY_ICS, "icc.yaml": "coverage: 24/7\n"})
    assert result.problems == []
    assert "icc" in result.rotas
    assert [str(w).removeprefix(f"{tmp_path}/icc.yaml: ") for w in result.warnings] == [
        "line 1: coverage: nobody on duty from Fri 20 Mar 19:00 Brussels (18:00Z)"
        " to Sat 21 Mar 07:00 Brussels (06:00Z)",
        "line 1: coverage: nobody on duty from Sat 21 Mar 19:00 Brussels (18:00Z)"
        " to Sun 22 Mar 07:00 Brussels (06:00Z)",
        "line 1: coverage: nobody on duty from Sun 22 Mar 19:00 Brussels (18:00Z)"
        " to Mon 23 Mar 07:00 Brussels (06:00Z)",
        "line 1: coverage: and 11 more gaps in the next 14 days",
    ]


def test_a_covered_round_the_clock_team_has_no_warning(tmp_path: Path) -> None:
    result = load(tmp_path, {"icc.yaml": "coverage: 24/7\n" + DAY_AND_NIGHT_YAML})
    assert (result.problems, result.warnings) == ([], [])


def test_the_backup_is_the_next_person_on_the_rota(tmp_path: Path) -> None:
    result = load(tmp_path, {"icc.yaml": DAY_AND_NIGHT_YAML})
    [backup] = result.rotas.next_after("icc", "amertens", z("2026-03-24T10:00"))
    assert (backup.handle, backup.start) == ("jdupont", z("2026-03-24T18:00"))


def test_the_backup_is_never_the_duty_officer_themself(tmp_path: Path) -> None:
    """jdupont's own night starts first; the next one who is not jdupont is tomorrow's day."""
    result = load(tmp_path, {"icc.yaml": DAY_AND_NIGHT_YAML})
    [backup] = result.rotas.next_after("icc", "jdupont", z("2026-03-24T10:00"))
    assert (backup.handle, backup.start) == ("amertens", z("2026-03-25T06:00"))


def test_back_to_back_shifts_of_one_person_are_one(tmp_path: Path) -> None:
    """Who is on duty until when: amertens's Saturday and Sunday are one weekend."""
    rota = (
        "shifts:\n"
        "  - {days: [sat, sun], from: '00:00', to: '24:00', who: amertens}\n"
        "  - {days: mon-fri, from: '00:00', to: '24:00', who: jdupont}\n"
    )
    result = load(tmp_path, {"icc.yaml": rota})
    [weekend] = result.rotas.on_duty("icc", z("2026-03-21T10:00"))
    assert (weekend.start, weekend.end) == (z("2026-03-20T23:00"), z("2026-03-22T23:00"))


def test_relieved_is_when_the_person_goes_off_duty_whatever_the_layer(tmp_path: Path) -> None:
    """jdupont's night, then an override of the day after it, then their night again: one
    stretch on duty, from 18:00Z on the 24th to 06:00Z on the 26th."""
    rota = DAY_AND_NIGHT_YAML + (
        "overrides:\n  - {from: '2026-03-25 07:00', to: '2026-03-25 19:00', who: jdupont}\n"
    )
    result = load(tmp_path, {"icc.yaml": rota})
    assert result.rotas["icc"].relieved("jdupont", z("2026-03-24T20:00")) == z("2026-03-26T06:00")
    assert result.rotas["icc"].relieved("amertens", z("2026-03-24T20:00")) is None


def test_shifts_added_over_a_rota_beat_its_pattern(tmp_path: Path) -> None:
    """How an override kept elsewhere (the database) is laid over the files' rota."""
    result = load(tmp_path, {"icc.yaml": DAY_AND_NIGHT_YAML})
    rota = result.rotas["icc"]
    [day] = rota.on_duty(z("2026-03-24T10:00"))
    swapped = rota.renewed(rota.around, adding=[replace(day, handle="mrenard", override=True)])
    assert [s.handle for s in swapped.on_duty(z("2026-03-24T10:00"))] == ["mrenard"]
    assert [s.handle for s in swapped.on_duty(z("2026-03-24T19:00"))] == ["jdupont"]


def test_a_question_outside_the_window_is_refused_not_answered_with_nobody(
    tmp_path: Path,
) -> None:
    result = load(tmp_path, {"icc.yaml": DAY_AND_NIGHT_YAML}, now="2026-03-20T12:00")
    with pytest.raises(OutsideWindow, match="renew it"):
        result.rotas.on_duty("icc", z("2027-06-01T10:00"))
    renewed = result.rotas.renewed(z("2027-05-01T12:00"))
    assert [s.handle for s in renewed.on_duty("icc", z("2027-06-01T10:00"))] == ["amertens"]


def test_a_naive_time_is_refused(tmp_path: Path) -> None:
    result = load(tmp_path, {"icc.yaml": DAY_AND_NIGHT_YAML})
    with pytest.raises(ValueError, match="naive"):
        result.rotas.on_duty("icc", z("2026-03-24T10:00").replace(tzinfo=None))


def test_a_yaml_beside_a_calendar_gives_its_zone_to_floating_times(tmp_path: Path) -> None:
    """07:00 floating is 07:00 New York (11:00Z in summer time) when the YAML says so."""
    floating = calendar(
        event("day@ny", "20260323T070000", "20260323T190000", "SUMMARY:amertens", tzid=None)
    )
    result = load(tmp_path, {"ny.ics": floating, "ny.yaml": "timezone: America/New_York\n"})
    assert result.rotas["ny"].zone.key == "America/New_York"
    assert on_duty(result, "ny", "2026-03-23T10:59") == []
    assert on_duty(result, "ny", "2026-03-23T11:00") == ["amertens"]


def test_a_yaml_beside_a_calendar_overrides_its_events(tmp_path: Path) -> None:
    beside = "overrides:\n  - {from: '2026-03-24 07:00', to: '2026-03-24 19:00', who: mrenard}\n"
    result = load(tmp_path, {"icc.ics": DAYS_ONLY_ICS, "icc.yaml": beside})
    assert on_duty(result, "icc", "2026-03-24T10:00") == ["mrenard"]
    assert on_duty(result, "icc", "2026-03-25T10:00") == ["amertens"]


def test_a_calendars_x_wr_timezone_is_the_teams_zone(tmp_path: Path) -> None:
    google = calendar(
        event("day@g", "20260323T110000Z", "20260323T230000Z", "SUMMARY:amertens", tzid=None),
        header=("X-WR-TIMEZONE:America/New_York",),
    )
    result = load(tmp_path, {"g.ics": google})
    assert result.rotas["g"].zone.key == "America/New_York"
    assert on_duty(result, "g", "2026-03-23T11:00") == ["amertens"]


def test_a_team_with_problems_is_left_out_and_the_others_load(tmp_path: Path) -> None:
    result = load(
        tmp_path,
        {
            "icc.yaml": DAY_AND_NIGHT_YAML,
            "ercc.yaml": DAY_AND_NIGHT_YAML.replace("jdupont", "nobody"),
            "notes.txt": "who is on duty?",
        },
    )
    assert result.rotas.teams() == ["icc"]
    assert [p.file for p in result.problems] == [f"{tmp_path}/ercc.yaml"]
    assert [str(w) for w in result.warnings] == [
        f"{tmp_path}/notes.txt: not a rota (.yaml or .ics): ignored"
    ]


def test_the_sample_rotas_load_without_problems() -> None:
    result = load_rotas(REPO / "config" / "rota", sample_directory(), now=z("2026-12-01T12:00"))
    assert (result.problems, result.warnings) == ([], [])
    assert result.rotas.teams() == ["ercc", "icc"]
    assert result.rotas.on_duty("icc", z("2026-12-01T12:00"))
    assert result.rotas.on_duty("ercc", z("2026-12-01T12:00"))

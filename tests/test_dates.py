"""Times as each reader reads them: weekday, month and city in their language (CLDR, through
Babel), the UTC part the same for everyone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.timeutil import format_local_utc, load_zone

MOMENT = datetime(2026, 11, 29, 13, 28, tzinfo=UTC)


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("en", "Sun 29 Nov 14:28 Brussels (13:28Z)"),
        ("fr", "dim. 29 nov. 14:28 Bruxelles (13:28Z)"),
        ("nl", "zo 29 nov 14:28 Brussel (13:28Z)"),
        ("de", "So., 29. Nov. 14:28 Brüssel (13:28Z)"),
    ],
)
def test_a_date_reads_in_the_readers_language(lang: str, expected: str) -> None:
    zone = load_zone("Europe/Brussels")
    assert format_local_utc(MOMENT, zone, with_date=True, lang=lang) == expected


def test_a_date_has_no_leading_zero() -> None:
    early = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    zone = load_zone("Europe/Brussels")
    assert format_local_utc(early, zone, with_date=True).startswith("Mon 7 Dec ")
    assert format_local_utc(early, zone, with_date=True, lang="de").startswith("Mo., 7. Dez. ")


def test_without_a_date_only_the_city_is_translated() -> None:
    zone = load_zone("Europe/Luxembourg")
    assert format_local_utc(MOMENT, zone, lang="de") == "14:28 Luxemburg (13:28Z)"
    assert format_local_utc(MOMENT, load_zone("UTC")) == "13:28 UTC (13:28Z)"

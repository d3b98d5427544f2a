"""Property tests: whatever people type, the parser answers with values or a UsageError, and
nothing typed is evaluated as a template."""

from __future__ import annotations

import contextlib
import itertools
import time
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.chat.args import (
    MAX_LINE,
    Number,
    UsageError,
    tokenize,
)
from bot.chat.registry import split_command
from bot.render import Renderer
from bot.rounds.recurrence import to_cron
from bot.storage.types import could_be_id
from bot.timeutil import load_zone, parse_duration, parse_future_time, parse_past_time, utcnow
from tests.support.signatures import PAGE

typed = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400)


@settings(max_examples=400, deadline=None)
@given(typed)
def test_parser_answers_or_refuses(text: str) -> None:
    with contextlib.suppress(UsageError):
        PAGE.parse(text)


@settings(max_examples=300, deadline=None)
@given(typed)
def test_tokens_cover_the_line_in_order(text: str) -> None:
    tokens = tokenize(text)
    assert all(a.end <= b.start for a, b in itertools.pairwise(tokens))
    assert all(0 <= t.start < t.end <= len(text) for t in tokens)


@settings(max_examples=300, deadline=None)
@given(typed)
def test_split_command_never_fails(text: str) -> None:
    result = split_command(text, "!icc", {"!ack": "ack"})
    assert result is None or isinstance(result, str)


@settings(max_examples=200, deadline=None)
@given(typed)
def test_free_text_survives_exactly(text: str) -> None:
    message = " ".join(text.split()) or "x"
    expected = message.replace("\x00", "").strip()  # NUL is dropped: PostgreSQL cannot store it
    if not expected or expected.startswith(("--", '"', "'", "“", "‘", "«", "„")):
        return
    parsed = PAGE.parse(f"ercc {message}")
    assert parsed["message"] == expected


@settings(max_examples=200, deadline=None)
@given(typed)
def test_typed_text_is_data_not_a_template(text: str) -> None:
    rendered = Renderer().render("user_error", text=text + " {{ 7*7 }} {% raw %}")
    assert "{{ 7*7 }}" in rendered.body
    assert "49" not in rendered.body.replace(text, "")


def test_a_megabyte_line_is_refused_quickly_and_the_longest_allowed_parsed() -> None:
    """An answer quoting a megabyte could never be sent (a Matrix event holds 64 KiB), so such a
    line is refused with the limit; one at the limit is parsed whole."""
    started = time.monotonic()
    with pytest.raises(UsageError, match=f"at most {MAX_LINE:,}"):
        PAGE.parse("ercc " + "x" * 1_000_000)
    assert time.monotonic() - started < 1
    longest = "ercc " + "x" * (MAX_LINE - len("ercc "))
    assert len(PAGE.parse(longest)["message"]) == MAX_LINE - len("ercc ")


# Edge values the handler fuzz tests (tests/test_handler_fuzz.py) found crashing commands.


@pytest.mark.parametrize("text", ["99999999999999999999s", "999999999d", "367d"])
def test_durations_beyond_a_year_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="longer than 366 days"):
        parse_duration(text)
    assert parse_duration("366d") == timedelta(days=366)


@pytest.mark.parametrize("text", ["0001-01-01T00:00+14:00", "9999-12-31T23:59:59-12:00"])
def test_times_outside_what_a_date_holds_are_refused(text: str) -> None:
    now, zone = utcnow(), load_zone("Europe/Brussels")
    with pytest.raises(ValueError, match="out of range"):
        parse_future_time(text, zone, now)
    with pytest.raises(ValueError, match="out of range"):
        parse_past_time(text, zone, now)


def test_a_cron_for_a_day_that_never_comes_is_refused() -> None:
    with pytest.raises(ValueError, match="never runs"):
        to_cron("0 0 31 2 *")


@pytest.mark.parametrize("text", ["²", "0", "-1", "1e3"])
def test_a_number_is_decimal_digits(text: str) -> None:
    with pytest.raises(UsageError, match="not a whole number"):
        Number("page").parse(text)
    assert Number("page").parse("٣") == 3


def test_ids_nobody_can_have_are_not_looked_up() -> None:
    assert could_be_id(1)
    assert could_be_id(2**31 - 1)
    assert not could_be_id(0)
    assert not could_be_id(2**31)
    assert not could_be_id(99999999999999999999)

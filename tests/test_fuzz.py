"""Property tests: whatever people type, the parser answers with values or a UsageError, and
nothing typed is evaluated as a template."""

from __future__ import annotations

import contextlib
import itertools
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.args import Duration, Flag, Option, Signature, Targets, Text, UsageError, tokenize
from bot.render import Renderer
from bot.router import split_command

PAGE = Signature(
    params=(Targets("targets"), Text("message")),
    options=(Option("ack", Duration("ack"), default=timedelta(minutes=15)), Flag("urgent")),
)
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
    if message.startswith(("--", '"', "'", "“", "‘", "«", "„")):
        return
    parsed = PAGE.parse(f"ercc {message}")
    assert parsed["message"] == message


@settings(max_examples=200, deadline=None)
@given(typed)
def test_typed_text_is_data_not_a_template(text: str) -> None:
    rendered = Renderer().render("user_error", text=text + " {{ 7*7 }} {% raw %}")
    assert "{{ 7*7 }}" in rendered.body
    assert "49" not in rendered.body.replace(text, "")


def test_a_megabyte_line_is_parsed_or_refused_quickly() -> None:
    huge = "ercc " + "x" * 1_000_000
    assert len(PAGE.parse(huge)["message"]) == 1_000_000

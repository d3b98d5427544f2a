"""The argument parser: durations, targets, quotes, options, free text, errors."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.chat.args import (
    Choice,
    Duration,
    Flag,
    Number,
    Option,
    Param,
    Signature,
    Targets,
    Text,
    UsageError,
    Word,
    keyword,
    tokenize,
)
from bot.chat.registry import CommandContext, CommandFamily, Registry, split_command
from bot.commands import all_families
from bot.directory.roles import Role
from tests.support.signatures import PAGE


def test_tokenize_quotes_only_open_at_word_start() -> None:
    assert [t.value for t in tokenize("don't touch l'eau \"two words\" «trois mots»")] == [
        "don't",
        "touch",
        "l'eau",
        "two words",
        "trois mots",
    ]


def test_unclosed_quote_is_taken_literally() -> None:
    assert [t.value for t in tokenize('He said "no objection')] == [
        "He",
        "said",
        '"no',
        "objection",
    ]
    assert PAGE.parse('ercc He said "no objection')["message"] == 'He said "no objection'


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30s", 30), ("15m", 900), ("2h", 7200), ("1d", 86400), ("15M", 900)],
)
def test_durations(text: str, expected: int) -> None:
    assert Duration("d").parse(text) == timedelta(seconds=expected)


@pytest.mark.parametrize("text", ["15", "m", "1w", "-5m", "0m", "1.5h", ""])
def test_bad_durations(text: str) -> None:
    with pytest.raises(UsageError, match="not a duration"):
        Duration("d").parse(text)


def test_page_with_options_anywhere_and_text_kept_exactly() -> None:
    args = PAGE.parse("ercc,benelux --urgent Flood in Liège:\n  river at 5.2 m --ack 5m")
    assert args == {
        "targets": ["ercc", "benelux"],
        "message": "Flood in Liège:\n  river at 5.2 m",
        "ack": timedelta(minutes=5),
        "urgent": True,
    }


def test_defaults_and_inline_option_value() -> None:
    args = PAGE.parse("ercc Status please")
    assert args["ack"] == timedelta(minutes=15)
    assert args["urgent"] is False
    assert PAGE.parse("ercc hi --ack=30s")["ack"] == timedelta(seconds=30)


def test_targets_with_spaces_after_commas_and_duplicates() -> None:
    assert PAGE.parse("ERCC, benelux,ercc check")["targets"] == ["ercc", "benelux"]


def test_bad_target_key() -> None:
    with pytest.raises(UsageError, match="not a directory key"):
        Targets("t").parse("ercc,<b>")


def test_quoted_text_and_quoted_double_dash_stay_text() -> None:
    assert PAGE.parse('ercc "--urgent is not an option here"')["message"] == (
        "--urgent is not an option here"
    )


def test_unknown_option_suggests_the_close_one() -> None:
    with pytest.raises(UsageError, match="did you mean --urgent"):
        PAGE.parse("ercc hello --urgnet")


def test_option_without_value() -> None:
    with pytest.raises(UsageError, match="--ack needs a value"):
        PAGE.parse("ercc hello --ack")


def test_missing_and_unexpected_arguments() -> None:
    with pytest.raises(UsageError, match="missing <message>"):
        PAGE.parse("ercc")
    with pytest.raises(UsageError, match="unexpected `extra`"):
        Signature(params=(Word("one"),)).parse("first extra")


def test_choice_suggests() -> None:
    level = Choice("level", choices=("monitoring", "information-sharing", "full"))
    assert level.parse("FULL") == "full"
    with pytest.raises(UsageError, match="Did you mean `monitoring`"):
        level.parse("monitorng")


def test_usage_line() -> None:
    assert PAGE.usage() == "<targets> <message> [--ack 15m] [--urgent]"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("!icc help", "help"),
        ("/icc help page", "help page"),
        ("!ICC  status", "status"),
        ("!icc", ""),
        ("!ack PG-3", "ack PG-3"),
        ("!icc\nlog line one", "log line one"),
        ("!iccx help", None),
        ("hello !icc help", None),
        ("", None),
    ],
)
def test_split_command(body: str, expected: str | None) -> None:
    assert split_command(body, "!icc", {"!ack": "ack"}) == expected


def test_a_handler_must_take_the_declared_arguments_typed_as_they_parse() -> None:
    family = CommandFamily("test")
    declare = family.command(
        "page",
        role=Role.MEMBER,
        summary="s",
        example="page x y",
        params=PAGE.params,
        options=PAGE.options,
    )

    async def right(
        ctx: CommandContext, *, targets: list[str], message: str, ack: timedelta, urgent: bool
    ) -> None:
        return None

    async def missing(ctx: CommandContext, *, targets: list[str], message: str) -> None:
        return None

    async def mistyped(
        ctx: CommandContext, *, targets: str, message: str, ack: timedelta, urgent: bool
    ) -> None:
        return None

    declare(right)
    with pytest.raises(TypeError, match="declares"):
        declare(missing)
    with pytest.raises(TypeError, match="`targets` parses to list"):
        declare(mistyped)


def test_python_keywords_and_dashes_become_handler_keywords() -> None:
    signature = Signature(
        options=(Option("with", Targets("with")), Option("dry-run", Word("dry-run"))),
    )
    assert signature.parse("--with ercc --dry-run yes") == {"with_": ["ercc"], "dry_run": "yes"}
    assert signature.types() == {"with_": list[str] | None, "dry_run": str | None}


def sample(param: Param) -> str:
    """A valid value for a required positional parameter."""
    if isinstance(param, Choice):
        return param.choices[0]
    if isinstance(param, Duration):
        return "10m"
    if isinstance(param, Number):
        return "1"
    if isinstance(param, Targets):
        return "ercc"
    return "something"


def test_every_free_text_option_takes_several_words_up_to_the_next_option() -> None:
    """`--agenda Check the pumps` is the whole agenda, in every command with such an option."""
    checked = []
    for spec in Registry(all_families()):
        texts = [o for o in spec.signature.options if isinstance(o, Option)]
        for option in [o for o in texts if isinstance(o.value, Text)]:
            head = " ".join(sample(p) for p in spec.signature.params if p.required)
            line = f"{head} --{option.name} Check the pumps; roads".strip()
            others = [o for o in spec.signature.options if isinstance(o, Flag)]
            if others:
                line += f" --{others[0].name}"
            parsed = spec.signature.parse(line)
            assert parsed[keyword(option.name)] == "Check the pumps; roads", (spec.name, parsed)
            checked.append(spec.name)
    assert {"round now", "round schedule", "commscheck"} <= set(checked)


def test_a_free_text_option_stops_at_the_next_option_and_keeps_quotes_and_inline_values() -> None:
    signature = Signature(
        params=(Text("when"),),
        options=(Option("agenda", Text("agenda")), Option("window", Duration("window"))),
    )
    assert signature.parse("every 20s --agenda Check the pumps --window 15m") == {
        "when": "every 20s",
        "agenda": "Check the pumps",
        "window": timedelta(minutes=15),
    }
    assert signature.parse('daily 09:00 --agenda "Roads; Shelters"')["agenda"] == "Roads; Shelters"
    assert (
        signature.parse("daily 09:00 --agenda=Roads and bridges")["agenda"] == "Roads and bridges"
    )
    with pytest.raises(UsageError, match="--agenda needs a value"):
        signature.parse("daily 09:00 --agenda --window 5m")

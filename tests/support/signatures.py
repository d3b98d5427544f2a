"""Signatures that the parser's tests and its property tests both parse: `PAGE`, shaped like the
`page` command's (targets, free text, an `--ack` duration, an `--urgent` flag)."""

from __future__ import annotations

from datetime import timedelta

from bot.chat.args import Duration, Flag, Option, Signature, Targets, Text

PAGE = Signature(
    params=(Targets("targets"), Text("message")),
    options=(
        Option("ack", Duration("ack", metavar="15m"), default=timedelta(minutes=15)),
        Flag("urgent"),
    ),
)

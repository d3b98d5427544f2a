"""`review`, `feedback`: the after-action review and the participants' word on it."""

from __future__ import annotations

from bot.chat.args import Flag, Number, Option, Text, Word
from bot.chat.registry import CommandContext, CommandFamily, Reply
from bot.directory.roles import Role
from bot.render import Message

commands = CommandFamily("review")


@commands.command(
    "review",
    role=Role.LEAD,
    summary="the after-action review as it stands (Markdown, HTML, PDF, figures, charts)",
    example="review",
    confidential=True,
)
async def review(ctx: CommandContext) -> Message:
    return await ctx.services.reviews.on_demand(ctx.room_id, ctx.sender)


@commands.command(
    "feedback",
    role=Role.PARTNER,
    summary="your after-action feedback on a closed activation: a score 1-5, words if you like",
    example="feedback 4 Clear pages; the ERCC number was outdated",
    params=[
        Number("score", metavar="1-5", help="1 (poor) to 5 (excellent)"),
        Text("text", required=False, help="what to keep or change"),
    ],
    options=[
        Flag("signed", help="show your name with it in the review (anonymous otherwise)"),
        Option(
            "on",
            Word("on", metavar="ICC-…"),
            help="the activation (default: the last you were asked about)",
        ),
    ],
)
async def feedback(
    ctx: CommandContext, *, score: int, text: str | None, signed: bool, on: str | None
) -> Reply:
    thanks, activation = await ctx.services.reviews.record(
        ctx.sender, score, text, signed=signed, ref=on
    )
    return Reply(thanks, activation)  # framed as its activation (EXERCISE, TLP) in a DM

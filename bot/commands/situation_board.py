"""`board`, `board revoke`: a member's link to the activation's live situation board, by direct
message, and a lead ending every link to it."""

from __future__ import annotations

from bot.chat.args import Word
from bot.chat.registry import CommandContext, CommandFamily, Reply
from bot.directory.roles import Role

commands = CommandFamily("situation_board")

REF = Word("ref", required=False, help="the activation; in its room it may be left out")


@commands.command(
    "board",
    role=Role.MEMBER,
    summary="a link to the activation's live situation board (wall screen, phone), by DM",
    example="board ICC-2026-007",
    params=[REF],
)
async def board(ctx: CommandContext, *, ref: str | None) -> Reply:
    message, activation = await ctx.services.boards.send_link(
        ctx.room_id, ref, sender=ctx.sender, event_id=ctx.event_id
    )
    return Reply(message, activation)


@commands.command(
    "board revoke",
    role=Role.LEAD,
    summary="end every link to the activation's situation board; open boards go blank",
    example="board revoke",
    params=[REF],
)
async def board_revoke(ctx: CommandContext, *, ref: str | None) -> Reply:
    message, activation = await ctx.services.boards.revoke(ctx.room_id, ref, by=ctx.sender)
    return Reply(message, activation)

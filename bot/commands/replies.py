"""Plain replies to the bot's messages, routed to what they answer: a report in a round's thread,
an acknowledgement of a page, or the input to a request. A reply to anything else is ignored."""

from __future__ import annotations

from bot.args import RawText
from bot.commands.inputs import record_reply
from bot.commands.paging import ACK_WORDS, acknowledge
from bot.dispatch import REPLY_COMMAND
from bot.inputs import Inputs
from bot.paging import Paging
from bot.render import Message
from bot.roles import Role
from bot.rounds import Rounds
from bot.router import CommandContext, CommandFamily

commands = CommandFamily("replies")


@commands.command(
    REPLY_COMMAND,
    role=Role.PARTNER,
    summary="a reply to one of the bot's messages",
    example=REPLY_COMMAND,
    params=[RawText("text")],
    any_age=True,
    hidden=True,
)
async def reply_to_bot(ctx: CommandContext) -> Message | None:
    """A reply in a round's thread is a report; a reply to a page acknowledges it (when it says
    ack, ok, reçu…); a reply to an input request is the input; anything else is not for the bot."""
    text = ctx.args["text"]
    rounds = Rounds(ctx.deps)
    if text and await rounds.is_prompt(ctx.thread_root, ctx.room_id):
        await rounds.report(
            room_id=ctx.room_id,
            thread_root=ctx.thread_root,
            sender=ctx.sender,
            text=text,
            via="thread",
            event_id=ctx.event_id,
            at=ctx.sent_at,
        )
        await ctx.deps.messenger.react(ctx.room_id, ctx.event_id, "✅")
        return None
    if await Paging(ctx.deps).is_page_event(ctx.relates_to, ctx.sender):
        if text.lower().strip(" .!✅👍") in ACK_WORDS:
            return await acknowledge(ctx)
        return None
    inputs = Inputs(ctx.deps)
    if text and await inputs.is_request_event(ctx.relates_to, ctx.sender):
        recorded = await inputs.record_answer(
            ctx.sender,
            ref=None,
            relates_to=ctx.relates_to,
            text=text,
            via="reply",
            event_id=ctx.event_id,
            at=ctx.sent_at,
        )
        return record_reply(ctx, recorded)
    return None

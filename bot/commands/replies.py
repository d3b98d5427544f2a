"""Plain replies to the bot's messages, routed to what they answer: a report in a round's thread,
an acknowledgement of a page, or the input to a request. A reply to a page that does not read as
an acknowledgement is answered with how to give one; a reply to anything else is ignored."""

from __future__ import annotations

from bot.chat.registry import CommandContext, CommandFamily, Reply, Via
from bot.commands.inputs import record_reply
from bot.commands.paging import acknowledge_page
from bot.directory.roles import Role
from bot.paging.acks import says_ack
from bot.render import Message

commands = CommandFamily("replies")


@commands.on(Via.REPLY, role=Role.PARTNER)
async def reply_to_bot(ctx: CommandContext) -> Message | Reply | None:
    """A reply in a round's thread is a report; a reply to a page acknowledges it (when it says
    ack, ok, reçu…); a reply to an input request is the input; anything else is not for the bot.
    Such a reply, edited, is a new version of the report or the input; an ack stays as it was."""
    text = ctx.text
    revised = ctx.via is Via.REVISION
    rounds = ctx.services.rounds
    if text and await rounds.is_prompt(ctx.thread_root, ctx.room_id):
        said = ctx.said(text, "edit" if revised else "thread")
        await rounds.report_in_thread(said, room_id=ctx.room_id, thread_root=ctx.thread_root)
        return None
    page_id = await ctx.services.answers.page_answered(ctx.relates_to, ctx.sender)
    if page_id is not None:
        if revised:
            return None  # an acknowledgement, once given, is not taken back by an edit
        if says_ack(text):
            return await acknowledge_page(ctx, page_id)
        assert ctx.relates_to is not None  # a page event, just checked
        told = await ctx.services.answers.how_to_answer(ctx.relates_to, ctx.sender)
        return Reply(*told) if told else None
    inputs = ctx.services.inputs
    if text and await inputs.is_request_event(ctx.relates_to, ctx.sender):
        said = ctx.said(text, "edit" if revised else "reply")
        recorded = await inputs.record_answer(said, ref=None, relates_to=ctx.relates_to)
        return record_reply(ctx, recorded)
    return None

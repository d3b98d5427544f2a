"""Plain replies to the bot's messages, routed to what they answer: a report in a round's thread,
an acknowledgement of a page, or the input to a request. A reply to a page that does not read as
an acknowledgement is answered with how to give one; a reply to anything else is ignored."""

from __future__ import annotations

import logging
import re

from bot.chat.registry import CommandContext, CommandFamily, Reply, Via
from bot.chat.render import Message
from bot.commands.inputs import record_reply
from bot.commands.paging import ACK_WORDS, acknowledge, is_ack_reaction
from bot.directory.roles import Role
from bot.storage import activation_store, page_store

log = logging.getLogger(__name__)

commands = CommandFamily("replies")


@commands.on(Via.REPLY, role=Role.PARTNER)
async def reply_to_bot(ctx: CommandContext) -> Message | Reply | None:
    """A reply in a round's thread is a report; a reply to a page acknowledges it (when it says
    ack, ok, reçu…); a reply to an input request is the input; anything else is not for the bot."""
    text = ctx.text
    rounds = ctx.services.rounds
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
        await ctx.services.messenger.react(ctx.room_id, ctx.event_id, "✅")
        return None
    if await ctx.services.answers.is_page_event(ctx.relates_to, ctx.sender):
        if says_ack(text):
            return await acknowledge(ctx)
        return await _how_to_answer_page(ctx)
    inputs = ctx.services.inputs
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


def says_ack(text: str) -> bool:
    """Whether a reply to a page acknowledges it: it opens with an ack word ("Received",
    "ok thanks", "Reçu, on s'en occupe"), or is only ✅ or 👍."""
    words = re.findall(r"[^\W\d_]+", text.lower())
    if not words:
        return is_ack_reaction(text.strip())
    return words[0] in ACK_WORDS or " ".join(words[:2]) in ACK_WORDS


async def _how_to_answer_page(ctx: CommandContext) -> Message | Reply | None:
    """A reply to a page that says something else: the person is told, in their language, how
    to acknowledge or decline, and the reply is logged; it is never silently dropped."""
    assert ctx.relates_to is not None
    async with ctx.services.db.session() as session:
        row = await page_store.target_by_event(session, ctx.relates_to)
        page = await page_store.page(session, row.page_id) if row else None
        activation = (
            await activation_store.by_id(session, page.activation_id)
            if page and page.activation_id
            else None
        )
    if row is None or page is None:
        return None
    log.info("reply from %s to %s is not an acknowledgement; told how", ctx.sender, page.ref)
    prefix = ctx.services.settings.command_prefix
    message = ctx.render("page_reply_unread", lang=row.language, ref=page.ref, prefix=prefix)
    return Reply(message, activation)

"""`page`, `ack`, `unable`, `pages`: reaching partners and knowing that they got it; and, without
a command, a ✅ on a page (an acknowledgement) and that ✅ taken back."""

from __future__ import annotations

from datetime import timedelta

from bot.chat.args import Duration, Flag, Option, Targets, Text, Word
from bot.chat.registry import CommandContext, CommandFamily, Reply, Via
from bot.directory.model import Contact
from bot.directory.roles import Role
from bot.errors import Refused, UserError
from bot.paging.acks import is_ack_reaction
from bot.paging.answers import Answer, NoOpenPage
from bot.paging.board import PAGE_REF
from bot.paging.send import URGENT_WINDOW
from bot.render import Message
from bot.timeutil import format_local_utc, load_zone, utcnow

commands = CommandFamily("paging")


def page_ref(text: str | None) -> str | None:
    if text is None:
        return None
    if not PAGE_REF.match(text):
        raise UserError(f"`{text}` is not a page reference such as PG-12.")
    return text.upper()


TARGETS = Targets(
    "targets",
    help="contact handles, organisation keys, groups or duty:<team>, comma-separated",
)


def resolve_people(ctx: CommandContext, keys: list[str]) -> list[Contact]:
    """Targets → people, never the bot itself; unknown targets refused; `duty:<team>` is
    whoever is on duty in that team now."""
    return ctx.services.duty.resolve(keys, besides=ctx.services.settings.user_id)[0]


@commands.command(
    "page",
    role=Role.MEMBER,
    summary="page people by direct message; tracks delivery and acknowledgement, escalates",
    example="page ercc,benelux Meuse flooding: do you need liaison officers? --ack 10m",
    params=[
        TARGETS,
        Text("message", help="what they must know"),
    ],
    options=[
        Option(
            "ack", Duration("ack", metavar="15m"), help="ack deadline (default ICC_ACK_TIMEOUT)"
        ),
        Flag("urgent", help="5-minute ack deadline"),
    ],
)
async def page(
    ctx: CommandContext, *, targets: list[str], message: str, ack: timedelta | None, urgent: bool
) -> None:
    activations = ctx.services.activations
    activation = await activations.open_in_room(ctx.room_id)
    people, duty = ctx.services.duty.resolve(targets, besides=ctx.services.settings.user_id)
    window = ack or (URGENT_WINDOW if urgent else ctx.services.settings.ack_timeout)
    pager = ctx.services.pager
    sent = await pager.create(
        activation,
        sender=ctx.sender,
        text=message,
        people=people,
        window=window,
        urgent=urgent,
        event_id=ctx.event_id,
        duty=duty,
    )
    await pager.deliver(sent, activation, reply_to=ctx.event_id)
    return None


@commands.on(Via.REACTION, role=Role.PARTNER, accepts=is_ack_reaction)
async def acknowledge(ctx: CommandContext) -> Message | Reply | None:
    """An ack from a reply or a reaction: the page is the one replied or reacted to."""
    return await _answer(ctx, None, None)


async def acknowledge_page(ctx: CommandContext, page_id: int) -> Message | Reply | None:
    """An ack by a reply to the page `page_id`, which the reply's handler has found."""
    return await _answer(ctx, None, None, page_id=page_id)


async def _answer(
    ctx: CommandContext, ref: str | None, reason: str | None, *, page_id: int | None = None
) -> Message | Reply | None:
    """`page_id`: the page a reply answers, found by its handler (`Answers.page_answered`)."""
    answers = ctx.services.answers
    if ctx.via is not Via.COMMAND and page_id is None:
        page_id = await answers.page_answered(ctx.relates_to, ctx.sender)
        if page_id is None:
            return None  # a 👍 on something else: not for the bot
    try:
        answer = await answers.answer(
            ctx.sender,
            ref=ref,
            relates_to=ctx.relates_to,
            how=ctx.via,
            event_id=ctx.event_id,
            at=ctx.sent_at,
            reason=reason,
            page_id=page_id,
        )
    except NoOpenPage:
        renderer = ctx.services.renderer
        languages = ctx.contact.languages if ctx.contact else ()
        told = renderer.render(
            "page_none_open",
            lang=renderer.language_for("page_none_open", languages),
            command="unable" if reason is not None else "ack",
        )
        raise Refused(told, None) from None
    return _reply(ctx, answer)


def _reply(ctx: CommandContext, answer: Answer) -> Reply:
    row = answer.row
    # The answer that stands (the first wins): an `unable` after an ack is told when the ack was.
    when = row.acked_at or row.declined_at
    directory = ctx.services.directory
    person = directory.contacts.get(row.handle)
    backup = directory.contacts.get(person.backup) if person and person.backup else None
    message = ctx.render(
        "page_answered",
        backup=backup.name if backup else None,
        lang=row.language,
        ref=answer.page.ref,
        first=answer.first,
        declined=row.declined_at is not None,
        acked=row.acked_at is not None,
        at=format_local_utc(when or utcnow(), load_zone(row.timezone), lang=row.language),
    )
    return Reply(message, answer.activation)


@commands.command(
    "ack",
    role=Role.PARTNER,
    summary=(
        "acknowledge a page (also: react ✅ or 👍 to it, or reply ack / ok / reçu / ontvangen "
        "/ erhalten)"
    ),
    example="ack PG-12",
    params=[Word("page", required=False, metavar="PG-n", help="default: your newest open page")],
    any_age=True,
)
async def ack(ctx: CommandContext, *, page: str | None) -> Message | Reply | None:
    return await _answer(ctx, page_ref(page), None)


@commands.command(
    "unable",
    role=Role.PARTNER,
    summary="decline a page with a reason; it escalates to your backup at once",
    example="unable PG-12 Our duty officer is on another call, back at 15:00",
    params=[Text("reason", shown="[<PG-n>] <reason>", help="optionally the page, then why")],
    any_age=True,
)
async def unable(ctx: CommandContext, *, reason: str) -> Message | Reply | None:
    first, _, rest = reason.partition(" ")
    ref = page_ref(first) if PAGE_REF.match(first) else None
    reason = rest.strip() if ref else reason.strip()
    if not reason:
        raise UserError("Say why you are unable, so the cell can plan: unable PG-12 <reason>.")
    return await _answer(ctx, ref, reason)


@commands.on(Via.REDACTION, role=Role.PARTNER)
async def withdraw_reaction(ctx: CommandContext) -> None:
    """Silent whatever it finds: a withdrawn ack shows on the page's board and in the logbook,
    and any other redaction is not for the bot. Taken back when it was, however late read."""
    assert ctx.relates_to is not None  # the redacted event
    await ctx.services.answers.withdraw_ack(ctx.sender, reaction=ctx.relates_to, at=ctx.sent_at)
    return None


@commands.command(
    "pages",
    role=Role.MEMBER,
    summary="per person: delivered, seen, acknowledged (latency), escalated, unreachable",
    example="pages PG-12",
    params=[Word("ref", required=False, metavar="ref", help="a page, or an activation")],
    confidential=True,
    reads_only=True,
)
async def pages(ctx: CommandContext, *, ref: str | None) -> Reply:
    message, activation = await ctx.services.board.listing(ctx.room_id, ref)
    return Reply(message, activation)

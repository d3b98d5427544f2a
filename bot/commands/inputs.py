"""`ask`, `input`, `advice`: collecting partners' input and drafting the advice note."""

from __future__ import annotations

import re

from bot.chat.args import Option, Text, Word
from bot.chat.registry import CommandContext, CommandFamily, Reply
from bot.commands.paging import TARGETS, resolve_people
from bot.directory.roles import Role
from bot.errors import UserError
from bot.inputs.requests import Recorded
from bot.render import Message
from bot.timeutil import format_local_utc, load_zone, parse_future_time, utcnow

commands = CommandFamily("inputs")
REQUEST_REF = re.compile(r"^RQ-(\d+)$", re.IGNORECASE)


def request_ref(text: str) -> str:
    if not REQUEST_REF.match(text):
        raise UserError(f"`{text}` is not a request reference such as RQ-3.")
    return text.upper()


@commands.command(
    "ask",
    role=Role.MEMBER,
    summary="ask partners for input by DM; a reminder at half-time, a chase at the deadline",
    example="ask benelux,ercc Do you advise closing the Meuse to shipping? --by 16:00",
    params=[
        TARGETS,
        Text("question", help="what the cell needs to know"),
    ],
    options=[
        Option(
            "by",
            Word("by", metavar="TIME"),
            default="2h",
            help="deadline: HH:MM, ISO 8601 or a duration (default 2h)",
        )
    ],
)
async def ask(ctx: CommandContext, *, targets: list[str], question: str, by: str) -> Message:
    activations = ctx.services.activations
    activation = await activations.open_in_room(ctx.room_id)
    people = resolve_people(ctx, targets)
    not_on_matrix = [p.name for p in people if p.matrix_id is None]
    people = [p for p in people if p.matrix_id is not None]  # an answer comes in Matrix
    if not people:
        raise UserError(
            f"{', '.join(not_on_matrix)}: not on Matrix, where inputs are answered; nothing "
            "was asked. Page them instead: a page reaches them by e-mail or SMS."
        )
    try:
        deadline = parse_future_time(by, ctx.services.settings.timezone, utcnow())
    except ValueError as exc:
        raise UserError(str(exc)) from None
    inputs = ctx.services.inputs
    request = await inputs.create(
        activation,
        sender=ctx.sender,
        question=question,
        people=people,
        deadline=deadline,
        event_id=ctx.event_id,
    )
    failed = await inputs.deliver(request, activation)
    return ctx.render(
        "request_sent",
        ref=request.ref,
        count=len(people),
        failed=failed,
        not_on_matrix=not_on_matrix,
        deadline=activations.local(request.deadline, with_date=True),
    )


def record_reply(ctx: CommandContext, recorded: Recorded) -> Reply:
    """The thanks for an input, in the person's language."""
    target, answer = recorded.target, recorded.answer
    message = ctx.render(
        "input_recorded",
        lang=target.language,
        ref=recorded.request.ref,
        version=answer.version,
        late=answer.late,
        at=format_local_utc(answer.answered_at, load_zone(target.timezone), lang=target.language),
    )
    return Reply(message, recorded.activation)


@commands.command(
    "input",
    role=Role.PARTNER,
    summary="give your input to a request (or reply to the request's message)",
    example="input RQ-3 We advise closing the Meuse to shipping between Namur and Liège",
    params=[
        Word("request", metavar="RQ-n"),
        Text("text", help="your input, as it should be quoted"),
    ],
    any_age=True,
    revised_by_edit=True,
)
async def input_command(ctx: CommandContext, *, request: str, text: str) -> Reply:
    said = ctx.said(text, ctx.via.value)  # a command, or an edit of one: a new version
    recorded = await ctx.services.inputs.record_answer(
        said, ref=request_ref(request), relates_to=None
    )
    return record_reply(ctx, recorded)


@commands.command(
    "advice",
    role=Role.MEMBER,
    summary="draft the advice note from partners' input: posted, and attached as files",
    example="advice RQ-3 RQ-4",
    params=[Text("requests", required=False, metavar="RQ-n…", help="default: every request")],
    confidential=True,
)
async def advice(ctx: CommandContext, *, requests: str | None) -> Message:
    refs = [request_ref(r) for r in (requests or "").replace(",", " ").split()]
    return await ctx.services.inputs.advise(ctx.room_id, refs, by=ctx.sender, event_id=ctx.event_id)

"""`playbooks`, `playbook run`: the cell's procedures, applied to an activation."""

from __future__ import annotations

from bot.chat.args import Word
from bot.chat.registry import CommandContext, CommandFamily
from bot.directory.roles import Role
from bot.render import Message

commands = CommandFamily("playbooks")


@commands.command(
    "playbooks",
    role=Role.MEMBER,
    summary="the playbooks there are: what each opens with and makes",
    example="playbooks",
    reads_only=True,
)
async def playbooks(ctx: CommandContext) -> Message:
    person = ctx.services.directory.contact_for(ctx.sender)
    return ctx.services.playbooks.listing(person.languages if person else ())


@commands.command(
    "playbook run",
    role=Role.LEAD,
    summary="apply a playbook to this activation: its actions, pages, rounds and invitations",
    example="playbook run nuclear",
    params=[Word("key", help="the playbook, as `playbooks` lists it")],
)
async def playbook_run(ctx: CommandContext, *, key: str) -> Message:
    activation = await ctx.services.activations.open_in_room(ctx.room_id)
    return await ctx.services.playbooks.apply(activation, key, by=ctx.sender, event_id=ctx.event_id)

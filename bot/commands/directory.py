"""`contacts [query]` and `contact <handle>`: the directory, searchable from any room."""

from __future__ import annotations

from bot.chat.args import Number, Option, Text, Word
from bot.chat.registry import CommandContext, CommandFamily
from bot.directory.roles import Role
from bot.render import Message

commands = CommandFamily("directory")


@commands.command(
    "contacts",
    role=Role.MEMBER,
    summary="search the directory by handle, name, organisation or group",
    example="contacts benelux",
    params=[Text("query", required=False, help="words that must all match; none lists everyone")],
    options=[Option("page", Number("page", metavar="N"), default=1, help="page of the results")],
    confidential=True,
    reads_only=True,
)
async def contacts(ctx: CommandContext, *, query: str | None, page: int) -> Message:
    return await ctx.services.lookup.search(query, page)


@commands.command(
    "contact",
    role=Role.MEMBER,
    summary="one contact: organisation, role, languages, time zone, groups, backup",
    example="contact ercc-duty",
    params=[Word("handle", help="a contact handle or Matrix ID")],
    confidential=True,
    reads_only=True,
)
async def contact(ctx: CommandContext, *, handle: str) -> Message:
    return await ctx.services.lookup.card(handle)

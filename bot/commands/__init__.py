"""Command families: one module each, declaring its commands with `CommandFamily.command`."""

from __future__ import annotations

from bot.commands import directory as directory_commands
from bot.commands import help as help_commands
from bot.router import CommandFamily


def all_families() -> list[CommandFamily]:
    return [help_commands.commands, directory_commands.commands]

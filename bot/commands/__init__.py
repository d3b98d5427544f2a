"""Command families: one module each, declaring its commands with `CommandFamily.command`."""

from __future__ import annotations

from bot.chat.registry import CommandFamily, Registry
from bot.commands import actions as actions_commands
from bot.commands import activation as activation_commands
from bot.commands import directory as directory_commands
from bot.commands import duty as duty_commands
from bot.commands import help as help_commands
from bot.commands import inputs as inputs_commands
from bot.commands import logbook as logbook_commands
from bot.commands import paging as paging_commands
from bot.commands import playbooks as playbooks_commands
from bot.commands import replies as replies_commands
from bot.commands import review as review_commands
from bot.commands import rounds as rounds_commands
from bot.commands import situation_board as situation_board_commands


def all_families() -> list[CommandFamily]:
    return [
        help_commands.commands,
        directory_commands.commands,
        activation_commands.commands,
        logbook_commands.commands,
        paging_commands.commands,
        inputs_commands.commands,
        actions_commands.commands,
        playbooks_commands.commands,
        rounds_commands.commands,
        duty_commands.commands,
        review_commands.commands,
        situation_board_commands.commands,
        replies_commands.commands,
    ]


def command_table(prefix: str = "!icc") -> str:
    """The README's command table, generated from the declarations so that it cannot drift."""
    rows = ["| command | who | what it does |", "| --- | --- | --- |"]
    for spec in Registry(all_families()):
        who = "anyone" if spec.role.value == "stranger" else spec.role.value
        usage = spec.usage(prefix).replace("|", "\\|")
        rows.append(f"| `{usage}` | {who} | {spec.summary} |")
    return "\n".join(rows)

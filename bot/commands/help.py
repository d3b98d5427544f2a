"""`help [command]`: generated from the registry, filtered by what the sender may run."""

from __future__ import annotations

from bot.chat.args import Text
from bot.chat.registry import CommandContext, CommandFamily
from bot.directory.roles import ANYONE
from bot.errors import UserError
from bot.render import Message

commands = CommandFamily("help")


@commands.command(
    "help",
    role=ANYONE,
    summary="the commands you may use; usage and an example for one",
    example="help page",
    params=[Text("command", required=False, help="a command name, e.g. `page`")],
    reads_only=True,
)
async def help_command(ctx: CommandContext, *, command: str | None) -> Message:
    registry = ctx.services.registry
    prefix = ctx.services.settings.command_prefix
    asked = command
    if not asked:
        visible = registry.visible_to(ctx.role)
        return ctx.render(
            "help",
            commands=[(spec.usage(prefix), spec.summary) for spec in visible],
            prefix=prefix,
            role=ctx.role.value,
            known=ctx.contact is not None,
        )
    spec = registry.get(asked.removeprefix(prefix).strip())
    if spec is None:
        suggestion = registry.suggest(asked)
        hint = f" Did you mean `{suggestion}`?" if suggestion else ""
        raise UserError(f"There is no command `{asked}`.{hint} Send `{prefix} help` for the list.")
    return ctx.render(
        "help_command",
        usage=spec.usage(prefix),
        summary=spec.summary,
        example=f"{prefix} {spec.example}",
        role=spec.role.value,
        allowed=ctx.role.allows(spec.role),
        arguments=[(p.usage(), p.help) for p in spec.signature.params if p.help]
        + [(o.usage(), o.help) for o in spec.signature.options if o.help],
    )

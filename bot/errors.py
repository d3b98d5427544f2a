"""The errors a person is shown as they are: the bot's refusals, the sender's mistakes, and the
problems of a configuration file.

Every layer raises these (a capability refusing what cannot be done, the argument parser a line
that does not fit); only the dispatcher turns them into answers. Anything else is the bot's own
fault, answered with an apology and a reference (`bot.chat.dispatch`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.render import Message
    from bot.storage.models import ActivationRow


class UserError(Exception):
    """A refusal or a problem the sender can fix; its text is shown to them as it is."""


class UsageError(Exception):
    """The line does not fit the command's declaration; shown with the usage and an example."""


class ProblemList(Exception):
    """Everything wrong with a file (settings, the directory) found in one pass, one line each,
    so an operator fixes them in one go."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Refused(UserError):
    """A refusal already worded for the person (in their language) and about an activation:
    shown as it is, framed with that activation wherever it is answered."""

    def __init__(self, message: Message, about: ActivationRow | None) -> None:
        super().__init__(message.body)
        self.message = message
        self.about = about

"""The errors a person is shown as they are: the bot's refusals and the sender's mistakes.

Every layer raises these (a capability refusing what cannot be done, the argument parser a line
that does not fit); only the dispatcher turns them into answers. Anything else is the bot's own
fault, answered with an apology and a reference (`bot.chat.dispatch`).
"""


class UserError(Exception):
    """A refusal or a problem the sender can fix; its text is shown to them as it is."""


class UsageError(Exception):
    """The line does not fit the command's declaration; shown with the usage and an example."""

"""What every channel outside Matrix shares: how a send that did not leave is reported.

A channel (e-mail, SMS) raises `ChannelError` with the reason the attempt records. The fallback
tries a failed send again a minute later, up to three tries, unless trying again cannot help
(`retry=False`: the channel is off, the directory gives the person no address on it) — then the
person's next channel goes at once. `kind` says why in one of the few words a metric counts
failures by (`bot.runtime.metrics.SEND_FAILURES`).
"""

from __future__ import annotations

from bot.runtime.metrics import REFUSED


class ChannelError(Exception):
    """A message could not be handed to a channel: why, in words fit for the record."""

    def __init__(self, reason: str, *, retry: bool = True, kind: str = REFUSED) -> None:
        super().__init__(reason)
        self.retry = retry
        self.kind = kind

"""Which homeservers the bot hears from: when the sync last brought anything from each.

Partners sit on other governments' homeservers. When one is down, a message to its people still
"succeeds" on the bot's own server, which queues it; what shows the outage is silence: nothing
from that server while others are heard. Kept in memory for this process, so a silence counts
only from when the process began listening (`since`): after a restart the bot decides nothing
about a window it did not watch.
"""

from __future__ import annotations

from datetime import datetime

from bot.timeutil import utcnow


def server_of(user_id: str) -> str:
    """The homeserver part of a Matrix user ID (`@a:b.example:8448` → `b.example:8448`)."""
    return user_id.partition(":")[2]


class Hearing:
    def __init__(self) -> None:
        self.since = utcnow()
        self._last: dict[str, datetime] = {}

    def heard(self, user_id: str, at: datetime | None = None) -> None:
        """Something from `user_id` arrived (an event, a receipt, a key change)."""
        server = server_of(user_id)
        when = at or utcnow()
        if server and (server not in self._last or when > self._last[server]):
            self._last[server] = when

    def last_heard(self, server: str) -> datetime | None:
        return self._last.get(server)

    def silent_since(self, server: str, moment: datetime) -> bool:
        """Whether nothing came from `server` since `moment`, while some other server was heard
        since then — and this process listened the whole time (else: not known, False)."""
        if moment < self.since:
            return False
        last = self._last.get(server)
        if last is not None and last >= moment:
            return False
        return any(at >= moment for other, at in self._last.items() if other != server)

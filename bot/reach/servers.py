"""Unreachable homeservers (SPEC, "Delivered, seen, trusted"): when a partner's homeserver is down,
a page to its people must not wait for its second deadline to find out.

Two signs: a send the bot's homeserver refuses because it cannot reach the other one (an invite
to a new direct-message room: Synapse answers 502 "Can't connect to server"), and, at a page's
deadline, a server from which nothing at all has been heard since the page left while others
were (`bot.matrix.hearing`). Either moves the person on to their next channel at once (the
fallback's armed step is brought forward) and tells the activation room which server is
unreachable since when — once per server per outage: hearing from the server again ends it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from bot.matrix.hearing import server_of
from bot.storage.models import ActivationRow, PageRow, PageTargetRow
from bot.timeutil import utcnow

if TYPE_CHECKING:
    from bot.activations.activation import Activations
    from bot.matrix.send import Messenger
    from bot.paging.board import Board
    from bot.reach.fallback import Fallback
    from bot.render import Renderer
    from bot.settings import Settings

log = logging.getLogger(__name__)

CANNOT_CONNECT = "can't connect to server"  # Synapse's words for a server it cannot reach


@dataclass(frozen=True, kw_only=True)
class Servers:
    settings: Settings
    renderer: Renderer
    messenger: Messenger
    activations: Activations
    board: Board
    fallback: Fallback
    told: dict[str, datetime] = field(default_factory=dict)  # server → when its outage was told

    async def send_failed(
        self,
        page: PageRow,
        activation: ActivationRow | None,
        row: PageTargetRow,
        error: str,
    ) -> None:
        """A Matrix send to the person failed: if their server could not be reached, say so."""
        if CANNOT_CONNECT in error.lower():
            await self._unreachable(server_of(row.matrix_id), utcnow(), page, activation)

    async def silent_at_deadline(
        self, page: PageRow, activation: ActivationRow, rows: list[PageTargetRow]
    ) -> None:
        """At the deadline, each person the page reached on Matrix whose server has been silent
        since it left: the room told, their next channel now."""
        hearing = self.messenger.hearing
        own = server_of(self.settings.user_id)
        for row in rows:
            server = server_of(row.matrix_id)
            if row.event_id is None or row.delivered_at is None or server in ("", own):
                continue
            if hearing.silent_since(server, row.delivered_at):
                since = hearing.last_heard(server) or row.delivered_at
                await self._unreachable(server, since, page, activation)
                await self.fallback.hurry(page, activation, row)

    async def _unreachable(
        self, server: str, since: datetime, page: PageRow, activation: ActivationRow | None
    ) -> None:
        """Tell the room, unless this outage of `server` was told already."""
        told = self.told.get(server)
        last = self.messenger.hearing.last_heard(server)
        if told is not None and (last is None or last < told):
            return
        self.told[server] = utcnow()
        log.warning("homeserver %s unreachable since %s (%s)", server, since.isoformat(), page.ref)
        if activation is not None:
            await self.activations.note(
                activation,
                "system.server_unreachable",
                f"Homeserver {server} unreachable since {since.isoformat()} ({page.ref})",
                data={"server": server, "page": page.id},
            )
        message = self.renderer.render(
            "server_unreachable",
            server=server,
            since=self.activations.local(since),
            ref=page.ref,
        )
        await self.board.tell_room(
            page, activation, message, txn_id=f"unreachable-{server}-{page.id}"
        )

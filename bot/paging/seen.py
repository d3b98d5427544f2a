"""Seen: a page is seen when the paged person's read receipt in their direct-message room shows
they had it in front of them (SPEC, "Delivered, seen, trusted").

The bot asks the homeserver for receipts in its direct-message rooms only (`SyncLoop`'s filter),
so busy rooms cost nothing. Only public receipts (`m.read`) reach it: a person who sends private
ones is never "not seen", only "not known" — which is why nothing else waits on `seen_at`, and why
it never counts as an acknowledgement. A receipt marks every page that had reached the person by
the time they read: clients send one for the newest event they show, which is at or after it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.matrix.sync import ReadReceipt, ReceiptWatch
from bot.storage import page_store as store
from bot.timeutil import utcnow

if TYPE_CHECKING:
    from bot.matrix.send import Messenger
    from bot.paging.board import Board
    from bot.storage.db import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Seen:
    db: Database
    messenger: Messenger
    board: Board

    async def watch(self) -> ReceiptWatch:
        """What the sync loop reads receipts in: the bot's direct-message rooms, those recorded
        and those it makes from now on."""
        async with self.db.session() as session:
            self.messenger.direct_rooms.update(await store.all_dm_rooms(session))
        return ReceiptWatch(rooms=lambda: self.messenger.direct_rooms, heard=self.on_receipts)

    async def on_receipts(self, room_id: str, receipts: list[ReadReceipt]) -> None:
        """Mark what each receipt shows read, then refresh the boards it changes."""
        changed: set[int] = set()
        async with self.db.session() as session:
            for receipt in receipts:
                at = min(receipt.at, utcnow())  # a client's clock ahead of ours
                changed |= await store.mark_seen(session, room_id, receipt.user_id, at)
        for page_id in sorted(changed):
            async with self.db.session() as session:
                page, activation = await store.page_in(session, page_id)
            if page is not None and page.kind == "page" and activation is not None:
                log.info("%s seen in %s", page.ref, room_id)
                self.board.refresh(page, activation)

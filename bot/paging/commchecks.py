"""Communication checks (ConvEx-style): can we still reach our partners, and how fast?

A check is a page of a test message (`PageRow.kind == "check"`): delivered, acknowledged and
recorded exactly like a page, but with no escalation. At the end of its window the room it was
asked in gets the result: who answered and how fast, who did not, who could not be reached. The
latest result per person is what `contact` and `contacts` show, so stale contacts stand out.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.activations.activation import ActivationCapability, timer_prefix
from bot.activations.asked import Asked
from bot.directory.model import Contact
from bot.directory.roles import Role
from bot.errors import UserError
from bot.paging.send import Pager
from bot.render import Message
from bot.storage import activation_store
from bot.storage import page_store as store
from bot.storage.models import (
    ActivationRow,
    ActivationStatus,
    PageAttemptRow,
    PageRow,
    PageTargetRow,
    Timer,
    TimerKind,
)
from bot.timeutil import format_duration, utcnow

CHECK_TEXT = "Communication check"


@dataclass(frozen=True, kw_only=True)
class CommChecks(ActivationCapability):
    pager: Pager

    async def audience(
        self, room_id: str, named: list[Contact] | None
    ) -> tuple[ActivationRow | None, list[Contact]]:
        """The activation a check typed in `room_id` belongs to, and who is checked: those
        named, by default every partner and DG."""
        activation = await self.activations.for_room(room_id)
        if activation is not None and activation.status != ActivationStatus.OPEN:
            raise UserError(f"{activation.ref} is {activation.status}; run the check elsewhere.")
        contacts = self.keeper.current.contacts.values()
        people = named or [c for c in contacts if c.role in (Role.PARTNER, Role.DG)]
        if not people:
            raise UserError("Nobody to check; name them: commscheck <targets>.")
        return activation, people

    async def start(self, activation: ActivationRow | None, asked: Asked) -> Message:
        """`commscheck`: the test page, sent now; the results when the window ends."""
        check = await self.create(activation, asked)
        await self.pager.deliver(check, activation, reply_to=asked.event_id)
        return self.renderer.render(
            "commscheck_sent",
            ref=check.ref,
            count=len(asked.named),
            until=self.activations.local(check.created_at + asked.window),
        )

    async def create(self, activation: ActivationRow | None, asked: Asked) -> PageRow:
        async with self.db.session() as session:
            check, new = await self.pager.add_page(
                session,
                activation,
                asked.named,
                asked.window,
                kind="check",
                room_id=asked.room_id,
                sender=asked.by,
                text=CHECK_TEXT,
                event_id=asked.event_id,
            )
            if not new:
                return check
            prefix = timer_prefix(activation.id) if activation else ""
            await self.scheduler.arm_new(
                session,
                TimerKind.CHECK_CLOSE,
                [
                    (
                        f"{prefix}chk{check.id}:close",
                        check.created_at + asked.window,
                        {"page": check.id},
                    )
                ],
            )
            if activation is not None:
                await self.activations.add_entry(
                    session,
                    activation,
                    "system.commscheck",
                    f"Communication check {check.ref} sent to {len(asked.named)}",
                    asked.by,
                    data={"page": check.id, "to": [p.handle for p in asked.named]},
                )
        return check

    async def on_close(self, timer: Timer) -> None:
        """The window ends: who answered and how fast, who did not. Those who did not are no
        longer waiting: they are marked unreachable, as `status`, `pages` and the sitrep show."""
        async with self.db.session() as session:
            check = await store.page(session, timer.payload["page"])
            if check is None:
                return
            rows = await store.targets(session, check.id)
            now = utcnow()
            silent_rows = [r for r in rows if not (r.acked_at or r.declined_at or r.unreachable_at)]
            await store.mark_many(session, {r.id: {"unreachable_at": now} for r in silent_rows})
            activation = (
                await activation_store.by_id(session, check.activation_id)
                if check.activation_id
                else None
            )
            tries = await store.tries_by_row(session, rows)
        answered = [
            (
                r.name,
                r.organisation,
                format_duration(r.acked_at - (r.delivered_at or r.acked_at)),
                r.ack_how,
            )
            for r in rows
            if r.acked_at
        ]
        silent = [_tried(r, tries) for r in rows if not r.acked_at and r.delivered_at]
        unreachable = [_tried(r, tries) for r in rows if not r.acked_at and not r.delivered_at]
        if activation is not None:
            await self.activations.note(
                activation,
                "system.commscheck_result",
                f"Communication check {check.ref}: {len(answered)} of {len(rows)} answered",
                data={"page": check.id},
            )
        message = self.renderer.render(
            "commscheck_result",
            ref=check.ref,
            answered=answered,
            silent=silent,
            unreachable=unreachable,
            total=len(rows),
        )
        framed = self.activations.frame(message, activation)
        await self.messenger.notice(check.room_id or "", framed, txn_id=f"check-result-{check.id}")


def _tried(row: PageTargetRow, tries: dict[int, list[PageAttemptRow]]) -> tuple[str, str, list]:
    """Someone who did not answer, and each other channel tried: (channel, sent or not)."""
    return (
        row.name,
        row.organisation,
        [(t.channel, t.sent_at is not None) for t in tries.get(row.id, [])],
    )

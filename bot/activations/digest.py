"""The DG platform digest: open activations at a glance, on a schedule (`ICC_DG_DIGEST`,
default `daily 08:00` in `ICC_TIMEZONE`; `off` for none).

One durable timer holds the next digest (`digest:<slot>`); each digest arms the next. At start-up
a digest armed under another schedule (the setting changed) is cancelled and the next slot of the
configured one armed; one due while the bot was down is posted late rather than lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.activations.activation import ActivationCapability
from bot.inputs.requests import Inputs
from bot.paging.board import page_summary
from bot.render import Message
from bot.rounds.recurrence import next_run, to_cron
from bot.storage import activation_store, core
from bot.storage.models import RUNNING, Timer, TimerKind
from bot.timeutil import format_duration, utcnow

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Digest(ActivationCapability):
    settings: Settings
    inputs: Inputs

    @property
    def cron(self) -> str | None:
        settings = self.settings
        return to_cron(settings.dg_digest) if settings.dg_digest and settings.dg_room else None

    async def ensure_armed(self) -> None:
        """Exactly one digest armed, under the configured schedule (or none when off)."""
        cron = self.cron
        async with self.db.session() as session:
            armed = [t for t in await core.armed_timers(session) if t.kind == TimerKind.DG_DIGEST]
            keep = [t for t in armed if cron and t.payload.get("cron") == cron]
            if keep:
                return
            if armed:
                await self.scheduler.cancel(session, "digest:", kind=TimerKind.DG_DIGEST)
            if cron:
                await self._arm(session, cron)

    async def _arm(self, session: AsyncSession, cron: str) -> None:
        slot = next_run(cron, str(self.settings.timezone.key), utcnow())
        await self.scheduler.arm(
            session, TimerKind.DG_DIGEST, f"digest:{slot.isoformat()}", slot, {"cron": cron}
        )

    async def on_digest(self, timer: Timer) -> None:
        cron = self.cron
        if cron is None:
            return
        async with self.db.session() as session:
            if timer.payload.get("cron") == cron:
                await self._arm(session, cron)
            running = await activation_store.by_status(session, RUNNING)
            inputs = self.inputs
            rows: list[dict[str, Any]] = []
            for activation in running:
                pages = await page_summary(session, activation.id)
                requests = await inputs.summary(session, activation.id)
                lead = self.keeper.current.contact_for(activation.lead)
                rows.append(
                    {
                        "activation": activation,
                        "lead": lead.name if lead else activation.lead,
                        "age": format_duration(utcnow() - activation.opened_at),
                        "pages": pages,
                        "overdue": requests.overdue,
                    }
                )
        message = self.renderer.render(
            "dg_digest", rows=rows, at=self.activations.local(utcnow(), with_date=True)
        )
        if any(r["activation"].exercise for r in rows):  # about an exercise: marked first and last
            marker = self.settings.exercise_marker
            message = Message(
                body=f"{marker}\n{message.body}\n{marker}",
                html=f"<p><b>{marker}</b></p>{message.html}<p><b>{marker}</b></p>",
            )
        assert self.settings.dg_room is not None
        room_id = await self.messenger.resolve_room(self.settings.dg_room)
        await self.messenger.notice(room_id, message, txn_id=f"digest-{timer.key}")

"""The escalation steps' durable timers (`TimerKind.PAGE_STEP`): their keys and their arming.

Per person paged directly (a *unit*: them and, later, their backup) a page has two steps, each a
timer keyed `a<activation>:pg<page>:<handle>:<step>`: `escalate` at their deadline, then
`unreachable` a window after that. Sending arms and moves the first, answers cancel a unit's or
arm one at once (a decline), escalation runs them and arms the second; keyed by the activation,
closing it cancels them all.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.activations.activation import timer_prefix
from bot.storage.models import ActivationRow, PageRow, TimerKind

if TYPE_CHECKING:
    from bot.runtime.scheduler import Scheduler

ESCALATE, UNREACHABLE = "escalate", "unreachable"


def unit_prefix(activation_id: int, page_id: int, handle: str) -> str:
    return f"{timer_prefix(activation_id)}pg{page_id}:{handle}:"


def step_timer(
    activation: ActivationRow, page: PageRow, handle: str, step: str, due: datetime
) -> tuple[str, datetime, dict[str, object]]:
    """One step's timer: its key, when it falls due, its payload."""
    key = unit_prefix(activation.id, page.id, handle) + step
    return key, due, {"page": page.id, "handle": handle, "step": step}


async def arm(
    scheduler: Scheduler,
    session: AsyncSession,
    activation: ActivationRow,
    page: PageRow,
    steps: list[tuple[str, str, datetime]],
) -> None:
    """Arm each (handle, step, due time); re-arming a step that has not fired moves it."""
    timers = [step_timer(activation, page, handle, step, due) for handle, step, due in steps]
    await scheduler.arm_many(session, TimerKind.PAGE_STEP, timers)

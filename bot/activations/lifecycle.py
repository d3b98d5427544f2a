"""An activation's life — `activate`, `level`, `handover`, `close`, `realworld` — and how each
step is announced: in the activation's room, and in the DG platform room when one is configured.

Each step is written to the logbook in the transaction that makes it; the announcements follow.
A DG notice that cannot be posted is said in the activation room, never swallowed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.actions.actions import action_view, open_actions
from bot.activations import exports
from bot.activations.activation import (
    ActivationCapability,
    ensure_not_closed,
    level_history,
    make_ref,
    timer_prefix,
)
from bot.directory.roles import Role
from bot.errors import UserError
from bot.matrix.send import ACTIVATION_INVITE_POWER, NewRoom
from bot.render import Message
from bot.review.document import ReviewFiles
from bot.review.review import Reviews
from bot.rounds.runs import Rounds
from bot.storage import activation_store as store
from bot.storage import round_store
from bot.storage.models import RUNNING, ActivationRow, ActivationStatus
from bot.timeutil import format_duration, utcnow

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)


def matrix_link(room_id: str) -> str:
    return f"https://matrix.to/#/{room_id}"


def room_labels(activation: ActivationRow) -> tuple[str, str]:
    """The activation room's name and topic, as room lists show them: its state at a glance
    (level while it runs; closed, and when, once it is)."""
    exercise = " [EX]" if activation.exercise else ""
    closed = "[closed] " if activation.status == ActivationStatus.CLOSED else ""
    name = f"{closed}[ICC]{exercise} {activation.ref} {activation.title}"
    if activation.closed_at is not None:
        state = f"CLOSED {activation.closed_at:%Y-%m-%d %H:%MZ}"
    else:
        state = f"level {activation.level}"
    topic = f"{activation.ref} · {activation.tlp} · {state} · {activation.title}"
    return name[:255], topic


@dataclass(frozen=True)
class HandedOver:
    activation: ActivationRow
    previous: str  # the outgoing lead's name
    successor: str
    summary: exports.HandoverSummary


@dataclass(frozen=True, kw_only=True)
class Lifecycle(ActivationCapability):
    settings: Settings
    rounds: Rounds
    reviews: Reviews

    # -- the steps, as the commands take them ----------------------------------------------------

    async def open(
        self, *, title: str, level: str, exercise: bool, tlp: str, lead: str, event_id: str
    ) -> tuple[Message, ActivationRow]:
        """`activate`: the activation, its room with the roster invited, the opening notice
        there and in the DG room. Returns the answer and the activation it is about."""
        title = " ".join(title.split())
        if len(title) > 200:
            raise UserError("The title is longer than 200 characters; keep it to one line.")
        activation, created = await self._open_row(
            title=title, level=level, exercise=exercise, tlp=tlp, lead=lead, event_id=event_id
        )
        facts: dict[str, Any] = {
            "activation": activation,
            "lead": self.keeper.current.name_of(activation.lead),
            "opened": self.activations.local(activation.opened_at, with_date=True),
            "link": matrix_link(activation.room_id or ""),
        }
        if created:
            assert activation.room_id is not None
            await self._post(
                activation,
                self.renderer.render("activation_opened", **facts),
                f"open-{activation.ref}",
            )
            dg_notice = self.renderer.render("dg_activation", **facts)
            if problem := await self._announce_dg(dg_notice, activation):
                await self._post(activation, self.renderer.render("user_error", text=problem))
        return self.renderer.render("activation_reply", **facts), activation

    async def change_level_in(self, room_id: str, level: str, by: str) -> Message:
        """`level`: changed, logged, announced in the DG room."""
        activation = await self.activations.open_in_room(room_id)
        previous = await self._change_level(activation, level, by)
        await self._relabel(activation)
        facts: dict[str, Any] = {
            "activation": activation,
            "previous": previous,
            "by": self.keeper.current.name_of(by),
            "at": self.activations.local(utcnow()),
        }
        problem = await self._announce_dg(self.renderer.render("dg_level", **facts), activation)
        return self.renderer.render("level_changed", problem=problem, **facts)

    async def hand_over_in(self, room_id: str, successor_key: str, by: str) -> HandedOver:
        """`handover`: the new lead (an ICC lead) invited with power, with a summary of what
        is open."""
        activation = await self.activations.open_in_room(room_id)
        successor = self.keeper.current.find(successor_key)
        if successor is None:
            raise UserError(f"`{successor_key}` is not in the directory.")
        if successor.role is not Role.LEAD:
            raise UserError(
                f"{successor.name} is {successor.role.value}, not icc-lead; pick a lead."
            )
        if successor.matrix_id is None:  # the directory refuses a lead without one
            raise UserError(f"{successor.name} is not on Matrix; pick a lead who is.")
        previous = await self._hand_over(activation, successor.matrix_id, by)
        assert activation.room_id is not None
        await self.messenger.invite(activation.room_id, successor.matrix_id)
        await self.messenger.set_power(activation.room_id, successor.matrix_id, 100)
        async with self.db.session() as session:
            summary = await exports.handover_summary(session, activation)
        return HandedOver(
            activation, self.keeper.current.name_of(previous), successor.name, summary
        )

    async def close_in(self, room_id: str, summary: str | None, by: str) -> Message:
        """`close`: pending steps end; the record bundle, with the after-action review, is
        posted, the DG told; every participant is asked for feedback by DM, by timers armed
        with the close (`Reviews.arm_asks`)."""
        activation = await self.activations.resolve(room_id, None)
        ensure_not_closed(activation)  # a suspended exercise is closed like any other
        await self.rounds.close_running(activation)
        cancelled, asked = await self._close_row(activation, summary, by)
        assert activation.room_id is not None
        assert activation.closed_at is not None
        await self._relabel(activation)
        review: ReviewFiles | None = None
        try:
            review = await self.reviews.for_close(activation, by)
        except Exception:  # the close and its record go out without it; `review` can retry
            log.exception("the after-action review of %s could not be built", activation.ref)
        async with self.db.session() as session:
            bundle = await exports.build_bundle(
                session, activation, review.files() if review else None
            )
            history = await level_history(session, activation)
            still_open = (await open_actions(session, activation.id)).open
        for name, data, mimetype in bundle.files():
            await self.messenger.send_file(
                activation.room_id,
                data,
                filename=name,
                mimetype=mimetype,
                txn_id=f"bundle-{activation.ref}-{name}",
            )
        facts: dict[str, Any] = {
            "activation": activation,
            "by": self.keeper.current.name_of(by),
            "cancelled": cancelled,
            "duration": format_duration(activation.closed_at - activation.opened_at),
            "closed": self.activations.local(activation.closed_at, with_date=True),
            "history": [h.level for h in history],
            "bundle": bundle,
            "review": review,
            "open_actions": [
                action_view(a, self.keeper.current, self.settings.timezone) for a in still_open
            ],
        }
        problem = await self._announce_dg(self.renderer.render("dg_closed", **facts), activation)
        facts["asked"] = asked
        return self.renderer.render("close_report", problem=problem, **facts)

    async def real_world(self, reason: str, by: str) -> Message:
        """`realworld`: every running exercise suspended, a banner in its room and the DG's."""
        suspended = await self._suspend_exercises(reason, by)
        for activation in suspended:
            banner = self.renderer.render(
                "realworld_banner",
                activation=activation,
                reason=reason,
                by=self.keeper.current.name_of(by),
                at=self.activations.local(utcnow()),
            )
            if activation.room_id:
                await self._post(activation, banner)
            await self._announce_dg(banner, activation)
        return self.renderer.render("realworld_reply", suspended=[a.ref for a in suspended])

    async def overview(self) -> list[ActivationRow]:
        """Every activation not yet closed."""
        async with self.db.session() as session:
            return await store.by_status(session, RUNNING)

    async def _relabel(self, activation: ActivationRow) -> None:
        """The room's name and topic follow its state; a failure is logged, never fatal: the
        change itself is made and announced."""
        assert activation.room_id is not None
        name, topic = room_labels(activation)
        try:
            await self.messenger.label_room(activation.room_id, name=name, topic=topic)
        except Exception:
            log.exception("could not relabel %s (%s)", activation.room_id, activation.ref)

    async def _post(
        self, activation: ActivationRow, message: Message, txn_id: str | None = None
    ) -> None:
        assert activation.room_id is not None
        framed = self.activations.frame(message, activation)
        await self.messenger.notice(activation.room_id, framed, txn_id=txn_id)

    # -- the rows ---------------------------------------------------------------------------------

    async def _open_row(
        self, *, title: str, level: str, exercise: bool, tlp: str, lead: str, event_id: str
    ) -> tuple[ActivationRow, bool]:
        """Create the activation and its room; returns (activation, created now).

        Keyed by the command's event ID, so a command re-run after a crash finds the activation
        it began instead of opening a second one.
        """
        async with self.db.session() as session:
            existing = await store.by_opening_event(session, event_id)
            if existing is None:
                year = utcnow().year
                number = await store.next_number(session, exercise=exercise, year=year)
                existing = ActivationRow(
                    ref=make_ref(exercise=exercise, year=year, number=number),
                    exercise=exercise,
                    year=year,
                    number=number,
                    title=title,
                    level=level,
                    tlp=tlp,
                    lead=lead,
                    opened_by_event=event_id,
                    opened_at=utcnow(),
                )
                session.add(existing)
                await session.flush()
                await self.activations.add_entry(
                    session,
                    existing,
                    "system.activate",
                    f"Activation opened at level {level} ({tlp}): {title}",
                    lead,
                    data={"level": level, "tlp": tlp, "exercise": exercise},
                )
        activation = existing
        created = activation.room_id is None
        if created:
            activation = await self._create_room(activation)
        return activation, created

    async def _create_room(self, activation: ActivationRow) -> ActivationRow:
        directory = self.keeper.current
        roster = [
            c.matrix_id
            for c in directory.contacts.values()
            if c.role in (Role.LEAD, Role.MEMBER)
            and c.matrix_id
            and c.matrix_id != self.activations.bot_id
        ]
        invite = sorted(set(roster) | {activation.lead})
        name, topic = room_labels(activation)
        plan = NewRoom(
            name,
            topic,
            invite,
            admins=[activation.lead],
            encrypted=self.settings.e2ee,
            invite_power=ACTIVATION_INVITE_POWER,
        )
        room_id = await self.messenger.create_room(plan)
        async with self.db.session() as session:
            await store.set_fields(session, activation.id, room_id=room_id)
        activation.room_id = room_id
        log.info("activation %s opened in %s", activation.ref, room_id)
        return activation

    async def _change_level(self, activation: ActivationRow, level: str, by: str) -> str:
        """Returns the previous level; refuses a no-op."""
        if level == activation.level:
            raise UserError(f"{activation.ref} is already at level {level}; nothing changed.")
        previous = activation.level
        entry = ("system.level", f"Level {previous} → {level}")
        data = {"level": level, "previous": previous}
        await self._set_logged(activation, "level", level, entry, by, data)
        return previous

    async def _hand_over(self, activation: ActivationRow, new_lead: str, by: str) -> str:
        previous = activation.lead
        if new_lead == previous:
            raise UserError("You already lead this activation; nothing changed.")
        entry = ("system.handover", f"Lead handed over from {previous} to {new_lead}")
        data = {"from": previous, "to": new_lead}
        await self._set_logged(activation, "lead", new_lead, entry, by, data)
        return previous

    async def _set_logged(
        self,
        activation: ActivationRow,
        field: str,
        value: str,
        entry: tuple[str, str],
        by: str,
        data: dict[str, str],
    ) -> None:
        """Set one field and log its change (kind, text) in the same transaction."""
        kind, text = entry
        async with self.db.session() as session:
            await store.set_fields(session, activation.id, **{field: value})
            await self.activations.add_entry(session, activation, kind, text, by, data=data)
        setattr(activation, field, value)

    async def _close_row(
        self, activation: ActivationRow, summary: str | None, by: str
    ) -> tuple[int, int]:
        """Close; cancels every pending step of the activation, ends its round schedules (so
        `rounds` no longer lists them) and arms the participants' feedback requests. Returns
        how many steps were pending and how many people will be asked."""
        async with self.db.session() as session:
            await store.lock_activation(session, activation.id)
            fresh = await store.by_ref(session, activation.ref)
            assert fresh is not None
            ensure_not_closed(fresh)
            now = utcnow()
            await store.set_fields(
                session,
                activation.id,
                status=ActivationStatus.CLOSED,
                closed_at=now,
                closing_summary=summary,
            )
            cancelled = await self.scheduler.cancel(session, timer_prefix(activation.id))
            await round_store.end_schedules(session, activation.id, now)
            asked = await self.reviews.arm_asks(session, activation)
            await self.activations.add_entry(
                session,
                activation,
                "system.close",
                f"Activation closed: {summary or '—'}",
                by,
                data={"cancelled_steps": cancelled},
            )
        activation.status, activation.closed_at, activation.closing_summary = (
            ActivationStatus.CLOSED,
            now,
            summary,
        )
        return cancelled, asked

    async def _suspend_exercises(self, reason: str, by: str) -> list[ActivationRow]:
        """`realworld`: every running exercise stops at once, its pending steps with it."""
        suspended: list[ActivationRow] = []
        async with self.db.session() as session:
            for activation in await store.by_status(session, [ActivationStatus.OPEN]):
                if not activation.exercise:
                    continue
                await store.set_fields(session, activation.id, status=ActivationStatus.SUSPENDED)
                await self.scheduler.cancel(session, timer_prefix(activation.id))
                await self.activations.add_entry(
                    session,
                    activation,
                    "system.realworld",
                    f"Exercise suspended for a real-world event: {reason}",
                    by,
                    data={"reason": reason},
                )
                activation.status = ActivationStatus.SUSPENDED
                suspended.append(activation)
        return suspended

    async def _announce_dg(self, message: Message, activation: ActivationRow) -> str | None:
        """Post in the DG platform room when one is configured. Returns an error text, if any,
        for the caller to show in the activation room: a DG notice never fails silently."""
        dg_room = self.settings.dg_room
        if not dg_room:
            return None
        try:
            room_id = await self.messenger.resolve_room(dg_room)
            if not self.messenger.is_joined(room_id):
                await self.messenger.join(room_id)
            await self.messenger.notice(room_id, self.activations.frame(message, activation))
        except Exception as exc:
            log.exception("posting to the DG room %s failed", dg_room)
            return f"The notice to the DG platform room ({dg_room}) could not be posted: {exc}"
        return None

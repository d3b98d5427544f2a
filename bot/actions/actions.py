"""Actions (`A-n`): who does what by when in an activation (SPEC, "Actions and playbooks").

An action has owners (directory handles) and, if given, a due time. The owners are told by DM in
their language; with a due time they are reminded at three quarters of the time to it and chased
at it, by DM and in the activation room. Both steps are durable timers keyed under the
activation (`a<id>:A<n>:remind`), so they fire on time and once across restarts, and closing the
activation, or the action being done, ends them. Every change is a logbook entry in the same
transaction as the change.

An improvement action (a lesson, `log … --lesson`) outlives its activation: its steps are keyed
outside the activation's (`improve:A<n>:…`), so closing does not end them; it is reminded,
chased, done and reassigned after the close like any other, and `actions --improvement` lists
them across activations.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bot.activations.activation import ActivationCapability, timer_prefix
from bot.directory.model import Contact, Directory
from bot.directory.roles import Role
from bot.errors import UserError
from bot.matrix.send import MatrixSendError
from bot.render import Message
from bot.storage import action_store as store
from bot.storage import activation_store
from bot.storage.models import (
    ActionRow,
    ActionStatus,
    ActivationRow,
    ActivationStatus,
    Timer,
    TimerKind,
)
from bot.timeutil import format_due, utcnow

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from bot.reach.direct import DirectMessages

log = logging.getLogger(__name__)

ACTION_REF = re.compile(r"^A-(\d+)$", re.IGNORECASE)
REMIND, CHASE = "remind", "chase"
REMIND_AT = 0.75  # of the time from creation to the due time
MARKS = {REMIND: "reminded_at", CHASE: "chased_at"}  # each step goes once: when it went
WHICH = ("open", "mine", "overdue", "all")
DM_TEMPLATE = "action"  # as assigned, reminded or chased, in the owner's language
IMPROVEMENT_PREFIX = "improve:"  # an improvement action's steps: not ended by the close


@dataclass(frozen=True)
class ActionSummary:
    """An activation's actions as status, handover, sitreps and round agendas tell them."""

    open: list[ActionRow]
    overdue: list[ActionRow]


async def open_actions(session: AsyncSession, activation_id: int) -> ActionSummary:
    """The activation's open actions, and which of them are overdue."""
    actions = await store.of_activation(session, activation_id, open_only=True)
    now = utcnow()
    return ActionSummary(actions, [a for a in actions if a.overdue(now)])


def action_view(
    action: ActionRow, directory: Directory, zone: ZoneInfo, lang: str = "en"
) -> dict[str, Any]:
    """What messages show of an action: ref, text, owners by name, due time in `zone`, state."""
    contacts = directory.contacts
    return {
        "ref": action.ref,
        "text": action.text,
        "owners": ", ".join(contacts[h].name if h in contacts else h for h in action.owners),
        "due": format_due(action.due_at, zone, lang=lang) if action.due_at else None,
        "overdue": action.overdue(utcnow()),
        "done": action.status == ActionStatus.DONE,
    }


def action_id(ref: str) -> int:
    """`A-12` → 12; anything else refused, saying what an action's ref looks like."""
    found = ACTION_REF.match(ref.strip())
    if not found:
        raise UserError(f"`{ref}` is not an action; actions are named A-12.")
    return int(found.group(1))


@dataclass(frozen=True, kw_only=True)
class Actions(ActivationCapability):
    direct: DirectMessages

    # -- making and changing ----------------------------------------------------------------------

    async def create(
        self,
        activation: ActivationRow,
        *,
        text: str,
        people: list[Contact],
        due: datetime | None,
        by: str,
        event_id: str,
        source: str | None = None,
        lesson: str | None = None,
    ) -> tuple[ActionRow, list[str]]:
        """The action, logged and its steps armed in one transaction, then its owners told;
        returns it and the names of owners no DM reached. Made once per event: a command run
        again after a crash finds it. With `lesson` (the lesson's words), the lesson is logged
        first and the action is an improvement action that outlives the activation."""
        async with self.db.session() as session:
            action = await store.by_event(session, event_id)
            if action is not None:
                return action, []
            now = utcnow()
            action = ActionRow(
                activation_id=activation.id,
                text=text,
                owners=[p.handle for p in people],
                due_at=due,
                created_by=by,
                created_at=now,
                opened_by_event=event_id,
                source=source,
                improvement=lesson is not None,
            )
            if lesson is not None:
                entry = await self.activations.add_entry(
                    session, activation, "lesson", lesson, by, data={"improvement": True}
                )
                action.source = source or f"lesson #{entry.seq}"
            session.add(action)
            await session.flush()
            await self._arm(session, activation, action, now)
            origin = f" (from {action.source})" if action.source else ""
            await self.activations.add_entry(
                session,
                activation,
                "system.action",
                f"{action.ref} for {self._names(action)}{self._due_text(action)}: {text}{origin}",
                by,
                data={
                    "action": action.id,
                    "owners": action.owners,
                    "source": action.source,
                    "improvement": action.improvement,
                },
            )
        return action, await self._tell(activation, action, people, "assigned", event_id)

    async def done(
        self, ref: str, *, by: str, role: Role, note: str | None
    ) -> tuple[Message, ActivationRow]:
        """`done A-n [note]`: by an owner, or any member; the steps still armed end. The answer,
        and the activation it is about (its frame: an owner answers in their direct room)."""
        number = action_id(ref)
        async with self.db.session() as session:
            action = await store.action(session, number)
            activation = await self._activation_of(session, action, ref)
            assert action is not None
            if not self._may_change(action, by, role):
                raise UserError(
                    f"{action.ref} is {self._names(action)}'s; they or a member close it."
                )
            if action.status == ActionStatus.DONE:
                told = self.renderer.render(
                    "action_done_before", action=action, **self.view(action)
                )
                return told, activation
            now = utcnow()
            action.status, action.done_at, action.done_by = ActionStatus.DONE, now, by
            action.done_note = note
            session.add(action)
            await self.scheduler.cancel(session, self._prefix(activation, action))
            late = action.due_at is not None and now > action.due_at
            await self.activations.add_entry(
                session,
                activation,
                "system.action_done",
                f"{action.ref} done{' late' if late else ''}" + (f": {note}" if note else ""),
                by,
                data={"action": action.id, "late": late},
            )
        told = self.renderer.render("action_done", action=action, late=late, **self.view(action))
        return told, activation

    async def reassign(self, ref: str, people: list[Contact], *, by: str, event_id: str) -> Message:
        """`action reassign A-n <targets>`: new owners, told by DM; the steps go to them."""
        number = action_id(ref)
        async with self.db.session() as session:
            action = await store.action(session, number)
            activation = await self._activation_of(session, action, ref)
            assert action is not None
            if action.status == ActionStatus.DONE:
                raise UserError(f"{action.ref} is done already; open a new action instead.")
            before = self._names(action)
            action.owners = [p.handle for p in people]
            session.add(action)
            await self.activations.add_entry(
                session,
                activation,
                "system.action_reassigned",
                f"{action.ref} reassigned from {before} to {self._names(action)}",
                by,
                data={"action": action.id, "owners": action.owners},
            )
        missed = await self._tell(activation, action, people, "assigned", event_id)
        return self.renderer.render(
            "action_reassigned", action=action, before=before, missed=missed, **self.view(action)
        )

    # -- reading ----------------------------------------------------------------------------------

    async def improvements(self, which: str, *, sender: str, role: Role) -> Message:
        """`actions --improvement`: the lessons' improvement actions of every activation, open
        or closed (open by default; `mine`, `overdue`, `all` as for `actions`)."""
        async with self.db.session() as session:
            actions = self._chosen(await store.improvements(session), which, sender, role)
            refs = await activation_store.by_ids(session, [a.activation_id for a in actions])
        return self.renderer.render(
            "improvements",
            which=which,
            actions=[
                self.view(a) | {"action": a, "activation": refs[a.activation_id]} for a in actions
            ],
        )

    async def listing(self, room_id: str, which: str, *, sender: str, role: Role) -> Message:
        """`actions [open|mine|overdue|all]` in an activation's room; a partner sees their own."""
        activation = await self.activations.resolve(room_id, None)
        async with self.db.session() as session:
            actions = await store.of_activation(session, activation.id)
        actions = self._chosen(actions, which, sender, role)
        return self.renderer.render(
            "actions",
            activation=activation,
            which=which,
            actions=[self.view(a) | {"action": a} for a in actions],
        )

    # -- the steps --------------------------------------------------------------------------------

    async def on_step(self, timer: Timer) -> None:
        """The reminder (before the due time) or the chase (at it), each once, to the owners
        then, while the action is open and its activation too (an improvement action: after
        the close as well)."""
        step = timer.payload["step"]
        async with self.db.session() as session:
            action = await store.action(session, timer.payload["action"])
            activation = (
                await activation_store.by_id(session, action.activation_id) if action else None
            )
        if action is None or activation is None:
            return
        if activation.status != ActivationStatus.OPEN and not action.improvement:
            return
        if action.status != ActionStatus.OPEN or getattr(action, MARKS[step]) is not None:
            return
        if step == REMIND and action.due_at is not None and utcnow() >= action.due_at:
            return  # fell due while the bot was away: the chase says it, never after it
        people = self._owners(action)
        missed = await self._tell(activation, action, people, step, step)
        if step == CHASE:
            message = self.renderer.render("action_overdue", **self.view(action))
            await self.messenger.notice(
                activation.room_id or "",
                self.activations.frame(message, activation),
                txn_id=f"action-overdue-{action.id}",
            )
        async with self.db.session() as session:
            fresh = await store.action(session, action.id)
            assert fresh is not None
            setattr(fresh, MARKS[step], utcnow())
            session.add(fresh)
            await self.activations.add_entry(
                session,
                activation,
                f"system.action_{step}",
                f"{action.ref}: {'reminded' if step == REMIND else 'chased'} {self._names(action)}"
                + (f" (not reached: {', '.join(missed)})" if missed else ""),
                self.activations.bot_id,
                data={"action": action.id},
            )

    async def _arm(
        self, session: AsyncSession, activation: ActivationRow, action: ActionRow, now: datetime
    ) -> None:
        if action.due_at is None:
            return
        prefix = self._prefix(activation, action)
        remind = now + (action.due_at - now) * REMIND_AT
        payload = {"action": action.id}
        await self.scheduler.arm_new(
            session,
            TimerKind.ACTION_STEP,
            [
                (prefix + REMIND, remind, payload | {"step": REMIND}),
                (prefix + CHASE, action.due_at, payload | {"step": CHASE}),
            ],
        )

    async def _tell(
        self,
        activation: ActivationRow,
        action: ActionRow,
        people: list[Contact],
        step: str,
        occasion: str,
    ) -> list[str]:
        """The action (as assigned, or at its reminder or chase, `step`) to each owner by DM in
        their language; the names it did not reach. `occasion` (the command's event, or the
        step) makes each message go once."""
        missed = []
        for person in people:
            if person.matrix_id is None:
                missed.append(person.name)
                continue
            lang = self.renderer.language_for(DM_TEMPLATE, person.languages)
            message = self.renderer.render(
                DM_TEMPLATE,
                lang=lang,
                activation=activation,
                step=step,
                **self.view(action, person, lang),
            )
            try:
                room_id = await self.direct.room_for(person.matrix_id)
                await self.messenger.ring(
                    room_id,
                    self.activations.frame(message, activation),
                    mentions=(person.matrix_id,),
                    txn_id=f"action-{step}-{action.id}-{person.handle}-{occasion}",
                )
            except MatrixSendError as exc:
                log.warning("%s to %s failed: %s", action.ref, person.handle, exc)
                missed.append(person.name)
        return missed

    # -- helpers ----------------------------------------------------------------------------------

    async def _activation_of(
        self, session: AsyncSession, action: ActionRow | None, ref: str
    ) -> ActivationRow:
        """The open activation the action belongs to, or a refusal saying why not; an
        improvement action's whatever its state (it outlives the activation)."""
        activation = await activation_store.by_id(session, action.activation_id) if action else None
        if action is None or activation is None:
            raise UserError(f"No action {ref.upper()}.")
        if activation.status != ActivationStatus.OPEN and not action.improvement:
            raise UserError(
                f"{action.ref} belongs to {activation.ref}, which is {activation.status}."
            )
        return activation

    def _may_change(self, action: ActionRow, sender: str, role: Role) -> bool:
        return role.allows(Role.MEMBER) or self._handle_of(sender) in action.owners

    def _handle_of(self, matrix_id: str) -> str | None:
        contact = self.keeper.current.contact_for(matrix_id)
        return contact.handle if contact else None

    def _owners(self, action: ActionRow) -> list[Contact]:
        contacts = self.keeper.current.contacts
        return [contacts[h] for h in action.owners if h in contacts]

    def _names(self, action: ActionRow) -> str:
        return str(action_view(action, self.keeper.current, ZoneInfo("UTC"))["owners"])

    def _due_text(self, action: ActionRow) -> str:
        if action.due_at is None:
            return ""
        return f" by {format_due(action.due_at, self.activations.settings.timezone)}"

    def view(
        self, action: ActionRow, person: Contact | None = None, lang: str = "en"
    ) -> dict[str, Any]:
        """What the templates show of an action, its times in the reader's zone."""
        zone = person.zone if person else self.activations.settings.timezone
        return action_view(action, self.keeper.current, zone, lang)

    def _chosen(
        self, actions: list[ActionRow], which: str, sender: str, role: Role
    ) -> list[ActionRow]:
        """The actions `which` asks for (open, mine, overdue, all); a partner's own only."""
        if which not in WHICH:
            raise UserError(f"`{which}`: say one of {', '.join(WHICH)}.")
        if not role.allows(Role.MEMBER) or which == "mine":
            mine = self._handle_of(sender)
            actions = [a for a in actions if mine in a.owners]
        if which == "overdue":
            now = utcnow()
            return [a for a in actions if a.overdue(now)]
        if which == "all":
            return actions
        return [a for a in actions if a.status == ActionStatus.OPEN]

    @staticmethod
    def _prefix(activation: ActivationRow, action: ActionRow) -> str:
        if action.improvement:  # not under the activation's prefix: the close leaves them armed
            return f"{IMPROVEMENT_PREFIX}{action.ref}:"
        return f"{timer_prefix(activation.id)}{action.ref}:"

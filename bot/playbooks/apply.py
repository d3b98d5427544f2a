"""Applying a playbook to an activation: its checklist becomes actions, its pages go out, its
rounds are scheduled and its groups invited — each an ordinary action, page or round, made as
the commands make them and logged as coming from the playbook (SPEC, "Actions and playbooks").

Owners written as roles are resolved when the playbook is applied: `lead` is the activation's
lead; `member` is the member applying it (who hands it on with `action reassign` when someone
else should have it), or the lead when a partner's command applied it. A checklist item's due
time counts from when the activation opened, so a playbook run late has its early items due at
once. Each item is keyed by the applying command's event and its place in the playbook: a
command re-run after a crash makes nothing twice. One item that cannot be made (nobody on duty
in a team now, a DG room not configured) is reported and the others are made all the same.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.actions.actions import Actions
from bot.activations.activation import Activations
from bot.activations.asked import Asked
from bot.directory.model import Contact
from bot.directory.roles import Role
from bot.errors import UserError
from bot.matrix.send import MatrixSendError
from bot.paging.send import URGENT_WINDOW, Pager
from bot.playbooks.model import NOW, ChecklistItem, Playbook, PlaybookPage, PlaybookRound
from bot.rota.duty import Duty
from bot.rounds.runs import DEFAULT_WINDOW, Rounds
from bot.storage.models import ActivationRow

if TYPE_CHECKING:
    from bot.directory.keeper import DirectoryKeeper
    from bot.matrix.send import Messenger
    from bot.render import Message, Renderer
    from bot.settings import Settings
    from bot.storage.db import Database

log = logging.getLogger(__name__)

PAGE_LANGUAGE = "en"  # the page's own text, as the logbook and the cell's room show it


@dataclass
class Applied:
    """What applying made, and what it could not."""

    actions: list[str]
    pages: list[str]
    rounds: int
    invited: list[str]
    problems: list[str]


@dataclass(frozen=True, kw_only=True)
class Playbooks:
    settings: Settings
    db: Database
    keeper: DirectoryKeeper
    renderer: Renderer
    messenger: Messenger
    activations: Activations
    actions: Actions
    pager: Pager
    rounds: Rounds
    duty: Duty

    def get(self, key: str) -> Playbook:
        """The playbook in force called `key`, or a refusal naming those there are."""
        playbooks = self.keeper.playbooks
        found = playbooks.get(key.strip().lower())
        if found is None:
            known = ", ".join(sorted(playbooks)) or "none in config/playbooks/"
            raise UserError(f"No playbook `{key}`; there are: {known}.")
        return found

    def listing(self, languages: tuple[str, ...]) -> Message:
        """`playbooks`: each one's key, name and what it makes, in the reader's language."""
        shown = [
            {
                "key": p.key,
                "name": p.name_for(*languages),
                "description": p.description_for(*languages),
                "level": p.level,
                "tlp": p.tlp,
                "exercise": p.exercise,
                "counts": (len(p.checklist), len(p.pages), len(p.rounds)),
            }
            for p in sorted(self.keeper.playbooks.values(), key=lambda p: p.key)
        ]
        return self.renderer.render("playbooks", playbooks=shown)

    async def apply(
        self, activation: ActivationRow, key: str, *, by: str, event_id: str
    ) -> Message:
        """`playbook run`, or `activate --playbook`: every item made; the answer says what."""
        playbook = self.get(key)
        applied = Applied([], [], 0, [], [])
        for index, item in enumerate(playbook.checklist):
            await self._action(activation, playbook, index, item, by, event_id, applied)
        for index, page in enumerate(playbook.pages):
            await self._page(activation, index, page, by, event_id, applied)
        for index, round_ in enumerate(playbook.rounds):
            await self._round(activation, index, round_, by, event_id, applied)
        await self._invite(activation, playbook, applied)
        async with self.db.session() as session:
            await self.activations.add_entry(
                session,
                activation,
                "system.playbook",
                f"Playbook {playbook.key} applied: {len(applied.actions)} actions, "
                f"{len(applied.pages)} pages, {applied.rounds} rounds"
                + (f"; not made: {'; '.join(applied.problems)}" if applied.problems else ""),
                by,
                data={"playbook": playbook.key, "actions": applied.actions, "pages": applied.pages},
            )
        return self.renderer.render(
            "playbook_applied", playbook=playbook, name=playbook.name_for(), applied=applied
        )

    async def _action(
        self,
        activation: ActivationRow,
        playbook: Playbook,
        index: int,
        item: ChecklistItem,
        by: str,
        event_id: str,
        applied: Applied,
    ) -> None:
        try:
            people = self._owners(item, activation, by)
            made, _missed = await self.actions.create(
                activation,
                text=item.text_for(*people[0].languages),
                people=people,
                due=activation.opened_at + item.due,
                by=by,
                event_id=f"{event_id}/playbook/a{index}",
                source=f"playbook:{playbook.key}",
            )
        except UserError as exc:
            applied.problems.append(f"checklist item {index + 1}: {exc}")
            return
        applied.actions.append(made.ref)

    def _owners(self, item: ChecklistItem, activation: ActivationRow, by: str) -> list[Contact]:
        """The item's owners: a role resolved now, or its targets as `action --owner` takes them."""
        directory = self.keeper.current
        if item.role == "lead" or (item.role == "member" and not self._member(by)):
            lead = directory.contact_for(activation.lead)
            if lead is None:
                raise UserError("the activation's lead is not in the directory")
            return [lead]
        if item.role == "member":
            applying = directory.contact_for(by)
            assert applying is not None  # `_member` found them
            return [applying]
        people, _duty = self.duty.resolve([item.owner], besides=self.settings.user_id)
        return people

    def _member(self, matrix_id: str) -> bool:
        return self.keeper.current.role_of(matrix_id).allows(Role.MEMBER)

    async def _page(
        self,
        activation: ActivationRow,
        index: int,
        page: PlaybookPage,
        by: str,
        event_id: str,
        applied: Applied,
    ) -> None:
        try:
            people, duty = self.duty.resolve(list(page.targets), besides=self.settings.user_id)
            window = page.ack or (URGENT_WINDOW if page.urgent else self.settings.ack_timeout)
            made = await self.pager.create(
                activation,
                sender=by,
                text=page.text_for(PAGE_LANGUAGE),
                texts=page.text,  # each person reads it in their language where it has one
                people=people,
                window=window,
                urgent=page.urgent,
                event_id=f"{event_id}/playbook/p{index}",
                duty=duty,
            )
        except UserError as exc:
            applied.problems.append(f"page {index + 1}: {exc}")
            return
        await self.pager.deliver(made, activation, reply_to=None)  # its command may be elsewhere
        applied.pages.append(made.ref)

    async def _round(
        self,
        activation: ActivationRow,
        index: int,
        round_: PlaybookRound,
        by: str,
        event_id: str,
        applied: Applied,
    ) -> None:
        assert activation.room_id is not None
        try:
            people = (
                self.duty.resolve(list(round_.participants), besides=self.settings.user_id)[0]
                if round_.participants
                else None
            )
            asked = Asked(
                activation.room_id,
                people,
                round_.window or DEFAULT_WINDOW,
                by,
                f"{event_id}/playbook/r{index}",
                round_.agenda_text,
            )
            if round_.when == NOW:
                await self.rounds.start_now(asked, room=round_.room)
            else:
                await self.rounds.schedule(asked, room=round_.room, when=round_.when, tz=round_.tz)
        except UserError as exc:
            applied.problems.append(f"round {index + 1}: {exc}")
            return
        applied.rounds += 1

    async def _invite(
        self, activation: ActivationRow, playbook: Playbook, applied: Applied
    ) -> None:
        """The playbook's groups into the activation room: those on Matrix and not in it yet."""
        assert activation.room_id is not None
        present = self.messenger.members(activation.room_id)
        people: dict[str, Any] = {}
        for group in playbook.invite:
            for person in self.keeper.current.resolve([group]).people:
                if person.matrix_id and person.matrix_id not in present:
                    people.setdefault(person.matrix_id, person)
        for matrix_id, person in people.items():
            try:
                await self.messenger.invite(activation.room_id, matrix_id)
            except MatrixSendError as exc:
                applied.problems.append(f"invite {person.name}: {exc}")
                continue
            applied.invited.append(person.name)

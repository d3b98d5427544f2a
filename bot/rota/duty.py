"""Who is on duty now: the rotas in force (`DirectoryKeeper.rotas`) with the overrides leads
set by command (`oncall override`), for `duty:<team>` targets, `oncall`, escalation and the
shift-change brief.

An override runs from when it was set until its `until`, and beats the rota for that time; it
ends by itself. Overrides live in the database (`duty_override`) and, for the instant answers a
page's resolution needs, in memory: read at start, added to by the command — only the active
instance answers commands, so the copy cannot go stale.

At each shift change the incoming person is told by DM what is open (`on_shift`): a durable
timer per team, armed for the next change and re-armed from each one, checked against the rota
in force when it fires (a reload may have moved the change), so the brief goes out once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.activations.activation import ActivationCapability
from bot.activations.situation import read_situation
from bot.directory.model import Contact
from bot.errors import UserError
from bot.inputs.requests import Inputs
from bot.reach.direct import DirectMessages
from bot.render import Message
from bot.rota.model import DUTY, OutsideWindow, Rota
from bot.rounds.runs import Rounds
from bot.storage import activation_store
from bot.storage import duty_store as store
from bot.storage.models import RUNNING, ActivationRow, DutyOverrideRow, Timer, TimerKind
from bot.timeutil import format_local_utc, utcnow

log = logging.getLogger(__name__)

BRIEF_TEMPLATE = "shift_brief"
LATE_BRIEF = timedelta(hours=1)  # a shift change the bot missed by more is not briefed late


@dataclass(frozen=True)
class OnDuty:
    """Someone on duty in a team: until when, and whether by an override (`set_by`)."""

    contact: Contact
    team: str
    until: datetime | None  # None: beyond the stretch the rota is laid out for
    set_by: str | None = None  # the lead who put them on duty, for an override


@dataclass(frozen=True, kw_only=True)
class Duty(ActivationCapability):
    direct: DirectMessages
    inputs: Inputs
    rounds: Rounds
    overrides: dict[str, list[DutyOverrideRow]] = field(default_factory=dict)

    # -- who is on duty ---------------------------------------------------------------------------

    def teams(self) -> list[str]:
        return self.keeper.rotas.teams()

    def rota(self, team: str) -> Rota:
        rotas = self.keeper.rotas
        if team not in rotas:
            known = ", ".join(rotas.teams()) or "none configured"
            raise UserError(f"No duty rota for team `{team}` (teams: {known}).")
        return rotas[team]

    def on_duty(self, team: str, at: datetime | None = None) -> list[OnDuty]:
        """Who is on duty in `team` at `at` (now): an override's person, else the rota's."""
        at = at or utcnow()
        rota = self.rota(team)
        override = self._override(team, at)
        if override is not None:
            return self._people(team, [(override.handle, override.until)], override.set_by)
        try:
            handles = [shift.handle for shift in rota.on_duty(at)]
        except OutsideWindow:
            return []
        return self._people(team, [(h, rota.relieved(h, at)) for h in handles])

    def next_on(self, team: str, at: datetime | None = None) -> tuple[datetime, list[OnDuty]]:
        """Who comes on duty next in `team` after those on duty at `at`, and when: after an
        override, whoever the rota has then; else the next shift of someone not on now."""
        at = at or utcnow()
        rota = self.rota(team)
        override = self._override(team, at)
        try:
            if override is not None and rota.on_duty(override.until):
                start, shifts = override.until, rota.on_duty(override.until)
            else:
                after = override.until if override is not None else at
                on_now = [] if override is not None else [s.handle for s in rota.on_duty(at)]
                shifts = rota.next_after(after, besides=on_now)
                start = shifts[0].start if shifts else at
            spans = [(s.handle, rota.relieved(s.handle, start)) for s in shifts]
        except OutsideWindow:
            return at, []
        return start, self._people(team, spans)

    def backup(self, team: str, handle: str, at: datetime | None = None) -> Contact | None:
        """Who stands in for `handle`, paged as `team`'s duty officer, when they do not answer:
        whoever is on duty now if that is someone else (the shift changed, or a lead put someone
        on), else the backup their contact names, else the next person on the rota."""
        at = at or utcnow()
        contacts = self.keeper.current.contacts
        now_on = [on.contact for on in self.on_duty(team, at) if on.contact.handle != handle]
        if now_on:
            return now_on[0]
        contact = contacts.get(handle)
        if contact is not None and contact.backup:
            return contacts.get(contact.backup)
        try:
            following = self.rota(team).next_after(at, besides=(handle,))
        except OutsideWindow:
            return None
        return next((contacts[s.handle] for s in following if s.handle in contacts), None)

    def resolve(self, keys: list[str], *, besides: str) -> tuple[list[Contact], dict[str, str]]:
        """Targets → people, `duty:<team>` standing for whoever is on duty in it now; and the
        team each person was reached as duty officer of (their backup follows the rota)."""
        plain: list[str] = []
        duty: dict[str, str] = {}
        for key in keys:
            if not key.startswith(DUTY):
                plain.append(key)
                continue
            team = key.removeprefix(DUTY)
            on = self.on_duty(team)
            if not on:
                raise UserError(f"Nobody is on duty in {team} now{self._next_words(team)}.")
            for person in on:
                plain.append(person.contact.handle)
                duty.setdefault(person.contact.handle, team)
        people = self.keeper.current.people(plain, besides=besides)
        return people, {p.handle: duty[p.handle] for p in people if p.handle in duty}

    def _next_words(self, team: str) -> str:
        start, people = self.next_on(team)
        if not people:
            return "; nobody is on the rota in the time it is laid out for"
        when = format_local_utc(start, self.rota(team).zone, with_date=True)
        return f"; next: {', '.join(p.contact.name for p in people)} from {when}"

    def _override(self, team: str, at: datetime) -> DutyOverrideRow | None:
        live = [o for o in self.overrides.get(team, []) if o.created_at <= at < o.until]
        return max(live, key=lambda o: o.id, default=None)

    def _people(
        self, team: str, spans: list[tuple[str, datetime | None]], set_by: str | None = None
    ) -> list[OnDuty]:
        """(handle, until) → who is on duty, as the directory in force knows them."""
        contacts = self.keeper.current.contacts
        return [OnDuty(contacts[h], team, until, set_by) for h, until in spans if h in contacts]

    # -- oncall -----------------------------------------------------------------------------------

    def listing(self, team: str | None) -> Message:
        """`oncall [team]`: per team, who is on duty now (until when) and who comes next."""
        teams = [team] if team else self.teams()
        if not teams:
            raise UserError("No duty rota is configured (config/rota/<team>.yaml or .ics).")
        now = utcnow()
        rows = []
        for key in teams:
            zone = self.rota(key).zone
            start, following = self.next_on(key, now)
            rows.append(
                {
                    "team": key,
                    "now": [self._shown(on, zone) for on in self.on_duty(key, now)],
                    "next": [on.contact.name for on in following],
                    "from": format_local_utc(start, zone, with_date=True) if following else None,
                }
            )
        return self.renderer.render("oncall", teams=rows)

    def _shown(self, on: OnDuty, zone: ZoneInfo) -> dict[str, str | None]:
        return {
            "name": on.contact.name,
            "until": format_local_utc(on.until, zone, with_date=True) if on.until else None,
            "set_by": self.keeper.current.name_of(on.set_by) if on.set_by else None,
        }

    async def override(
        self, team: str, handle: str, *, until: datetime, by: str, event_id: str, room_id: str
    ) -> Message:
        """`oncall override`: `handle` on duty in `team` from now until `until`; logged in the
        activation of the room it was typed in (if any) and in the bot's log; the person is
        told by DM what is open, as at any shift change."""
        zone = self.rota(team).zone
        contact = self.keeper.current.contacts.get(handle)
        if contact is None:
            hint = self.keeper.current.closest(handle)
            meant = f" (did you mean `{hint}`?)" if hint else ""
            raise UserError(f"No contact `{handle}`{meant}; nobody was put on duty.")
        before = [on.contact.name for on in self.on_duty(team)]
        draft = DutyOverrideRow(
            team=team,
            handle=handle,
            until=until,
            set_by=by,
            opened_by_event=event_id,
            created_at=utcnow(),
        )
        row = await self._record(draft, contact, room_id, zone)
        self._keep(row)
        log.info("duty override: %s on duty for %s until %s, set by %s", handle, team, until, by)
        await self._brief(OnDuty(contact, team, until, by), txn=f"duty-override-{row.id}")
        return self.renderer.render(
            "oncall_override",
            team=team,
            name=contact.name,
            until=format_local_utc(until, zone, with_date=True),
            instead=[name for name in before if name != contact.name],
        )

    async def _record(
        self, draft: DutyOverrideRow, contact: Contact, room_id: str, zone: ZoneInfo
    ) -> DutyOverrideRow:
        """The override, stored once per command (a re-run finds it), and logged in the running
        activation of the room it was typed in."""
        activation = await self.activations.for_room(room_id)
        async with self.db.session() as session:
            found = await store.override_by_event(session, draft.opened_by_event)
            if found is not None:
                return found
            session.add(draft)
            await session.flush()
            if activation is not None and activation.status in RUNNING:
                until = format_local_utc(draft.until, zone)
                await self.activations.add_entry(
                    session,
                    activation,
                    "system.duty_override",
                    f"{contact.name} on duty for {draft.team} until {until}",
                    draft.set_by,
                    data={
                        "team": draft.team,
                        "handle": draft.handle,
                        "until": draft.until.isoformat(),
                    },
                )
        return draft

    def _keep(self, row: DutyOverrideRow) -> None:
        kept = self.overrides.setdefault(row.team, [])
        if all(o.id != row.id for o in kept):
            kept.append(row)

    # -- shift changes ----------------------------------------------------------------------------

    async def start(self) -> None:
        """At start (once the bot is ready): the overrides in force, and each team's next
        shift change armed."""
        async with self.db.session() as session:
            live = await store.overrides_in_force(session, utcnow())
        self.overrides.clear()
        for row in live:
            self._keep(row)
        await self.ensure_armed()

    async def ensure_armed(self) -> None:
        """Each team's next shift change armed (again after a reload: a moved change's old
        timer finds nobody coming on when it fires, and arms the right one)."""
        await self.keeper.renew_rotas()
        now = utcnow()
        async with self.db.session() as session:
            for team in self.teams():
                await self._arm_next(session, team, now)

    async def _arm_next(self, session: Any, team: str, after: datetime) -> None:
        start, coming = self.next_on(team, after)
        if coming:
            key = f"shift:{team}:{start.isoformat()}"
            await self.scheduler.arm(session, TimerKind.SHIFT_CHANGE, key, start, {"team": team})

    async def on_shift(self, timer: Timer) -> None:
        """A shift begins: each person coming on duty hears what is open, once; then the next
        change is armed."""
        team, at = timer.payload["team"], timer.due_at
        if team not in self.keeper.rotas:
            return  # the team's rota was removed since
        await self.keeper.renew_rotas()
        before = {on.contact.handle for on in self.on_duty(team, at - timedelta(seconds=1))}
        coming = [on for on in self.on_duty(team, at) if on.contact.handle not in before]
        if utcnow() - at < LATE_BRIEF:
            for on in coming:
                await self._brief(on, txn=f"shift-{team}-{at.isoformat()}-{on.contact.handle}")
        async with self.db.session() as session:
            await self._arm_next(session, team, at)

    async def _brief(self, on: OnDuty, *, txn: str) -> None:
        """What is open, by DM to the person now on duty, in their language."""
        person = on.contact
        if person.matrix_id is None:
            log.info(
                "%s is on duty for %s but not on Matrix: no brief sent", person.handle, on.team
            )
            return
        lang = self.renderer.language_for(BRIEF_TEMPLATE, person.languages)
        zone = person.zone
        async with self.db.session() as session:
            running = await activation_store.by_status(session, RUNNING)
        activations = [await self._open_in(a) for a in running]
        message = self.renderer.render(
            BRIEF_TEMPLATE,
            lang=lang,
            team=on.team,
            until=format_local_utc(on.until, zone, with_date=True, lang=lang) if on.until else None,
            set_by=self.keeper.current.name_of(on.set_by) if on.set_by else None,
            activations=activations,
        )
        room_id = await self.direct.room_for(person.matrix_id)
        await self.messenger.notice(room_id, message, txn_id=txn)

    async def _open_in(self, activation: ActivationRow) -> dict[str, Any]:
        """What is open in one activation, as `status` reads it."""
        situation = await read_situation(
            activation,
            db=self.db,
            inputs=self.inputs,
            rounds=self.rounds,
            directory=self.keeper.current,
            zone=self.activations.settings.timezone,
        )
        return {
            "activation": activation,
            "marker": self.activations.marker if activation.exercise else None,
            "waiting": situation.pages.waiting,
            "requests": [
                (ref, asked - answered)
                for ref, answered, asked, _ in situation.requests.requests
                if answered < asked
            ],
            "rounds": situation.next_rounds,
            "actions": situation.actions,
        }

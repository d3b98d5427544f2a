"""Coordination rounds (`RD-n`): a prompt in a thread, reports, a reminder, a summary.

A scheduled round keeps exactly one armed timer for its next run (`round.run`), computed from its
cron in its own zone; when it fires, the run starts and the following one is armed. A run missed
while the bot was down fires at start-up: if it is less than one window late it runs (once:
the timer completes), otherwise it is reported as missed. Within a run, two more timers remind
those who have not reported at half-window and close the run with a summary at its end.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.actions.actions import action_view, open_actions
from bot.activations.activation import ActivationCapability, timer_prefix
from bot.activations.asked import Asked, Said
from bot.directory.model import Contact
from bot.directory.roles import Role
from bot.errors import UserError
from bot.matrix.content import relation_of
from bot.reach.direct import owner_of_answered
from bot.render import Message
from bot.rounds.recurrence import describe, next_run, next_runs, to_cron
from bot.storage import activation_store, core
from bot.storage import round_store as store
from bot.storage.models import (
    ActivationRow,
    ActivationStatus,
    RoundReportRow,
    RoundRunRow,
    RoundSeriesRow,
    RunStatus,
    Timer,
    TimerKind,
)
from bot.timeutil import format_local_utc, load_zone, utcnow

if TYPE_CHECKING:
    from bot.paging.commchecks import CommChecks
    from bot.paging.send import Pager
    from bot.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_WINDOW = timedelta(minutes=30)  # how long a round takes reports, unless told
DEFAULT_AGENDA = (
    "What do we know?",
    "What do we need to know?",
    "What have we done?",
    "What do we do next?",
)


@dataclass(frozen=True)
class RunView:
    run: RoundRunRow
    series: RoundSeriesRow
    activation: ActivationRow | None


@dataclass(frozen=True, kw_only=True)
class Rounds(ActivationCapability):
    settings: Settings
    pager: Pager
    commchecks: CommChecks

    async def _actions_item(self, activation: ActivationRow | None) -> list[str]:
        """The agenda's last item: the activation's open actions, the overdue ones marked."""
        if activation is None:
            return []
        async with self.db.session() as session:
            summary = await open_actions(session, activation.id)
        shown = [action_view(a, self.keeper.current, self.settings.timezone) for a in summary.open]
        if not shown:
            return []
        listed = "; ".join(
            f"{a['ref']} {a['owners']}" + (" OVERDUE" if a["overdue"] else "") for a in shown
        )
        return [f"Open actions: {listed}"]

    def _prefix(self, series: RoundSeriesRow, activation: ActivationRow | None) -> str:
        base = timer_prefix(activation.id) if activation else ""
        return f"{base}rd{series.id}:"

    async def _activation(
        self, session: AsyncSession, series: RoundSeriesRow
    ) -> ActivationRow | None:
        return (
            await activation_store.by_id(session, series.activation_id)
            if series.activation_id
            else None
        )

    # -- creating ---------------------------------------------------------------------------------

    async def schedule(self, asked: Asked, *, room: str, when: str, tz: str | None) -> Message:
        """`round schedule`: a series on a cron or an everyday phrase, in `tz` (default the
        cell's zone), with its first run armed."""
        activation, settled = await self._settle(asked, room)
        return await self.schedule_series("round", activation, settled, when=when, tz=tz)

    async def start_now(self, asked: Asked, *, room: str) -> None:
        """`round now`: a one-off round, its prompt posted at once (that is the answer)."""
        activation, settled = await self._settle(asked, room)
        zone = str(self.settings.timezone.key)
        await self.create("round", activation, settled, when="now", cron=None, timezone=zone)

    async def _settle(self, asked: Asked, room: str) -> tuple[ActivationRow | None, Asked]:
        """Where the round posts, its activation, and who takes part (named, or the default)."""
        place, activation, default = await self.place(room, asked.room_id)
        people = self._participants(asked.people, default)
        return activation, replace(asked, room_id=place, people=people)

    def _participants(self, named: list[Contact] | None, default: list[Contact]) -> list[Contact]:
        off_matrix = [p.name for p in named or [] if p.matrix_id is None]
        if off_matrix:
            raise UserError(
                f"{', '.join(off_matrix)} {'is' if len(off_matrix) == 1 else 'are'} not on "
                "Matrix, where a round takes its reports; nothing was scheduled."
            )
        people = [
            p for p in (named or default) if p.matrix_id and p.matrix_id != self.settings.user_id
        ]
        if not people:
            raise UserError("Nobody to take part; name them with --with.")
        return people

    async def schedule_series(
        self,
        kind: str,
        activation: ActivationRow | None,
        asked: Asked,
        *,
        when: str,
        tz: str | None,
    ) -> Message:
        """A series of `kind` (a round, or a communication check run like one: `commscheck
        --every`) on a cron or an everyday phrase, in `tz` (default the cell's zone)."""
        when = " ".join(when.split())
        try:
            cron = to_cron(when)
            zone = load_zone(tz) if tz else self.settings.timezone
        except ValueError as exc:
            raise UserError(str(exc)) from None
        series, first = await self.create(
            kind, activation, asked, when=when, cron=cron, timezone=str(zone.key)
        )
        return self.renderer.render(
            "round_scheduled",
            ref=series.ref,
            when=when,
            zone=zone.key,
            cron=cron,
            described=describe(cron),
            runs=[
                format_local_utc(run, zone, with_date=True)
                for run in [first, *next_runs(cron, str(zone.key), first, 2)]
            ],
            people=len(series.participants),
            kind=kind,
        )

    async def place(
        self, room: str, room_id: str
    ) -> tuple[str, ActivationRow | None, list[Contact]]:
        """Where a round asked for in `room_id` posts (`room`: here or dg), the activation it
        belongs to, and its default participants: in the DG platform room the DGs, elsewhere
        the ICC roster."""
        directory = self.keeper.current
        if room == "dg":
            if not self.settings.dg_room:
                raise UserError("No DG platform room is configured (ICC_DG_ROOM).")
            dg_room_id = await self.messenger.resolve_room(self.settings.dg_room)
            return dg_room_id, None, [c for c in directory.contacts.values() if c.role is Role.DG]
        activation = await self.activations.for_room(room_id)
        if activation is not None and activation.status != ActivationStatus.OPEN:
            raise UserError(f"{activation.ref} is {activation.status}; no round can start here.")
        roster = [c for c in directory.contacts.values() if c.role in (Role.LEAD, Role.MEMBER)]
        return room_id, activation, roster

    async def listing(self) -> Message:
        """`rounds`: every scheduled series and its next run."""
        async with self.db.session() as session:
            listed = await store.scheduled(session)
        rows = [
            (
                s.ref,
                s.kind,
                s.when_text,
                s.timezone,
                self.next_local(s),
                len(s.participants),
            )
            for s in listed
        ]
        return self.renderer.render("rounds_list", rows=rows)

    async def create(
        self,
        kind: str,
        activation: ActivationRow | None,
        asked: Asked,
        *,
        when: str,
        cron: str | None,
        timezone: str,
    ) -> tuple[RoundSeriesRow, datetime]:
        """A round series (or a scheduled check) and its first run's timer; keyed by the event."""
        async with self.db.session() as session:
            series = await store.series_by_event(session, asked.event_id)
            if series is None:
                series = RoundSeriesRow(
                    kind=kind,
                    activation_id=activation.id if activation else None,
                    room_id=asked.room_id,
                    when_text=when,
                    cron=cron,
                    timezone=timezone,
                    window_s=int(asked.window.total_seconds()),
                    agenda=asked.agenda,
                    participants=[p.handle for p in asked.named],
                    created_by=asked.by,
                    opened_by_event=asked.event_id,
                    created_at=utcnow(),
                )
                session.add(series)
                await session.flush()
                first = next_run(cron, timezone, utcnow()) if cron else utcnow()
                await self._arm_run(session, series, activation, first)
                if activation is not None:
                    await self.activations.add_entry(
                        session,
                        activation,
                        "system.round_schedule",
                        f"{series.ref} {'scheduled: ' + when if cron else 'started now'}",
                        asked.by,
                        data={"round": series.id, "cron": cron, "tz": timezone},
                    )
            else:
                first = utcnow()
        return series, first

    async def _arm_run(
        self,
        session: AsyncSession,
        series: RoundSeriesRow,
        activation: ActivationRow | None,
        slot: datetime,
    ) -> None:
        key = f"{self._prefix(series, activation)}run:{slot.isoformat()}"
        await self.scheduler.arm(
            session, TimerKind.ROUND_RUN, key, slot, {"series": series.id, "slot": slot.isoformat()}
        )

    async def cancel(self, series_id: int, by: str) -> RoundSeriesRow:
        async with self.db.session() as session:
            series = await store.series(session, series_id)
            if series is None or series.cancelled_at is not None:
                raise UserError(f"There is no scheduled round RD-{series_id} to cancel.")
            activation = await self._activation(session, series)
            await store.cancel_series(session, series_id, utcnow())
            await self.scheduler.cancel(session, f"{self._prefix(series, activation)}run:")
            if activation is not None:
                await self.activations.add_entry(
                    session,
                    activation,
                    "system.round_cancel",
                    f"{series.ref} cancelled",
                    by,
                    data={"round": series.id},
                )
        return series

    # -- running ----------------------------------------------------------------------------------

    async def on_run(self, timer: Timer) -> None:
        """A run fell due: start it (or report it missed), and arm the next one."""
        slot = datetime.fromisoformat(timer.payload["slot"])
        async with self.db.session() as session:
            series = await store.series(session, timer.payload["series"])
            if series is None or series.cancelled_at is not None:
                return
            activation = await self._activation(session, series)
            begun = await store.run_for_slot(session, series.id, slot)
            if series.cron:
                await self._arm_run(
                    session,
                    series,
                    activation,
                    next_run(series.cron, series.timezone, max(slot, utcnow())),
                )
        if activation is not None and activation.status != ActivationStatus.OPEN:
            return
        lateness = utcnow() - slot
        # A run begun before a crash is finished, however late: its prompt may be out already.
        if begun is None and lateness > timedelta(seconds=series.window_s):
            await self._missed(series, activation, slot)
            return
        if series.kind == "check":
            await self._check(series, activation, slot)
            return
        await self.start(series, activation, slot)

    async def _check(
        self, series: RoundSeriesRow, activation: ActivationRow | None, slot: datetime
    ) -> None:
        """A scheduled communication check: the same as `commscheck` typed at `slot`."""
        people = [c for h in series.participants if (c := self.keeper.current.contacts.get(h))]
        key = f"series-{series.id}-{slot.isoformat()}"
        window = timedelta(seconds=series.window_s)
        asked = Asked(series.room_id, people, window, series.created_by, event_id=key)
        check = await self.commchecks.create(activation, asked)
        await self.pager.deliver(check, activation, reply_to=key)

    async def _missed(
        self, series: RoundSeriesRow, activation: ActivationRow | None, slot: datetime
    ) -> None:
        async with self.db.session() as session:
            if await store.run_for_slot(session, series.id, slot) is not None:
                return
            number = await store.next_run_number(session, series.id)
            session.add(
                RoundRunRow(
                    series_id=series.id, number=number, scheduled_for=slot, status=RunStatus.MISSED
                )
            )
            if activation is not None:
                await self.activations.add_entry(
                    session,
                    activation,
                    "system.round_missed",
                    f"{series.ref} #{number} due {self.activations.local(slot)} was missed "
                    "(the bot was down)",
                    self.activations.bot_id,
                    data={"round": series.id},
                )
        message = self.renderer.render(
            "round_missed", ref=series.ref, number=number, due=self._local(series, slot)
        )
        await self._post(
            series, activation, message, txn=f"round-missed-{series.id}-{slot.isoformat()}"
        )

    async def start(
        self, series: RoundSeriesRow, activation: ActivationRow | None, slot: datetime
    ) -> RoundRunRow:
        """Open the run: participants invited, the prompt posted; its window, and with it the
        reminder and the end, starts only then, when people can see it and act."""
        people = [
            c
            for h in series.participants
            if (c := self.keeper.current.contacts.get(h)) and c.matrix_id  # reports come in Matrix
        ]
        async with self.db.session() as session:
            run = await store.run_for_slot(session, series.id, slot)
            if run is None:
                run = RoundRunRow(
                    series_id=series.id,
                    number=await store.next_run_number(session, series.id),
                    scheduled_for=slot,
                    started_at=utcnow(),
                    participants=[
                        {"handle": p.handle, "matrix_id": p.key, "name": p.name} for p in people
                    ],
                )
                session.add(run)
                await session.flush()
                if activation is not None:
                    await self.activations.add_entry(
                        session,
                        activation,
                        "system.round_start",
                        f"{series.ref} #{run.number} started",
                        self.activations.bot_id,
                        data={"round": series.id, "run": run.id},
                    )
        if run.prompt_event_id:
            return run
        for person in people:
            await self.messenger.invite(series.room_id, person.key)
        window = timedelta(seconds=series.window_s)
        opens = utcnow()
        agenda = (
            [line.strip() for line in series.agenda.split(";") if line.strip()]
            if series.agenda
            else list(DEFAULT_AGENDA)
        )
        prompt = self.renderer.render(
            "round_prompt",
            ref=series.ref,
            number=run.number,
            activation=activation,
            agenda=agenda + await self._actions_item(activation),
            people=[p["name"] for p in run.participants],
            pills=[(p["name"], p["matrix_id"]) for p in run.participants],
            until=self._local(series, opens + window),
        )
        event_id = await self.messenger.ring(
            series.room_id,
            self.activations.frame(prompt, activation),
            mentions=tuple(p["matrix_id"] for p in run.participants),
            txn_id=f"round-{run.id}",
        )
        async with self.db.session() as session:
            await store.set_run(session, run.id, prompt_event_id=event_id, started_at=opens)
            prefix = f"{self._prefix(series, activation)}{run.id}:"
            await self.scheduler.arm(
                session,
                TimerKind.ROUND_REMIND,
                prefix + "remind",
                opens + window / 2,
                {"run": run.id},
            )
            await self.scheduler.arm(
                session, TimerKind.ROUND_CLOSE, prefix + "close", opens + window, {"run": run.id}
            )
        run.prompt_event_id, run.started_at = event_id, opens
        return run

    async def on_remind(self, timer: Timer) -> None:
        """Halfway: those who have not reported yet are reminded in the round's thread. A
        reminder that could only go out at the run's end (the bot was away) is left to the
        summary, which names them: never a reminder after the close."""
        view = await self._view(timer.payload["run"])
        if (
            view is None
            or view.run.status != RunStatus.OPEN
            or utcnow() >= _end(view.run, view.series)
        ):
            return
        async with self.db.session() as session:
            reported = {r.matrix_id for r in await store.reports(session, view.run.id)}
        waiting = [p for p in view.run.participants if p["matrix_id"] not in reported]
        if not waiting:
            return
        message = self.renderer.render(
            "round_reminder",
            ref=view.series.ref,
            number=view.run.number,
            people=[p["name"] for p in waiting],
            pills=[(p["name"], p["matrix_id"]) for p in waiting],
        )
        await self.messenger.ring(
            view.series.room_id,
            self.activations.frame(message, view.activation),
            mentions=tuple(p["matrix_id"] for p in waiting),
            txn_id=f"round-remind-{view.run.id}",
            thread=view.run.prompt_event_id,
        )

    async def on_close(self, timer: Timer) -> None:
        await self._close_run(timer.payload["run"])

    async def close_running(self, activation: ActivationRow) -> None:
        """Before the activation closes: each of its running rounds ends with its summary, so
        that what partners reported is said in the room and kept in the record."""
        async with self.db.session() as session:
            runs = await store.runs_of_activation(session, activation.id)
        for _, run, _ in runs:
            if run.status == RunStatus.OPEN and run.started_at is not None:
                await self._close_run(run.id)

    async def _close_run(self, run_id: int) -> None:
        view = await self._view(run_id)
        if view is None or view.run.status not in (RunStatus.OPEN, RunStatus.CLOSED):
            return
        async with self.db.session() as session:
            reports = await store.reports(session, view.run.id)
            # Closed already: this step was cut short by a crash after closing the run, and
            # posts the summary again (the same transaction ID: it shows once).
            if view.run.status == RunStatus.OPEN:
                await store.set_run(
                    session, view.run.id, status=RunStatus.CLOSED, closed_at=utcnow()
                )
            if view.activation is not None and view.run.status == RunStatus.OPEN:
                reporters = len({r.matrix_id for r in reports})
                await self.activations.add_entry(
                    session,
                    view.activation,
                    "system.round_summary",
                    f"{view.series.ref} #{view.run.number} closed: {reporters} "
                    f"of {len(view.run.participants)} reported",
                    self.activations.bot_id,
                    data={"round": view.series.id, "run": view.run.id},
                )
            counted = await _latest_versions(session, reports)
        latest: dict[str, RoundReportRow] = {}
        for report in reports:
            latest.setdefault(report.matrix_id, report)
        summary = self.renderer.render(
            "round_summary",
            ref=view.series.ref,
            number=view.run.number,
            reported=[
                (r.name, [x.text for x in counted if x.matrix_id == r.matrix_id])
                for r in latest.values()
            ],
            missing=[p["name"] for p in view.run.participants if p["matrix_id"] not in latest],
        )
        await self._post(view.series, view.activation, summary, txn=f"round-summary-{view.run.id}")

    # -- reports ----------------------------------------------------------------------------------

    async def report_in_thread(self, said: Said, *, room_id: str, thread_root: str | None) -> None:
        """A reply in a round prompt's thread is an update; a ✅ on it says it was taken."""
        await self.report(said, room_id=room_id, thread_root=thread_root)
        await self.messenger.react(room_id, said.event_id, "✅")

    async def report(self, said: Said, *, room_id: str, thread_root: str | None) -> RunView:
        async with self.db.session() as session:
            found = None
            if thread_root is not None:
                run = await store.run_by_prompt(session, thread_root)
                if run is not None:
                    found = (run, await store.series(session, run.series_id))
            if found is None:
                found = await store.open_run_in_room(session, room_id)
            run, series = found if found is not None else (None, None)
            if run is None or series is None:
                raise UserError("No round is open in this room; updates go in a running round.")
            # Judged by when it was sent: an update sent inside the window counts, even if it
            # is read after the run closed (held up on its way to the homeserver).
            if run.status != RunStatus.OPEN and not (
                run.status == RunStatus.CLOSED and said.at <= _end(run, series)
            ):
                raise UserError(
                    f"{series.ref} #{run.number} is closed; your update was not recorded."
                )
            person = next((p for p in run.participants if p["matrix_id"] == said.sender), None)
            if person is None:
                raise UserError(f"You are not a participant of {series.ref}; nothing was recorded.")
            if await store.report_by_event(session, said.event_id) is None:
                session.add(
                    RoundReportRow(
                        run_id=run.id,
                        matrix_id=said.sender,
                        name=person["name"],
                        text=said.text,
                        reported_at=min(said.at, utcnow()),
                        via=said.via,
                        event_id=said.event_id,
                    )
                )
            activation = await self._activation(session, series)
        return RunView(run, series, activation)

    async def is_prompt(self, event_id: str | None, room_id: str) -> bool:
        """Whether `event_id` is a run's prompt.

        A prompt posted just before a crash has its event recorded only when the run starts
        again after the restart, side by side with the thread replies read in the meantime: a
        reply to an event not known yet waits while a run in its room is open without a
        recorded prompt, so that a report is never dropped for being early.
        """
        if event_id is None:
            return False

        async def find(session: AsyncSession) -> RoundRunRow | None:
            return await store.run_by_prompt(session, event_id)

        async def unrecorded(session: AsyncSession) -> bool:
            return await store.open_run_without_prompt(session, room_id)

        return await owner_of_answered(self.db, find, unrecorded) is not None

    # -- helpers ----------------------------------------------------------------------------------

    async def _view(self, run_id: int) -> RunView | None:
        async with self.db.session() as session:
            run = await store.run(session, run_id)
            series = await store.series(session, run.series_id) if run else None
            activation = await self._activation(session, series) if series else None
        if run is None or series is None:
            return None
        return RunView(run, series, activation)

    async def _post(
        self, series: RoundSeriesRow, activation: ActivationRow | None, message: Message, txn: str
    ) -> None:
        await self.messenger.notice(
            series.room_id, self.activations.frame(message, activation), txn_id=txn
        )

    def _local(self, series: RoundSeriesRow, moment: datetime) -> str:
        return format_local_utc(moment, load_zone(series.timezone))

    def next_local(self, series: RoundSeriesRow) -> str | None:
        if not series.cron:
            return None
        return format_local_utc(
            next_run(series.cron, series.timezone, utcnow()),
            load_zone(series.timezone),
            with_date=True,
        )


def _end(run: RoundRunRow, series: RoundSeriesRow) -> datetime:
    """When a run's window ends: its window after its prompt went out."""
    assert run.started_at is not None
    return run.started_at + timedelta(seconds=series.window_s)


async def _latest_versions(
    session: AsyncSession, reports: list[RoundReportRow]
) -> list[RoundReportRow]:
    """The reports that count, oldest first: an edited update is a new version of the message
    it edits (the edit's event, in the inbox, names it), and only the latest version of each
    counts; the record keeps every version."""
    edited: dict[str, str] = {}  # a version's event -> the message it is a version of
    for report in reports:
        if report.via == "edit":
            event = await core.inbox_event(session, report.event_id)
            original = relation_of(event.content).event_id if event is not None else None
            if original is not None:
                edited[report.event_id] = original
    newest = {edited.get(r.event_id, r.event_id): r for r in reports}
    return [r for r in reports if newest[edited.get(r.event_id, r.event_id)] is r]

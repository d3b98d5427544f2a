"""What a situation board shows of an activation: read in one transaction (`read_rows`), shaped
for the page in the viewer's time zone (`shape`).

Each list is cut to what a wall screen shows without scrolling for a typical activation (the
newest pages, the people who still matter on a page to hundreds, the last logbook entries); the
commands (`pages`, `actions all`, `log export`) have the rest. Times are the viewer's zone and
UTC (`14:28 Paris (13:28Z)`), with the date when it is not today there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.activations.activation import LevelChange, level_history
from bot.directory.model import Directory
from bot.inputs.requests import RequestState, request_states
from bot.rounds.recurrence import next_run
from bot.situation_board.chart import OrganisationLatency, latency_chart
from bot.storage import action_store, activation_store, round_store
from bot.storage import page_store as pages_store
from bot.storage import situation_board_store as store
from bot.storage.models import (
    ActionRow,
    ActionStatus,
    ActivationRow,
    LogEntryRow,
    PageAttemptRow,
    PageRow,
    PageTargetRow,
    RoundSeriesRow,
    SitrepRow,
)
from bot.timeutil import format_duration, format_local_utc, load_zone

PAGES_SHOWN = 4  # the newest pages; `pages` lists them all
PEOPLE_SHOWN = 24  # on a bigger page, those who have not acknowledged (and a count of the rest)
REQUESTS_SHOWN = 5
ACTIONS_SHOWN = 12  # the open ones, overdue first; `actions` lists them all
LOG_SHOWN = 10
SITREP_POINTS = 5  # of its key points; the whole sitrep opens under them
TEXT_CHARS = 240  # a page's or an entry's text, cut beyond this on the board


@dataclass(frozen=True)
class Rows:
    """Everything a board shows of one activation, as read in one transaction."""

    activation: ActivationRow
    epoch: int
    history: list[LevelChange]
    pages: list[tuple[PageRow, list[PageTargetRow]]]  # the newest, newest first
    page_count: int
    tries: dict[int, list[PageAttemptRow]]
    ack_times: list[tuple[str, datetime | None, datetime | None]]  # everyone paged
    requests: list[RequestState]
    actions: list[ActionRow]
    rounds: list[RoundSeriesRow]
    sitrep: SitrepRow | None
    log: list[LogEntryRow]


async def read_rows(session: AsyncSession, activation_id: int) -> Rows | None:
    """The activation's board, read in a dozen queries whatever its size: the people of the
    pages shown only, the latency chart's numbers as bare columns."""
    activation = await activation_store.by_id(session, activation_id)
    if activation is None:
        return None
    newest = await store.newest_pages(session, activation_id, PAGES_SHOWN)
    people = await store.targets_of(session, [page.id for page in newest])
    everyone = [row for rows in people.values() for row in rows]
    return Rows(
        activation=activation,
        epoch=await store.epoch(session, activation_id),
        history=await level_history(session, activation),
        pages=[(page, people[page.id]) for page in newest],
        page_count=await store.count_pages(session, activation_id) if newest else 0,
        tries=await pages_store.tries_by_row(session, everyone),
        ack_times=await store.ack_times(session, activation_id) if newest else [],
        requests=await request_states(session, activation_id),
        actions=await action_store.of_activation(session, activation_id),
        rounds=await round_store.scheduled_for_activation(session, activation_id),
        sitrep=await store.last_sitrep(session, activation_id),
        log=await activation_store.latest_log_entries(session, activation_id, LOG_SHOWN),
    )


@dataclass(frozen=True)
class Clock:
    """Times as the viewer reads them: their zone and UTC, dated unless today there."""

    zone: ZoneInfo
    now: datetime

    def at(self, moment: datetime) -> str:
        today = self.now.astimezone(self.zone).date()
        return format_local_utc(
            moment, self.zone, with_date=moment.astimezone(self.zone).date() != today
        )

    def dated(self, moment: datetime) -> str:
        return format_local_utc(moment, self.zone, with_date=True)


def shape(rows: Rows, *, directory: Directory, clock: Clock, marker: str) -> dict[str, Any]:
    """The template's context for the board of `rows`' activation."""
    activation = rows.activation
    now = clock.now
    names = directory.name_of
    return {
        "activation": activation,
        "title": f"{activation.ref} {activation.title}",
        "marker": marker,
        "tlp_class": activation.tlp.removeprefix("TLP:").split("+")[0].lower(),
        "lead": names(activation.lead),
        "opened": clock.dated(activation.opened_at),
        "age": format_duration(now - activation.opened_at),
        "history": [{"level": h.level, "at": clock.at(h.at)} for h in rows.history],
        "pages": [_page(page, people, rows.tries, clock) for page, people in rows.pages],
        "older_pages": max(0, rows.page_count - len(rows.pages)),
        "chart": latency_chart(_latencies(rows.ack_times)),
        "requests": _requests(rows.requests, clock),
        "actions": _actions(rows.actions, directory, clock)[:ACTIONS_SHOWN],
        "more_actions": max(
            0, sum(1 for a in rows.actions if a.status == ActionStatus.OPEN) - ACTIONS_SHOWN
        ),
        "done_actions": sum(1 for a in rows.actions if a.status == ActionStatus.DONE),
        "rounds": [_round(series, clock) for series in rows.rounds],
        "sitrep": _sitrep(rows.sitrep, names, clock),
        "log": [
            {
                "seq": entry.seq,
                "at": clock.at(entry.occurred_at),
                "author": "ICC bot" if entry.author_role == "bot" else names(entry.author),
                "decision": entry.kind == "decision",
                "system": entry.kind.startswith("system."),
                "text": _cut(entry.text),
            }
            for entry in rows.log[::-1]
        ],
        "clock": clock.zone.key,
        "now": clock.at(now),
    }


def _cut(text: str, limit: int = TEXT_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# -- pages ----------------------------------------------------------------------------------------


def _page(
    page: PageRow,
    rows: list[PageTargetRow],
    tries: dict[int, list[PageAttemptRow]],
    clock: Clock,
) -> dict[str, Any]:
    backups = {r.covers: r for r in rows if r.covers}
    units = [r for r in rows if not r.covers]
    answered = sum(1 for r in units if r.acked_at or _acked(backups.get(r.handle)))
    shown = units
    if len(units) > PEOPLE_SHOWN:  # a page to hundreds: who still matters, and a count
        shown = [r for r in units if _state(r) != "acked"][:PEOPLE_SHOWN]
    return {
        "ref": page.ref,
        "kind": page.kind,
        "text": _cut(page.text),
        "urgent": page.urgent,
        "sent": clock.at(page.created_at),
        "acked": answered,
        "total": len(units),
        "people": [_person(r, backups.get(r.handle), tries, clock) for r in shown],
        "hidden": len(units) - len(shown),
    }


def _acked(row: PageTargetRow | None) -> bool:
    return row is not None and row.acked_at is not None


# How a person acknowledged, as the board names the channel it came by.
ACK_CHANNEL = {
    "command": "Matrix",
    "reply": "Matrix",
    "reaction": "Matrix",
    "link": "web link",
    "email": "e-mail",
    "sms": "SMS",
}
CHANNEL_NAMES = {"matrix": "Matrix", "email": "e-mail", "sms": "SMS"}


def _state(row: PageTargetRow) -> str:
    """The furthest a person's page got."""
    if row.acked_at:
        return "acked"
    if row.declined_at:
        return "declined"
    if row.unreachable_at:
        return "unreachable"
    if row.escalated_at:
        return "escalated"
    if row.seen_at:
        return "seen"
    if row.delivered_at:
        return "delivered"
    return "failed" if row.send_error else "sending"


def _person(
    row: PageTargetRow,
    backup: PageTargetRow | None,
    tries: dict[int, list[PageAttemptRow]],
    clock: Clock,
) -> dict[str, Any]:
    """One person's line: their state, what it says, and each channel the bot tried them on
    with what came of it."""
    state = _state(row)
    if state == "acked":
        assert row.acked_at is not None
        latency = format_duration(row.acked_at - (row.delivered_at or row.acked_at))
        how = ACK_CHANNEL.get(row.ack_how or "", row.ack_how or "")
        label = f"acknowledged in {latency} ({how})"
        if row.ack_withdrawn_at:
            label += f"; ✅ withdrawn {clock.at(row.ack_withdrawn_at)}, the ack stands"
    elif state == "declined":
        label = f"unable: {row.declined_reason or ''}"
    elif state == "unreachable":
        assert row.unreachable_at is not None
        label = f"unreachable since {clock.at(row.unreachable_at)}"
    elif state == "escalated":
        assert row.escalated_at is not None
        label = f"escalated to their backup {clock.at(row.escalated_at)}"
    elif state == "seen":
        assert row.seen_at is not None
        label = f"seen {clock.at(row.seen_at)}; ack by {clock.at(row.deadline)}"
    elif state == "delivered":
        label = f"delivered; ack by {clock.at(row.deadline)}"
    else:
        label = "not delivered" if state == "failed" else "sending"
    channels = []
    if row.event_id or row.send_error or not tries.get(row.id):
        matrix = "failed" if row.send_error and not row.event_id else "sent"
        channels.append({"name": "Matrix", "state": matrix, "error": row.send_error})
    for attempt in tries.get(row.id, []):
        channels.append(
            {
                "name": CHANNEL_NAMES.get(attempt.channel, attempt.channel),
                "state": "failed" if attempt.error else "sent",
                "error": attempt.error,
            }
        )
    return {
        "name": row.name,
        "organisation": row.organisation,
        "state": state,
        "label": label,
        "repaged": row.repaged_at is not None,
        "channels": channels,
        "backup": _person(backup, None, tries, clock) if backup else None,
    }


def _latencies(
    ack_times: list[tuple[str, datetime | None, datetime | None]],
) -> list[OrganisationLatency]:
    """Per organisation (as paged, by name), each acknowledgement's latency from delivery."""
    paged: dict[str, int] = {}
    latencies: dict[str, list[float]] = {}
    for organisation, delivered, acked in ack_times:
        paged[organisation] = paged.get(organisation, 0) + 1
        found = latencies.setdefault(organisation, [])
        if acked is not None and delivered is not None:
            found.append(max(0.0, (acked - delivered).total_seconds()))
    return [OrganisationLatency(name, latencies[name], paged[name]) for name in sorted(paged)]


# -- requests, actions, rounds, sitrep -------------------------------------------------------------


def _requests(states: list[RequestState], clock: Clock) -> list[dict[str, Any]]:
    """The open requests (someone has yet to answer), newest first; then the rest, answered."""
    shaped = []
    for state in states[::-1]:
        answers = state.latest
        shaped.append(
            {
                "ref": state.request.ref,
                "question": _cut(state.request.question),
                "by": clock.at(state.request.deadline),
                "overdue": state.overdue(clock.now),
                "open": bool(state.missing),
                "answered": [
                    {"name": t.name, "at": clock.at(answers[t.id].answered_at)}
                    for t in state.targets
                    if t.id in answers
                ],
                "missing": [t.name for t in state.missing],
            }
        )
    shaped.sort(key=lambda r: not r["open"])  # stable: open ones first, newest first in each
    return shaped[:REQUESTS_SHOWN]


def _actions(actions: list[ActionRow], directory: Directory, clock: Clock) -> list[dict[str, Any]]:
    """The open actions, overdue ones first, then by due time (none last)."""
    contacts = directory.contacts
    open_ones = [a for a in actions if a.status == ActionStatus.OPEN]
    open_ones.sort(key=lambda a: (not a.overdue(clock.now), a.due_at is None, a.due_at, a.id))
    return [
        {
            "ref": a.ref,
            "text": _cut(a.text),
            "owners": ", ".join(contacts[h].name if h in contacts else h for h in a.owners),
            "due": clock.at(a.due_at) if a.due_at else None,
            "overdue": a.overdue(clock.now),
        }
        for a in open_ones
    ]


def _round(series: RoundSeriesRow, clock: Clock) -> dict[str, Any]:
    assert series.cron is not None  # scheduled: in force with a cron
    when = next_run(series.cron, series.timezone, clock.now)
    return {
        "ref": series.ref,
        "when": series.when_text,
        "zone": load_zone(series.timezone).key,
        "next": clock.at(when),
    }


def _sitrep(
    sitrep: SitrepRow | None, names: Callable[[str], str], clock: Clock
) -> dict[str, Any] | None:
    """The last sitrep: who issued it when, for what period, its key points; its whole text as
    issued (times in the bot's zone, as everyone received it)."""
    if sitrep is None:
        return None
    return {
        "number": sitrep.number,
        "at": clock.at(sitrep.created_at),
        "by": names(sitrep.prepared_by),
        "period": (clock.at(sitrep.period_start), clock.at(sitrep.period_end)),
        "points": _key_points(sitrep.body),
        "text": sitrep.body,
    }


def _key_points(body: str) -> list[str]:
    """The bullets under the sitrep's KEY POINTS (its first lines, from a template an operator
    rewrote without them)."""
    lines = body.splitlines()
    heading = next((n for n, line in enumerate(lines) if line.strip() == "KEY POINTS"), None)
    if heading is None:
        return [_cut(line, 160) for line in lines[:SITREP_POINTS] if line.strip()]
    points = []
    for line in lines[heading + 1 :]:
        if not line.strip():
            break
        points.append(_cut(line.strip().removeprefix("• "), 160))
    return points[:SITREP_POINTS]

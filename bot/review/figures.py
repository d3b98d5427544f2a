"""The after-action review's figures, computed from what the activation recorded.

Every figure is a plain value (seconds, counts, names) so that the review's Markdown, HTML and
PDF, its JSON and its charts all say the same thing, and a test can check each against what it
did. Latencies are measured as the record measures them (`exports`): from the page's delivery
(or, when it reached nobody on Matrix, its sending) to the acknowledgement.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.activations.activation import level_history
from bot.directory.model import Directory
from bot.inputs.requests import request_states
from bot.storage import action_store, page_store, review_store, round_store
from bot.storage import activation_store as store
from bot.storage.models import (
    ActionStatus,
    ActivationRow,
    FeedbackRow,
    PageAttemptRow,
    PageTargetRow,
)

# How an acknowledgement came in (`PageTargetRow.ack_how`) → the channel it came through.
ACK_CHANNELS = {"email": "email", "sms": "sms", "link": "link"}  # anything else: Matrix


def ack_channel(how: str | None) -> str:
    return ACK_CHANNELS.get(how or "", "matrix")


@dataclass(frozen=True)
class Latency:
    """Acknowledgement latency of one group (an organisation, a channel)."""

    group: str
    paged: int  # people paged (rows) in the group
    acked: int
    median_s: float | None
    slowest_s: float | None
    slowest: str | None  # who was slowest


@dataclass(frozen=True)
class Unreached:
    """Someone paged who never acknowledged nor declined, and what was tried."""

    name: str
    organisation: str
    page: str
    state: str  # unreachable (escalation ran out) | no answer
    channels: list[str]  # `matrix: delivered`, `email: failed (reason)`…


@dataclass(frozen=True)
class InputFigure:
    """An input that came late or not at all."""

    request: str
    name: str
    organisation: str
    deadline: datetime
    answered_at: datetime | None  # None: missing
    late_by_s: float | None


@dataclass(frozen=True)
class ActionFigure:
    """An action done after its due time, or still open at the review."""

    ref: str
    text: str
    owners: list[str]
    due_at: datetime | None
    done_at: datetime | None
    late_by_s: float | None  # done late: by how much; open and overdue: overdue by how much
    state: str  # done late | open | overdue
    improvement: bool


@dataclass(frozen=True)
class Attendance:
    round: str
    number: int
    status: str
    started_at: datetime | None
    expected: int
    reported: int
    missing: list[str]


@dataclass(frozen=True)
class TimelineEntry:
    seq: int
    at: datetime
    kind: str
    author: str
    text: str


@dataclass(frozen=True)
class Comment:
    score: int
    text: str | None
    by: str | None  # None: anonymous


@dataclass(frozen=True)
class FeedbackFigures:
    asked: int
    answered: int
    mean: float | None
    scores: dict[int, int]  # 1..5 → how many
    comments: list[Comment]


@dataclass(frozen=True)
class Figures:
    ref: str
    title: str
    tlp: str
    exercise: bool
    opened_at: datetime
    closed_at: datetime | None
    first_page_s: float | None
    pages: int
    paged: int
    acked: int
    by_organisation: list[Latency]
    by_channel: list[Latency]
    unreached: list[Unreached]
    inputs: list[InputFigure]
    inputs_asked: int
    actions: list[ActionFigure]
    actions_total: int
    rounds: list[Attendance]
    levels: list[tuple[datetime, str, str]]  # (when, level, by)
    timeline: list[TimelineEntry]
    feedback: FeedbackFigures
    at: datetime  # as things stood then

    def as_json(self) -> dict[str, Any]:
        """The figures as JSON values: times in ISO 8601 UTC."""

        def plain(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, dict):
                return {str(k): plain(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [plain(v) for v in value]
            return value

        return {k: plain(v) for k, v in asdict(self).items()}


def _latency(group: str, rows: list[tuple[PageTargetRow, float | None]]) -> Latency:
    acked = [(row, s) for row, s in rows if s is not None]
    seconds = [s for _row, s in acked if s is not None]
    slowest = max(acked, key=lambda pair: pair[1] or 0.0) if acked else None
    return Latency(
        group=group,
        paged=len(rows),
        acked=len(acked),
        median_s=statistics.median(seconds) if seconds else None,
        slowest_s=slowest[1] if slowest else None,
        slowest=slowest[0].name if slowest else None,
    )


def _grouped(
    rows: Iterable[tuple[PageTargetRow, float | None]], key: Any
) -> dict[str, list[tuple[PageTargetRow, float | None]]]:
    groups: dict[str, list[tuple[PageTargetRow, float | None]]] = {}
    for row, seconds in rows:
        groups.setdefault(key(row), []).append((row, seconds))
    return dict(sorted(groups.items()))


def _channels(row: PageTargetRow, tries: list[PageAttemptRow]) -> list[str]:
    said = []
    if row.send_error:
        said.append(f"matrix: failed ({row.send_error})")
    elif row.delivered_at:
        said.append("matrix: delivered" + (", seen" if row.seen_at else ""))
    for attempt in tries:
        if attempt.error:
            said.append(f"{attempt.channel}: failed ({attempt.error})")
        else:
            said.append(f"{attempt.channel}: sent" if attempt.sent_at else f"{attempt.channel}")
    return said


def feedback_figures(rows: list[FeedbackRow]) -> FeedbackFigures:
    """Scores and comments; a comment names its author only when they signed it. Unsigned
    comments are listed in the order of their words, not of their arrival, so that the order
    does not tell who wrote which."""
    answered = [r for r in rows if r.score is not None]
    scores = {n: 0 for n in range(1, 6)}
    for row in answered:
        assert row.score is not None
        scores[row.score] += 1
    signed = [Comment(r.score or 0, r.text, r.name) for r in answered if r.signed]
    anonymous = sorted(
        (Comment(r.score or 0, r.text, None) for r in answered if not r.signed),
        key=lambda c: (c.text or "", c.score),
    )
    return FeedbackFigures(
        asked=len([r for r in rows if r.asked_at is not None]),
        answered=len(answered),
        mean=round(statistics.mean(r.score or 0 for r in answered), 2) if answered else None,
        scores=scores,
        comments=signed + anonymous,
    )


async def gather(
    session: AsyncSession,
    activation: ActivationRow,
    directory: Directory,
    now: datetime,
    bot_id: str = "",
) -> Figures:
    """Every figure of the review, as things stand at `now`."""

    def name_of(matrix_id: str) -> str:
        return "the bot" if matrix_id == bot_id else directory.name_of(matrix_id)

    pages = [(p, rows) for p, rows in await page_store.pages_with_targets(session, activation.id)]
    pages = [(p, rows) for p, rows in pages if p.kind == "page"]
    all_rows = [row for _page, rows in pages for row in rows]
    tries = await page_store.tries_by_row(session, all_rows)
    latencies: list[tuple[PageTargetRow, float | None]] = []
    unreached: list[Unreached] = []
    for page, rows in pages:
        for row in rows:
            start = row.delivered_at or page.created_at
            seconds = (row.acked_at - start).total_seconds() if row.acked_at else None
            latencies.append((row, seconds))
            if row.acked_at is None and row.declined_at is None:
                unreached.append(
                    Unreached(
                        name=row.name,
                        organisation=row.organisation,
                        page=page.ref,
                        state="unreachable" if row.unreachable_at else "no answer",
                        channels=_channels(row, tries.get(row.id, [])),
                    )
                )
    first = min((p.created_at for p, _rows in pages), default=None)

    inputs: list[InputFigure] = []
    states = await request_states(session, activation.id)
    for state in states:
        for target in state.targets:
            answer = state.latest.get(target.id)
            deadline = state.request.deadline
            if answer is not None and answer.answered_at <= deadline:
                continue
            if answer is None and now <= deadline and activation.closed_at is None:
                continue  # not due yet
            inputs.append(
                InputFigure(
                    request=state.request.ref,
                    name=target.name,
                    organisation=target.organisation,
                    deadline=deadline,
                    answered_at=answer.answered_at if answer else None,
                    late_by_s=(answer.answered_at - deadline).total_seconds() if answer else None,
                )
            )

    actions: list[ActionFigure] = []
    late: float | None
    every_action = await action_store.of_activation(session, activation.id)
    for action in every_action:
        due = action.due_at
        if action.status == ActionStatus.DONE:
            if due is None or action.done_at is None or action.done_at <= due:
                continue
            standing, late = "done late", (action.done_at - due).total_seconds()
        else:
            overdue = due is not None and now >= due
            standing = "overdue" if overdue else "open"
            late = (now - due).total_seconds() if overdue and due else None
        actions.append(
            ActionFigure(
                ref=action.ref,
                text=action.text,
                owners=[
                    directory.contacts[h].name if h in directory.contacts else h
                    for h in action.owners
                ],
                due_at=due,
                done_at=action.done_at,
                late_by_s=late,
                state=standing,
                improvement=action.improvement,
            )
        )

    rounds = []
    for series, run, reports in await round_store.runs_of_activation(session, activation.id):
        if series.kind != "round":
            continue
        reported = {r.matrix_id for r in reports}
        rounds.append(
            Attendance(
                round=series.ref,
                number=run.number,
                status=run.status,
                started_at=run.started_at,
                expected=len(run.participants),
                reported=len([p for p in run.participants if p["matrix_id"] in reported]),
                missing=[p["name"] for p in run.participants if p["matrix_id"] not in reported],
            )
        )

    entries = await store.log_entries(session, activation.id)
    history = await level_history(session, activation)
    feedback = await review_store.feedback_of(session, activation.id)
    return Figures(
        ref=activation.ref,
        title=activation.title,
        tlp=activation.tlp,
        exercise=activation.exercise,
        opened_at=activation.opened_at,
        closed_at=activation.closed_at,
        first_page_s=(first - activation.opened_at).total_seconds() if first else None,
        pages=len(pages),
        paged=len(all_rows),
        acked=len([r for r in all_rows if r.acked_at is not None]),
        by_organisation=[
            _latency(org, rows)
            for org, rows in _grouped(latencies, lambda r: r.organisation).items()
        ],
        by_channel=[
            _latency(channel, rows)
            for channel, rows in _grouped(
                [(r, s) for r, s in latencies if s is not None], lambda r: ack_channel(r.ack_how)
            ).items()
        ],
        unreached=unreached,
        inputs=inputs,
        inputs_asked=sum(len(s.targets) for s in states),
        actions=actions,
        actions_total=len(every_action),
        rounds=rounds,
        levels=[(h.at, h.level, name_of(h.by)) for h in history],
        timeline=[
            TimelineEntry(e.seq, e.occurred_at, e.kind, name_of(e.author), e.text) for e in entries
        ],
        feedback=feedback_figures(feedback),
        at=now,
    )

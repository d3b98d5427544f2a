"""Table models. The schema is owned by Alembic (bot/storage/migrations); never `create_all`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import JSON, Column, Index, MetaData, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from bot.storage.types import UTCDateTime

# Stable constraint names, so that migrations can name what they alter on every backend.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


# -- states: each column below holds one of these values (as text, so no migration names them) --


class InboxStatus(StrEnum):
    """An inbox row before it is handled; afterwards its `Outcome`."""

    PENDING = "pending"  # to handle (again, after a crash)
    SEALED = "sealed"  # encrypted, waiting for its room key (bot.matrix.sealed)


class Outcome(StrEnum):
    """What became of an event the bot read: the inbox row's final status, a metric's label."""

    DONE = "done"
    LATE = "late"  # too old to act on; the sender is told
    FAILED = "failed"  # our fault: logged with a reference, the sender gets an apology
    REFUSED = "refused"  # the sender's role, a classified marking, outsiders in the room
    USAGE = "usage"  # the arguments did not parse; the usage line is shown
    IGNORED = "ignored"  # a stranger's reaction or reply: not for the bot
    EDITED = "edited"  # an edited command is never run again
    RATE_LIMITED = "rate-limited"
    UNKNOWN = "unknown"  # no such command
    UNANSWERED = "unanswered"  # handled, but the answer could not be sent
    UNDECRYPTABLE = "undecryptable"  # its room key never came


class ActivationStatus(StrEnum):
    OPEN = "open"
    SUSPENDED = "suspended"  # an exercise stopped by `realworld`
    CLOSED = "closed"


RUNNING = (ActivationStatus.OPEN, ActivationStatus.SUSPENDED)  # an activation not yet closed


class TimerKind(StrEnum):
    """What a durable timer does when it fires; each has one handler (`Scheduler.on`)."""

    PAGE_STEP = "page.step"  # a page's escalation: repeat, backup, unreachable
    CHECK_CLOSE = "check.close"  # a communication check's window ends
    REQUEST_STEP = "request.step"  # an input request's reminder or chase
    ROUND_RUN = "round.run"  # a coordination round starts
    ROUND_REMIND = "round.remind"  # halfway through its window
    ROUND_CLOSE = "round.close"  # its window ends: the summary
    DG_DIGEST = "dg.digest"  # the daily digest in the DG platform room
    SHIFT_CHANGE = "duty.shift"  # a duty shift begins: the incoming person hears what is open
    PAGE_FALLBACK = "page.fallback"  # no ack on one channel yet: the person's next channel
    ACTION_STEP = "action.step"  # an action's reminder (3/4 of the time) or chase (its due time)
    REVIEW_REPOST = "review.repost"  # feedback arrived: the after-action review's next version
    FEEDBACK_ASK = "feedback.ask"  # after a close: a participant asked for their feedback


class RunStatus(StrEnum):
    """A coordination round's run."""

    OPEN = "open"
    CLOSED = "closed"
    MISSED = "missed"  # its start passed while the bot was down, beyond its window


class Keyed(SQLModel):
    """A row whose key is a number the database gives it: `None` only until the row is flushed,
    typed `int` because no code reads it before."""

    id: int = Field(default=None, primary_key=True)


class Referenced:
    """A row people name by a short ref, its kind's prefix and its key (`PG-12`, `RQ-3`): the ref is
    derived, never stored, so it cannot disagree with the key."""

    REF: ClassVar[str]
    id: int

    @property
    def ref(self) -> str:
        return f"{self.REF}-{self.id}"


def utc_column(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class SyncState(SQLModel, table=True):
    """Where the bot stopped reading: one row per bot account, independent of the E2E store."""

    __tablename__ = "sync_state"

    user_id: str = Field(primary_key=True, max_length=255)
    next_batch: str | None = Field(default=None, max_length=255)
    filter_id: str | None = Field(default=None, max_length=255)
    updated_at: datetime = utc_column()


class InboxEvent(SQLModel, table=True):
    """A command-bearing event as received, written together with the sync token that follows it.

    `status` moves pending → done | late | failed. A pending row after a crash is a command that
    was received but not finished; it is dispatched again at start-up, so nothing typed is lost,
    and a finished row is never run again, so nothing runs twice.
    """

    __tablename__ = "inbox_event"
    __table_args__ = (Index("ix_inbox_event_status", "status"),)

    event_id: str = Field(primary_key=True, max_length=255)
    room_id: str = Field(max_length=255)
    sender: str = Field(max_length=255)
    origin_ts: datetime = utc_column()
    received_at: datetime = utc_column()
    content: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    event_type: str = Field(default="m.room.message", max_length=64)
    status: str = Field(default=InboxStatus.PENDING, max_length=16)  # InboxStatus | Outcome
    finished_at: datetime | None = utc_column(nullable=True)


class RoomJoin(SQLModel, table=True):
    """When the bot joined a room: events older than this are history, never commands."""

    __tablename__ = "room_join"

    room_id: str = Field(primary_key=True, max_length=255)
    joined_at: datetime = utc_column()


class Timer(Keyed, table=True):
    """Something that must happen later (an escalation step, a reminder, a round's end).

    The row is the truth; APScheduler only holds a rebuildable copy, re-armed from here at start-up.
    `(kind, key)` is unique, so arming the same step twice is one timer. Firing claims it for this
    process (`claimed_by`, `fired_at`), runs the handler, then sets `completed_at`; a claim left
    by a process that died mid-handler is taken over at the next start, and handlers send with
    stable transaction IDs, so a step runs to completion once and nobody hears it twice.
    """

    __tablename__ = "timer"
    __table_args__ = (UniqueConstraint("kind", "key", name="uq_timer_kind_key"),)

    kind: str = Field(max_length=64)
    key: str = Field(sa_column=Column(String(255), nullable=False))
    due_at: datetime = utc_column(index=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = utc_column()
    fired_at: datetime | None = utc_column(nullable=True)
    claimed_by: str | None = Field(default=None, max_length=64)
    completed_at: datetime | None = utc_column(nullable=True)
    cancelled_at: datetime | None = utc_column(nullable=True)


class OrganisationRow(SQLModel, table=True):
    """An organisation as last loaded from the directory; kept when removed from the file."""

    __tablename__ = "organisation"

    key: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=255)
    kind: str = Field(max_length=32)
    country: str = Field(default="", max_length=64)
    active: bool = True
    updated_at: datetime = utc_column()


class ContactRow(Keyed, table=True):
    """A directory contact with its history: a contact removed from the file becomes inactive,
    never deleted, because pages and logbook entries keep pointing at it."""

    __tablename__ = "contact"

    handle: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=255)
    organisation: str = Field(max_length=64)
    matrix_id: str | None = Field(default=None, max_length=255, index=True)
    role: str = Field(max_length=16)
    languages: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    timezone: str = Field(max_length=64)
    groups: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    backup: str | None = Field(default=None, max_length=64)
    active: bool = True
    first_loaded_at: datetime = utc_column()
    updated_at: datetime = utc_column()
    removed_at: datetime | None = utc_column(nullable=True)


class GroupRow(SQLModel, table=True):
    __tablename__ = "contact_group"

    name: str = Field(primary_key=True, max_length=64)
    description: str = Field(default="", max_length=255)
    active: bool = True
    updated_at: datetime = utc_column()


class ActivationRow(Keyed, table=True):
    """An ICC activation. `ref` is what people see (ICC-2026-007); `id` is what tables point at."""

    __tablename__ = "activation"
    __table_args__ = (UniqueConstraint("exercise", "year", "number", name="uq_activation_number"),)

    ref: str = Field(max_length=32, unique=True)
    exercise: bool = False
    year: int
    number: int
    title: str = Field(max_length=255)
    level: str = Field(max_length=32)
    tlp: str = Field(max_length=16)
    lead: str = Field(max_length=255)
    room_id: str | None = Field(default=None, max_length=255, unique=True)
    status: str = Field(default=ActivationStatus.OPEN, max_length=16)
    opened_by_event: str = Field(max_length=255, unique=True)
    opened_at: datetime = utc_column()
    closed_at: datetime | None = utc_column(nullable=True)
    closing_summary: str | None = None


class LogEntryRow(Keyed, table=True):
    """One logbook line. Append-only: triggers refuse UPDATE and DELETE (migration 0003), and each
    entry carries the hash of the previous one, so an export can be verified line by line."""

    __tablename__ = "log_entry"
    __table_args__ = (UniqueConstraint("activation_id", "seq", name="uq_log_entry_seq"),)

    activation_id: int = Field(foreign_key="activation.id", index=True)
    seq: int
    kind: str = Field(max_length=32)
    text: str
    author: str = Field(max_length=255)
    author_role: str = Field(max_length=16)
    occurred_at: datetime = utc_column()
    recorded_at: datetime = utc_column()
    corrects_seq: int | None = None
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class SitrepRow(Keyed, table=True):
    __tablename__ = "sitrep"
    __table_args__ = (UniqueConstraint("activation_id", "number", name="uq_sitrep_number"),)

    activation_id: int = Field(foreign_key="activation.id", index=True)
    number: int
    period_start: datetime = utc_column()
    period_end: datetime = utc_column()
    prepared_by: str = Field(max_length=255)
    body: str
    created_at: datetime = utc_column()


class DmRoom(SQLModel, table=True):
    """The one direct-message room the bot keeps with each person, created once and reused."""

    __tablename__ = "dm_room"

    matrix_id: str = Field(primary_key=True, max_length=255)
    room_id: str = Field(max_length=255)
    created_at: datetime = utc_column()


class PageRow(Referenced, Keyed, table=True):
    """A page (`PG-<id>`): one message to many people, each tracked in `page_target`.

    A communication check (`kind="check"`) is a page of a test message with no escalation; it
    may be sent outside any activation, and reports to the room it was asked in (`room_id`).
    """

    REF: ClassVar[str] = "PG"
    __tablename__ = "page"

    activation_id: int | None = Field(default=None, foreign_key="activation.id", index=True)
    kind: str = Field(default="page", max_length=16)
    room_id: str | None = Field(default=None, max_length=255)
    sender: str = Field(max_length=255)
    text: str  # as typed; a playbook's page: its English text
    # A playbook's page in its languages (language → text), None for a typed one: each person
    # reads it in their page's language where it has one (`text_in`).
    texts: dict[str, str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    urgent: bool = False
    ack_window_s: int
    opened_by_event: str = Field(max_length=255, unique=True)
    board_event_id: str | None = Field(default=None, max_length=255)
    board_digest: str | None = Field(default=None, max_length=64)  # of what the board shows
    created_at: datetime = utc_column()

    def text_in(self, language: str) -> str:
        """The text for someone who reads the page in `language`: in that language if the page
        has it (a playbook's), else as typed — never a body in one language in a frame in
        another, unless the page has no text in the frame's."""
        return (self.texts or {}).get(language, self.text)


class PageTargetRow(Keyed, table=True):
    """One person on one page: a snapshot of who they were, and what happened to the page.

    `covers` is empty for a person paged directly, or the handle of the person a backup stands
    in for. The first answer wins: `acked_at`/`declined_at` are written once. An ack given by
    reaction and later redacted by its author still stands (the cell relied on it); when it was
    withdrawn is kept in `ack_withdrawn_at`, written once too.
    """

    __tablename__ = "page_target"
    __table_args__ = (
        UniqueConstraint("page_id", "handle", "covers", name="uq_page_target_person"),
        Index("ix_page_target_events", "event_id", "repage_event_id"),
    )

    page_id: int = Field(foreign_key="page.id", index=True)
    handle: str = Field(max_length=64)
    matrix_id: str = Field(max_length=255, index=True)
    name: str = Field(max_length=255)
    organisation: str = Field(max_length=255)
    language: str = Field(max_length=8)
    timezone: str = Field(max_length=64)
    covers: str = Field(default="", max_length=64)
    duty_team: str | None = Field(default=None, max_length=64)  # paged as `duty:<team>`
    deadline: datetime = utc_column()
    dm_room_id: str | None = Field(default=None, max_length=255)
    event_id: str | None = Field(default=None, max_length=255)
    delivered_at: datetime | None = utc_column(nullable=True)
    send_error: str | None = None
    repage_event_id: str | None = Field(default=None, max_length=255)
    repaged_at: datetime | None = utc_column(nullable=True)
    seen_at: datetime | None = utc_column(nullable=True)  # their first read receipt after it
    acked_at: datetime | None = utc_column(nullable=True)
    ack_how: str | None = Field(default=None, max_length=16)
    ack_event_id: str | None = Field(default=None, max_length=255)
    ack_withdrawn_at: datetime | None = utc_column(nullable=True)
    declined_at: datetime | None = utc_column(nullable=True)
    declined_reason: str | None = None
    escalated_at: datetime | None = utc_column(nullable=True)
    unreachable_at: datetime | None = utc_column(nullable=True)


class ActionStatus(StrEnum):
    OPEN = "open"
    DONE = "done"


class ActionRow(Referenced, Keyed, table=True):
    """An action (`A-<id>`): something its owners must do in an activation, by a time or not.
    `owners` are directory handles (the directory names them when shown); each change is also a
    logbook entry, so the history is there and here is only where it stands."""

    REF: ClassVar[str] = "A"
    __tablename__ = "action"

    activation_id: int = Field(foreign_key="activation.id", index=True)
    text: str
    owners: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    due_at: datetime | None = utc_column(nullable=True)
    status: str = Field(default=ActionStatus.OPEN, max_length=8)
    created_by: str = Field(max_length=255)
    created_at: datetime = utc_column()
    opened_by_event: str = Field(max_length=255, unique=True)
    source: str | None = Field(default=None, max_length=64)  # `playbook:<key>` when one made it
    reminded_at: datetime | None = utc_column(nullable=True)
    chased_at: datetime | None = utc_column(nullable=True)
    done_at: datetime | None = utc_column(nullable=True)
    done_by: str | None = Field(default=None, max_length=255)
    done_note: str | None = None
    # A lesson's improvement action (`log … --lesson`): it outlives its activation, reminded
    # and chased after the close too, listed by `actions --improvement` across activations.
    improvement: bool = False

    def overdue(self, now: datetime) -> bool:
        return self.status == ActionStatus.OPEN and self.due_at is not None and now >= self.due_at


class SituationBoardRow(SQLModel, table=True):
    """An activation's live situation board: which generation of its links opens it. A link is
    signed with the epoch it was given under; `board revoke` moves the epoch on, and every link
    given before stops working. No row: epoch 0, nothing revoked yet."""

    __tablename__ = "situation_board"

    activation_id: int = Field(foreign_key="activation.id", primary_key=True)
    epoch: int = 0
    revoked_at: datetime | None = utc_column(nullable=True)
    revoked_by: str | None = Field(default=None, max_length=255)


class InputRequestRow(Referenced, Keyed, table=True):
    """An input request (`RQ-<id>`): a question to partners, answered by direct message."""

    REF: ClassVar[str] = "RQ"
    __tablename__ = "input_request"

    activation_id: int = Field(foreign_key="activation.id", index=True)
    sender: str = Field(max_length=255)
    question: str
    deadline: datetime = utc_column()
    opened_by_event: str = Field(max_length=255, unique=True)
    created_at: datetime = utc_column()


class RequestTargetRow(Keyed, table=True):
    """One person asked, with a snapshot of who they were and what the bot sent them."""

    __tablename__ = "request_target"
    __table_args__ = (UniqueConstraint("request_id", "handle", name="uq_request_target_person"),)

    request_id: int = Field(foreign_key="input_request.id", index=True)
    handle: str = Field(max_length=64)
    matrix_id: str = Field(max_length=255, index=True)
    name: str = Field(max_length=255)
    organisation: str = Field(max_length=255)
    language: str = Field(max_length=8)
    timezone: str = Field(max_length=64)
    dm_room_id: str | None = Field(default=None, max_length=255)
    event_id: str | None = Field(default=None, max_length=255, index=True)
    delivered_at: datetime | None = utc_column(nullable=True)
    send_error: str | None = None
    reminded_at: datetime | None = utc_column(nullable=True)
    chased_at: datetime | None = utc_column(nullable=True)


class InputAnswerRow(Keyed, table=True):
    """One answer; a later one from the same person is a new version, and the latest counts."""

    __tablename__ = "input_answer"
    __table_args__ = (UniqueConstraint("target_id", "version", name="uq_input_answer_version"),)

    request_id: int = Field(foreign_key="input_request.id", index=True)
    target_id: int = Field(foreign_key="request_target.id")
    text: str
    version: int
    answered_at: datetime = utc_column()
    late: bool = False
    via: str = Field(max_length=16)
    event_id: str = Field(max_length=255, unique=True)


class AdviceDraftRow(Keyed, table=True):
    """A draft of the advice note, versioned per activation; the text as posted."""

    __tablename__ = "advice_draft"
    __table_args__ = (UniqueConstraint("activation_id", "version", name="uq_advice_draft_version"),)

    activation_id: int = Field(foreign_key="activation.id", index=True)
    version: int
    requests: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    markdown: str
    created_by: str = Field(max_length=255)
    created_at: datetime = utc_column()


class RoundSeriesRow(Referenced, Keyed, table=True):
    """A coordination round (`RD-<id>`): scheduled (a cron in a named zone) or run once now."""

    REF: ClassVar[str] = "RD"
    __tablename__ = "round_series"

    kind: str = Field(default="round", max_length=16)  # round | check (a scheduled commscheck)
    activation_id: int | None = Field(default=None, foreign_key="activation.id", index=True)
    room_id: str = Field(max_length=255)
    when_text: str = Field(max_length=255)
    cron: str | None = Field(default=None, max_length=128)  # None: a single round, now
    timezone: str = Field(max_length=64)
    window_s: int
    agenda: str | None = None
    participants: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_by: str = Field(max_length=255)
    opened_by_event: str = Field(max_length=255, unique=True)
    created_at: datetime = utc_column()
    cancelled_at: datetime | None = utc_column(nullable=True)


class RoundRunRow(Keyed, table=True):
    """One run of a round: its prompt (the thread root), its reports, its summary."""

    __tablename__ = "round_run"
    __table_args__ = (UniqueConstraint("series_id", "scheduled_for", name="uq_round_run_slot"),)

    series_id: int = Field(foreign_key="round_series.id", index=True)
    number: int
    scheduled_for: datetime = utc_column()
    started_at: datetime | None = utc_column(nullable=True)
    prompt_event_id: str | None = Field(default=None, max_length=255, index=True)
    participants: list[dict[str, str]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    status: str = Field(default=RunStatus.OPEN, max_length=16)
    closed_at: datetime | None = utc_column(nullable=True)


class RoundReportRow(Keyed, table=True):
    __tablename__ = "round_report"

    run_id: int = Field(foreign_key="round_run.id", index=True)
    matrix_id: str = Field(max_length=255)
    name: str = Field(max_length=255)
    text: str
    reported_at: datetime = utc_column()
    via: str = Field(max_length=16)
    event_id: str = Field(max_length=255, unique=True)


class DutyOverrideRow(Keyed, table=True):
    """`oncall override`: someone on duty in a team until a time, whatever the rota says. The
    newest override of a team in force wins; it ends by itself at `until` (nothing to cancel)."""

    __tablename__ = "duty_override"

    team: str = Field(max_length=64, index=True)
    handle: str = Field(max_length=64)
    until: datetime = utc_column()
    set_by: str = Field(max_length=255)
    opened_by_event: str = Field(max_length=255, unique=True)
    created_at: datetime = utc_column()


class PageAttemptRow(Keyed, table=True):
    """One try to reach a person on a page through one channel other than Matrix (whose send
    is on `page_target` itself): when it left, or why it did not, and its message's ID — the
    evidence of who was tried how."""

    __tablename__ = "page_attempt"

    target_id: int = Field(foreign_key="page_target.id", index=True)
    channel: str = Field(max_length=16)
    tried_at: datetime = utc_column()
    sent_at: datetime | None = utc_column(nullable=True)
    error: str | None = None
    message_id: str | None = Field(default=None, max_length=255)


class FeedbackRow(Keyed, table=True):
    """One participant's after-action feedback on a closed activation: a row when they are asked
    (`asked_at`), its score and words when they answer (`feedback <1-5> [text]`; answering again
    replaces them: the latest counts). `signed`: the review names them; otherwise it does not."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("activation_id", "matrix_id", name="uq_feedback_person"),)

    activation_id: int = Field(foreign_key="activation.id", index=True)
    matrix_id: str = Field(max_length=255, index=True)
    handle: str | None = Field(default=None, max_length=64)
    name: str = Field(max_length=255)
    asked_at: datetime | None = utc_column(nullable=True)
    score: int | None = None
    text: str | None = None
    signed: bool = False
    given_at: datetime | None = utc_column(nullable=True)
    versions: int = 0  # how many times they answered


class ReviewRow(Keyed, table=True):
    """A version of an activation's after-action review as posted: on close, by `review`, and
    again when feedback arrives (at most once an hour)."""

    __tablename__ = "review"
    __table_args__ = (UniqueConstraint("activation_id", "version", name="uq_review_version"),)

    activation_id: int = Field(foreign_key="activation.id", index=True)
    version: int
    reason: str = Field(max_length=16)  # close | review | feedback
    posted_by: str = Field(max_length=255)
    posted_at: datetime = utc_column()
    feedback_count: int = 0

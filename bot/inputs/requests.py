"""Input requests (`RQ-n`): asking partners for their input, and turning it into an advice note.

Each person asked gets the question by direct message in their language, with the deadline in
their time zone and UTC. Those who have not answered are reminded at half-time and chased at the
deadline (durable timers `a<activation>:rq<id>:remind|chase`). An answer is stored with author,
organisation and time; a second one from the same person is a new version and the latest counts;
one after the deadline is accepted and marked late. The advice note quotes partners verbatim and
leaves the recommendation and the options for the cell to write: the bot never invents content.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.activations.activation import ActivationCapability, after_close, timer_prefix
from bot.activations.asked import Said
from bot.directory.model import Contact
from bot.errors import UserError
from bot.matrix.send import MatrixSendError, fits_one_event
from bot.reach.direct import RECORD_HORIZON, DirectMessages, owner_of_answered
from bot.render import Message, markdown_unescape, verbatim_lines
from bot.storage import activation_store
from bot.storage import input_store as store
from bot.storage.models import (
    ActivationRow,
    ActivationStatus,
    AdviceDraftRow,
    InputAnswerRow,
    InputRequestRow,
    RequestTargetRow,
    Timer,
    TimerKind,
)
from bot.timeutil import format_local_utc, load_zone, utcnow

log = logging.getLogger(__name__)

REMIND, CHASE = "remind", "chase"


@dataclass(frozen=True)
class Recorded:
    request: InputRequestRow
    activation: ActivationRow
    target: RequestTargetRow
    answer: InputAnswerRow


@dataclass(frozen=True)
class RequestState:
    """One request with everyone asked and the answer that counts for each (or None)."""

    request: InputRequestRow
    targets: list[RequestTargetRow]
    latest: dict[int, InputAnswerRow]  # target id → latest version
    versions: dict[int, int]  # target id → how many versions
    answers: list[InputAnswerRow]  # every version, in the order given

    @property
    def missing(self) -> list[RequestTargetRow]:
        return [t for t in self.targets if t.id not in self.latest]

    def overdue(self, now: datetime) -> bool:
        return now > self.request.deadline and bool(self.missing)


@dataclass(frozen=True)
class InputSummary:
    """Where an activation's requests stand, for status, handover and sitrep."""

    requests: list[tuple[str, int, int, list[str]]]  # (RQ-n, answered, asked, who has not)
    overdue: list[tuple[str, list[str]]]  # (RQ-n, who has not answered) past the deadline


async def request_state(session: AsyncSession, request: InputRequestRow) -> RequestState:
    targets = await store.targets(session, request.id)
    answers = await store.answers(session, request.id)
    return _state(request, targets, answers)


async def request_states(session: AsyncSession, activation_id: int) -> list[RequestState]:
    """Every request of an activation, in three queries however many there are (status,
    sitrep and the record read them all; a request each was two round trips each)."""
    requests = await store.requests_of(session, activation_id)
    if not requests:
        return []
    targets: dict[int, list[RequestTargetRow]] = {r.id: [] for r in requests}
    answers: dict[int, list[InputAnswerRow]] = {r.id: [] for r in requests}
    # Each query sees what is committed when it runs: what belongs to a request added since
    # the first is left for the next read.
    for target in await store.targets_of_activation(session, activation_id):
        targets.get(target.request_id, []).append(target)
    for answer in await store.answers_of_activation(session, activation_id):
        answers.get(answer.request_id, []).append(answer)
    return [_state(r, targets[r.id], answers[r.id]) for r in requests]


def _state(
    request: InputRequestRow, targets: list[RequestTargetRow], answers: list[InputAnswerRow]
) -> RequestState:
    latest: dict[int, InputAnswerRow] = {}
    versions: dict[int, int] = {}
    for answer in answers:
        versions[answer.target_id] = versions.get(answer.target_id, 0) + 1
        if answer.target_id not in latest or answer.version > latest[answer.target_id].version:
            latest[answer.target_id] = answer
    return RequestState(request, targets, latest, versions, answers)


def readable_in_room(note: Message, rest: Message) -> Message:
    """The advice note as a message: whole when it fits one event, else its first paragraphs
    and `rest`, which says where the rest is."""
    plain = markdown_unescape(note.body)
    whole = Message(plain, note.html)
    if fits_one_event(whole):
        return whole
    cut = plain
    while True:
        cut = cut[: len(cut) * 3 // 4].rsplit("\n\n", 1)[0]
        part = Message(f"{cut}\n\n{rest.body}", verbatim_lines(cut) + rest.html)
        if fits_one_event(part):
            return part


@dataclass(frozen=True, kw_only=True)
class Inputs(ActivationCapability):
    direct: DirectMessages

    # -- asking -----------------------------------------------------------------------------------

    async def create(
        self,
        activation: ActivationRow,
        *,
        sender: str,
        question: str,
        people: list[Contact],
        deadline: datetime,
        event_id: str,
    ) -> InputRequestRow:
        async with self.db.session() as session:
            existing = await store.request_by_event(session, event_id)
            if existing is not None:
                return existing
            now = utcnow()
            request = InputRequestRow(
                activation_id=activation.id,
                sender=sender,
                question=question,
                deadline=deadline,
                opened_by_event=event_id,
                created_at=now,
            )
            session.add(request)
            await session.flush()
            await store.add_targets(session, [self._target(request, p) for p in people])
            prefix = f"{timer_prefix(activation.id)}rq{request.id}:"
            halfway = now + (deadline - now) / 2
            await self.scheduler.arm_new(
                session,
                TimerKind.REQUEST_STEP,
                [
                    (prefix + REMIND, halfway, {"request": request.id, "step": REMIND}),
                    (prefix + CHASE, deadline, {"request": request.id, "step": CHASE}),
                ],
            )
            await self.activations.add_entry(
                session,
                activation,
                "system.ask",
                f"{request.ref} asked {len(people)} for input by "
                f"{self.activations.local(deadline)}: {question}",
                sender,
                data={"request": request.id, "to": [p.handle for p in people]},
            )
        return request

    def _target(self, request: InputRequestRow, person: Contact) -> dict[str, object]:
        """A person's row on a request, as column values (a `RequestTargetRow`)."""
        return {"request_id": request.id, **self.direct.snapshot(person, "request")}

    async def deliver(self, request: InputRequestRow, activation: ActivationRow) -> list[str]:
        """Send the question to everyone not reached yet; returns the names it failed for."""
        async with self.db.session() as session:
            rows = [t for t in await store.targets(session, request.id) if t.event_id is None]
        return await self._send(request, activation, rows, step=None)

    async def _send(
        self,
        request: InputRequestRow,
        activation: ActivationRow,
        rows: list[RequestTargetRow],
        step: str | None,
    ) -> list[str]:
        rooms = await self.direct.rooms_for([r.matrix_id for r in rows])
        results = await asyncio.gather(
            *(
                self._send_one(request, activation, row, rooms.get(row.matrix_id), step)
                for row in rows
            ),
            return_exceptions=True,
        )
        failed = []
        now = utcnow()
        marks: dict[int, dict[str, object]] = {}
        for row, result in zip(rows, results, strict=True):
            if isinstance(result, BaseException):
                failed.append(row.name)
                marks[row.id] = {"send_error": str(result)}
            elif step is None:
                marks[row.id] = {
                    "event_id": result,
                    "delivered_at": now,
                    "dm_room_id": rooms.get(row.matrix_id),
                }
            else:
                marks[row.id] = {f"{'reminded' if step == REMIND else 'chased'}_at": now}
        async with self.db.session() as session:
            await store.mark_many(session, marks)
            if failed:
                await self.activations.add_entry(
                    session,
                    activation,
                    "system.ask_failed",
                    f"{request.ref} could not be delivered to {', '.join(failed)}",
                    self.activations.bot_id,
                    data={"request": request.id},
                )
        return failed

    async def _send_one(
        self,
        request: InputRequestRow,
        activation: ActivationRow,
        row: RequestTargetRow,
        room_id: str | None,
        step: str | None,
    ) -> str:
        if room_id is None:
            raise MatrixSendError(row.matrix_id, None, "no direct-message room")
        directory = self.keeper.current
        sender = directory.contact_for(request.sender)
        message = self.renderer.render(
            "request",
            lang=row.language,
            ref=request.ref,
            activation=activation,
            question=request.question,
            step=step,
            sender=sender.name if sender else request.sender,
            sender_org=directory.organisations[sender.organisation].name if sender else "",
            deadline=format_local_utc(
                request.deadline, load_zone(row.timezone), with_date=True, lang=row.language
            ),
        )
        txn = f"rq-{row.id}-{step or 'ask'}"
        return await self.messenger.ring(
            room_id,
            self.activations.frame(message, activation),
            mentions=(row.matrix_id,),
            txn_id=txn,
        )

    # -- answers ----------------------------------------------------------------------------------

    async def is_request_event(self, event_id: str | None, matrix_id: str) -> bool:
        """Whether `event_id` is an input request sent to this person; a reply read before a
        request sent just before a crash is recorded waits for it (`owner_of_answered`)."""
        if event_id is None:
            return False

        async def find(session: AsyncSession) -> str | None:
            target = await store.target_by_event(session, event_id)
            return target.matrix_id if target else None

        async def unrecorded(session: AsyncSession) -> bool:
            since = utcnow() - RECORD_HORIZON
            return await store.has_unrecorded_target(session, matrix_id, since)

        return await owner_of_answered(self.db, find, unrecorded) == matrix_id

    async def record_answer(
        self, said: Said, *, ref: str | None, relates_to: str | None
    ) -> Recorded:
        matrix_id, event_id = said.sender, said.event_id
        async with self.db.session() as session:
            request, target = await self._asked(session, matrix_id, ref, relates_to)
            activation = await activation_store.by_id(session, request.activation_id)
            assert activation is not None
            if activation.status != ActivationStatus.OPEN:
                refused = after_close(
                    self.renderer,
                    "input_after_close",
                    request.ref,
                    activation,
                    who=matrix_id,
                    language=target.language,
                    timezone=target.timezone,
                )
                session.expunge(activation)  # readable for the answer's frame after rollback
                raise refused
            existing = await store.answer_by_event(session, event_id)
            if existing is not None:  # the same message handled again after a restart
                return Recorded(request, activation, target, existing)
            answered = min(said.at, utcnow())
            answer = InputAnswerRow(
                request_id=request.id,
                target_id=target.id,
                text=said.text,
                version=await store.next_version(session, target.id),
                answered_at=answered,
                late=answered > request.deadline,
                via=said.via,
                event_id=event_id,
            )
            session.add(answer)
            await session.flush()
            late = " (late)" if answer.late else ""
            await self.activations.add_entry(
                session,
                activation,
                "system.input",
                f"{request.ref}: input from {target.name} ({target.organisation}), "
                f"version {answer.version}{late}",
                matrix_id,
                data={"request": request.id, "handle": target.handle, "version": answer.version},
            )
        return Recorded(request, activation, target, answer)

    async def _asked(
        self,
        session: AsyncSession,
        matrix_id: str,
        ref: str | None,
        relates_to: str | None,
    ) -> tuple[InputRequestRow, RequestTargetRow]:
        """The request the person answers, and their row on it; refuses anyone not asked."""
        if ref is None and relates_to is not None:
            target = await store.target_by_event(session, relates_to)
            if target is not None and target.matrix_id == matrix_id:
                request = await store.request(session, target.request_id)
                assert request is not None
                return request, target
        if ref is None:
            raise UserError("Name the request you answer: input RQ-3 <your input>.")
        request = await store.request(session, int(ref.split("-")[1]))
        if request is None:
            raise UserError(f"There is no request {ref}.")
        mine = [t for t in await store.targets(session, request.id) if t.matrix_id == matrix_id]
        if not mine:
            raise UserError(
                f"{ref} was not sent to you, so your input cannot be recorded under it."
            )
        return request, mine[0]

    # -- reminders and chases ---------------------------------------------------------------------

    async def on_step(self, timer: Timer) -> None:
        async with self.db.session() as session:
            request = await store.request(session, timer.payload["request"])
            activation = (
                await activation_store.by_id(session, request.activation_id) if request else None
            )
            state = await request_state(session, request) if request else None
        if (
            request is None
            or activation is None
            or state is None
            or activation.status != ActivationStatus.OPEN
        ):
            return
        step = timer.payload["step"]
        if step == REMIND and utcnow() >= request.deadline:
            return  # fell due while the bot was away: the chase says it, never after it
        done = "reminded_at" if step == REMIND else "chased_at"
        waiting = [t for t in state.missing if t.event_id and getattr(t, done) is None]
        if not waiting:
            return
        await self._send(request, activation, waiting, step=step)
        await self.activations.note(
            activation,
            f"system.{step}",
            f"{request.ref}: {'reminded' if step == REMIND else 'chased'} "
            f"{', '.join(t.name for t in waiting)}",
            data={"request": request.id, "handles": [t.handle for t in waiting]},
        )

    # -- reading ----------------------------------------------------------------------------------

    async def summary(self, session: AsyncSession, activation_id: int) -> InputSummary:
        now = utcnow()
        states = await request_states(session, activation_id)
        return InputSummary(
            requests=[
                (s.request.ref, len(s.latest), len(s.targets), [t.name for t in s.missing])
                for s in states
            ],
            overdue=[
                (s.request.ref, [t.name for t in s.missing]) for s in states if s.overdue(now)
            ],
        )

    # -- advice -----------------------------------------------------------------------------------

    async def advise(self, room_id: str, refs: list[str], *, by: str, event_id: str) -> Message:
        """`advice`: the next draft of the advice note, posted in the room to be read there (its
        first part, when it is longer than one event) and as Markdown and HTML files."""
        activation = await self.activations.open_in_room(room_id)
        draft, note, views = await self._draft_advice(activation, refs, by)
        stem = f"{activation.ref}-advice-v{draft.version}"
        rest = self.renderer.render("advice_rest", stem=stem)
        readable = self.activations.frame(readable_in_room(note, rest), activation)
        await self.messenger.notice(room_id, readable, txn_id=f"advice-{event_id}-note")
        for suffix, data, mimetype in (
            ("md", note.body.encode(), "text/markdown"),
            ("html", note.html.encode(), "text/html"),
        ):
            await self.messenger.send_file(
                room_id,
                data,
                filename=f"{stem}.{suffix}",
                mimetype=mimetype,
                txn_id=f"advice-{event_id}-{suffix}",
            )
        return self.renderer.render(
            "advice_posted", activation=activation, version=draft.version, stem=stem, requests=views
        )

    async def _draft_advice(
        self, activation: ActivationRow, refs: list[str], author: str
    ) -> tuple[AdviceDraftRow, Message, list[dict]]:
        """The next version of the advice note from the answers to `refs` (default: all)."""
        async with self.db.session() as session:
            states = await request_states(session, activation.id)
            if refs:
                wanted = {int(r.split("-")[1]) for r in refs}
                unknown = wanted - {s.request.id for s in states}
                if unknown:
                    raise UserError(
                        f"{', '.join(f'RQ-{n}' for n in sorted(unknown))} "
                        f"{'is' if len(unknown) == 1 else 'are'} not a request of {activation.ref}."
                    )
                states = [s for s in states if s.request.id in wanted]
            if not states:
                raise UserError(
                    f"{activation.ref} has no input request yet; first: ask <targets> <question>."
                )
            await activation_store.lock_activation(session, activation.id)
            version = await store.next_advice_version(session, activation.id)
            views = [self._request_view(s) for s in states]
            note = self.renderer.render(
                "advice_note",
                activation=activation,
                version=version,
                requests=views,
                author=self.keeper.current.name_of(author),
                at=self.activations.local(utcnow(), with_date=True),
            )
            draft = AdviceDraftRow(
                activation_id=activation.id,
                version=version,
                requests=[s.request.id for s in states],
                markdown=note.body,
                created_by=author,
                created_at=utcnow(),
            )
            session.add(draft)
            await self.activations.add_entry(
                session,
                activation,
                "system.advice",
                f"Advice note draft v{version} from {', '.join(s.request.ref for s in states)}",
                author,
                data={"version": version, "requests": draft.requests},
            )
        return draft, note, views

    def _request_view(self, state: RequestState) -> dict:
        by_org: dict[str, list[dict]] = {}
        for target in state.targets:
            answer = state.latest.get(target.id)
            by_org.setdefault(target.organisation, []).append(
                {
                    "name": target.name,
                    "answer": answer,
                    "versions": state.versions.get(target.id, 0),
                    "at": self.activations.local(answer.answered_at, with_date=True)
                    if answer
                    else None,
                }
            )
        return {
            "ref": state.request.ref,
            "question": state.request.question,
            "deadline": self.activations.local(state.request.deadline, with_date=True),
            "organisations": by_org,
            "missing": [t.name for t in state.missing],
            "answered": len(state.latest),
            "asked": len(state.targets),
        }

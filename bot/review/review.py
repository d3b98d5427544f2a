"""The after-action review (SPEC, "After-action review"): built on `close` (it goes into the
record bundle) and on `review`; every participant asked for `feedback` by DM after the close,
by durable timers armed in the close's transaction; each answer makes a new version due, posted
at most once an hour by a durable timer.

Participants are the people paged, asked for input, owning an action, expected in a round, and
the activation's members (the ICC roster its room invites). Feedback is anonymous in the review
unless its author adds `--signed`; the row keeps who answered (one answer each, the latest
counting) and never leaves the database otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.activations.activation import ActivationCapability
from bot.directory.model import Contact
from bot.directory.roles import Role
from bot.errors import Refused, UserError
from bot.matrix.send import MatrixSendError
from bot.render import Message
from bot.review.document import ReviewFiles, compose, review_stem
from bot.review.figures import gather
from bot.storage import action_store, input_store, page_store, review_store, round_store
from bot.storage import activation_store as store
from bot.storage.models import (
    ActivationRow,
    ActivationStatus,
    FeedbackRow,
    ReviewRow,
    Timer,
    TimerKind,
)
from bot.timeutil import format_local_utc, utcnow

if TYPE_CHECKING:
    from bot.reach.direct import DirectMessages
    from bot.settings import Settings

log = logging.getLogger(__name__)

REPOST_EVERY = timedelta(hours=1)  # feedback re-posts the review at most this often
REVIEW_EVERY = timedelta(minutes=1)  # `review` renders a fresh version at most this often
SCORES = range(1, 6)
ASK_TEMPLATE, RECORDED_TEMPLATE = "feedback_request", "feedback_recorded"
TOO_SOON_TEMPLATE = "review_too_soon"


def repost_key(activation_id: int, version: int) -> str:
    """Not under the activation's timer prefix: the close must not cancel it."""
    return f"review:{activation_id}:v{version}"


def ask_key(activation_id: int, handle: str) -> str:
    """A participant's feedback request: armed by the close, after its cancel, and like the
    re-posts not under the activation's prefix."""
    return f"feedback:{activation_id}:{handle}"


@dataclass(frozen=True, kw_only=True)
class Reviews(ActivationCapability):
    settings: Settings
    direct: DirectMessages

    # -- building ---------------------------------------------------------------------------------

    async def build(self, activation: ActivationRow, version: int) -> ReviewFiles:
        """The review as things stand now, numbered `version`."""
        async with self.db.session() as session:
            figures = await gather(
                session, activation, self.keeper.current, utcnow(), self.activations.bot_id
            )
        return await asyncio.to_thread(
            compose,
            self.renderer,
            figures,
            version,
            self.settings.timezone,
            self.settings.exercise_marker,
        )

    async def _reserve(
        self, activation: ActivationRow, reason: str, by: str, *, every: timedelta | None = None
    ) -> tuple[int, datetime | None]:
        """The next version's number, taken in the database (two posts never share one), and
        None. With `every`: when the last version was made less than that ago, no number is
        taken; (that version, when the next may be made) instead."""
        async with self.db.session() as session:
            await store.lock_activation(session, activation.id)
            posted = await review_store.reviews(session, activation.id)
            now = utcnow()
            if every is not None and posted and posted[-1].posted_at + every > now:
                return posted[-1].version, posted[-1].posted_at + every
            answered = [
                r for r in await review_store.feedback_of(session, activation.id) if r.score
            ]
            version = (posted[-1].version if posted else 0) + 1
            session.add(
                ReviewRow(
                    activation_id=activation.id,
                    version=version,
                    reason=reason,
                    posted_by=by,
                    posted_at=now,
                    feedback_count=len(answered),
                )
            )
        return version, None

    async def _build_reserved(self, activation: ActivationRow, version: int) -> ReviewFiles:
        """The version just reserved; if it cannot be built, its number is given back, so that
        a `review` right after (as the close's report suggests then) is not refused as too
        soon after a version nobody saw."""
        try:
            return await self.build(activation, version)
        except Exception:
            async with self.db.session() as session:
                await review_store.forget(session, activation.id, version)
            raise

    async def for_close(self, activation: ActivationRow, by: str) -> ReviewFiles:
        """The first version, for the record bundle the close posts."""
        version, _ = await self._reserve(activation, "close", by)
        return await self._build_reserved(activation, version)

    # -- posting ----------------------------------------------------------------------------------

    async def post(self, activation: ActivationRow, reason: str, by: str) -> ReviewFiles:
        """A new version in the activation's room: its files and their manifest."""
        version, _ = await self._reserve(activation, reason, by)
        return await self._send(activation, await self._build_reserved(activation, version))

    async def _send(self, activation: ActivationRow, files: ReviewFiles) -> ReviewFiles:
        """The version's files and their manifest, posted in the activation's room."""
        room_id = activation.room_id or ""
        manifest_name = f"{files.stem}-SHA256SUMS"
        for name, data, mimetype in [
            *files.files(),
            (manifest_name, files.manifest(), "text/plain"),
        ]:
            await self.messenger.send_file(
                room_id, data, filename=name, mimetype=mimetype, txn_id=f"review-{name}"
            )
        return files

    async def on_demand(self, room_id: str, by: str) -> Message:
        """`review`: the review as it stands, posted in the activation's room (open or closed);
        refused, with when it can be made again, within a minute of the last version (charts
        and a PDF are costly to render, and a minute changes little)."""
        activation = await self.activations.resolve(room_id, None)
        version, next_at = await self._reserve(activation, "review", by, every=REVIEW_EVERY)
        if next_at is not None:
            raise Refused(self._too_soon(activation, version, next_at, by), activation)
        files = await self._send(activation, await self._build_reserved(activation, version))
        return self.renderer.render(
            "review_posted", activation=activation, files=files, reason="review"
        )

    def _too_soon(
        self, activation: ActivationRow, version: int, next_at: datetime, by: str
    ) -> Message:
        """`review` again too soon, told in the sender's language and zone."""
        contact = self.keeper.current.contact_for(by)
        languages = contact.languages if contact else ()
        zone = contact.zone if contact else self.settings.timezone
        lang = self.renderer.language_for(TOO_SOON_TEMPLATE, languages)
        return self.renderer.render(
            TOO_SOON_TEMPLATE,
            lang=lang,
            activation=activation,
            version=version,
            stem=review_stem(activation.ref, version),
            next=format_local_utc(next_at, zone, lang=lang),
            seconds=max(1, math.ceil((next_at - utcnow()).total_seconds())),
        )

    async def on_repost(self, timer: Timer) -> None:
        """Feedback arrived: the version it made due, unless one was posted since."""
        async with self.db.session() as session:
            activation = await store.by_id(session, timer.payload["activation"])
            posted = await review_store.reviews(session, timer.payload["activation"])
        if activation is None:
            return
        if posted and posted[-1].version >= timer.payload["version"]:
            return  # a `review` since then has the feedback in it
        files = await self.post(activation, "feedback", self.activations.bot_id)
        message = self.renderer.render(
            "review_posted", activation=activation, files=files, reason="feedback"
        )
        await self.messenger.notice(
            activation.room_id or "",
            self.activations.frame(message, activation),
            txn_id=f"review-posted-{files.stem}",
        )

    # -- feedback ---------------------------------------------------------------------------------

    async def participants(self, session: AsyncSession, activation: ActivationRow) -> list[Contact]:
        """Everyone who took part, each once, in the directory and on Matrix, not the bot."""
        directory = self.keeper.current
        handles: list[str] = []
        for _page, rows in await page_store.pages_with_targets(session, activation.id):
            handles += [row.handle for row in rows]
        handles += [
            t.handle for t in await input_store.targets_of_activation(session, activation.id)
        ]
        for action in await action_store.of_activation(session, activation.id):
            handles += action.owners
        matrix_ids = [activation.lead]
        for _series, run, _reports in await round_store.runs_of_activation(session, activation.id):
            matrix_ids += [p["matrix_id"] for p in run.participants]
        members = [c for c in directory.contacts.values() if c.role in (Role.LEAD, Role.MEMBER)]
        found: dict[str, Contact] = {}
        for contact in [
            *(directory.contacts.get(h) for h in handles),
            *(directory.contact_for(m) for m in matrix_ids),
            *members,
        ]:
            if contact and contact.matrix_id and contact.matrix_id != self.activations.bot_id:
                found.setdefault(contact.matrix_id, contact)
        return list(found.values())

    async def arm_asks(self, session: AsyncSession, activation: ActivationRow) -> int:
        """In the close's transaction: a row for every participant (who is to be asked) and a
        timer for each, due now, whose handler asks them (`on_asks`). Armed with the close, a
        crash right after it still asks everyone; returns how many will be."""
        people = await self.participants(session, activation)
        known = {r.matrix_id for r in await review_store.feedback_of(session, activation.id)}
        session.add_all(
            FeedbackRow(
                activation_id=activation.id,
                matrix_id=person.matrix_id or "",
                handle=person.handle,
                name=person.name,
            )
            for person in people
            if person.matrix_id not in known
        )
        now = utcnow()
        await self.scheduler.arm_many(
            session,
            TimerKind.FEEDBACK_ASK,
            [
                (
                    ask_key(activation.id, person.handle),
                    now,
                    {"activation": activation.id, "matrix_id": person.matrix_id},
                )
                for person in people
            ],
        )
        return len(people)

    async def on_asks(self, timers: list[Timer]) -> list[Timer]:
        """The asks that fell due together (a close's participants), each person once: who was
        asked is recorded (`asked_at`) as each goes out, and a re-run after a crash skips them
        (a send cut short before its record is repeated with the same transaction ID). A send
        that fails is logged and not retried, as a page's is not; the rest go out."""
        failed: list[Timer] = []
        for timer in timers:
            try:
                await self._ask(timer.payload["activation"], timer.payload["matrix_id"])
            except MatrixSendError as exc:
                log.warning("feedback request to %s failed: %s", timer.payload["matrix_id"], exc)
            except Exception:
                log.exception("feedback request to %s failed", timer.payload["matrix_id"])
                failed.append(timer)
        return failed

    async def _ask(self, activation_id: int, matrix_id: str) -> None:
        """One participant asked by DM, in their language, unless they were already."""
        async with self.db.session() as session:
            activation = await store.by_id(session, activation_id)
            row = await review_store.feedback_for(session, activation_id, matrix_id)
        if activation is None or row is None or row.asked_at is not None:
            return
        contact = self.keeper.current.contact_for(matrix_id)
        languages = contact.languages if contact else ()
        zone = contact.zone if contact else self.settings.timezone
        lang = self.renderer.language_for(ASK_TEMPLATE, languages)
        message = self.renderer.render(
            ASK_TEMPLATE,
            lang=lang,
            activation=activation,
            closed=format_local_utc(
                activation.closed_at or utcnow(), zone, with_date=True, lang=lang
            ),
        )
        room_id = await self.direct.room_for(matrix_id)
        await self.messenger.notice(
            room_id,
            self.activations.frame(message, activation),
            txn_id=f"feedback-ask-{activation.id}-{row.handle or row.id}",
        )
        async with self.db.session() as session:
            await review_store.mark_asked(session, row.id, utcnow())

    async def record(
        self,
        sender: str,
        score: int,
        text: str | None,
        *,
        signed: bool,
        ref: str | None,
    ) -> tuple[Message, ActivationRow]:
        """`feedback <1-5> [text] [--signed] [--on REF]`: the sender's answer (replacing an
        earlier one), and the review's next version made due. The thanks, and the activation
        they are about (their frame, in the person's direct room)."""
        if score not in SCORES:
            raise UserError("A score is a whole number from 1 (poor) to 5 (excellent).")
        async with self.db.session() as session:
            if ref:
                activation = await self.activations.resolve("", ref)
                row = await review_store.feedback_for(session, activation.id, sender)
            else:
                row = await review_store.last_asked(session, sender)
                activation_row = await store.by_id(session, row.activation_id) if row else None
                if row is None or activation_row is None:
                    raise UserError(
                        "You have not been asked for feedback on an activation; "
                        "say which with `--on ICC-2026-007`."
                    )
                activation = activation_row
            if activation.status != ActivationStatus.CLOSED:
                raise UserError(f"{activation.ref} is not closed yet; feedback comes after.")
            if row is None:
                raise UserError(f"You did not take part in {activation.ref}; no feedback taken.")
            now = utcnow()
            row.score, row.text, row.signed, row.given_at = score, text, signed, now
            row.versions += 1
            session.add(row)
            posted = await review_store.reviews(session, activation.id)
            # None posted yet: the close's version is being made (the asks can overtake it);
            # this answer's version comes after it, an hour later.
            version = (posted[-1].version if posted else 1) + 1
            last = posted[-1].posted_at if posted else now
            due = max(now, last + REPOST_EVERY)
            await self.scheduler.arm(
                session,
                TimerKind.REVIEW_REPOST,
                repost_key(activation.id, version),
                due,
                {"activation": activation.id, "version": version},
            )
        contact = self.keeper.current.contact_for(sender)
        languages = contact.languages if contact else ()
        lang = self.renderer.language_for(RECORDED_TEMPLATE, languages)
        zone = contact.zone if contact else self.settings.timezone
        thanks = self.renderer.render(
            RECORDED_TEMPLATE,
            lang=lang,
            activation=activation,
            score=score,
            signed=signed,
            again=row.versions > 1,
            version=version,
            due=format_local_utc(due, zone, lang=lang),
            soon=due <= now,
        )
        return thanks, activation

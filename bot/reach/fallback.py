"""Reaching a paged person through their further channels (`channels:` in the directory), when
Matrix has not brought an acknowledgement.

The page goes out on Matrix first for everyone whose channels start with it (Matrix, the secure
channel, comes first whenever it is listed); each further channel, in the contact's order, is
tried when the one before has brought no answer within `ICC_FALLBACK_AFTER` — at once when the
Matrix send itself failed, or for someone not reached on Matrix at all (no Matrix ID, or
`channels` without it). The first channel that sends marks the person's page delivered, so
their acknowledgement latency counts from when it left. A step is a durable timer
(`TimerKind.PAGE_FALLBACK`) keyed under the person's unit, so an answer or the activation's close
ends it with the rest, and a restart neither loses nor repeats one. Each try is recorded
(`page_attempt`): sent, or failed with the reason — the evidence of who was tried how. Every
channel follows one retry rule: a failed send is tried again `RETRY_AFTER` later, up to `TRIES`
tries, then the next channel goes; at once when trying again cannot help (`ChannelError.retry`:
the channel is off, or the person has no address on it).

For TLP:AMBER+STRICT and TLP:RED activations e-mail and SMS carry no content: the ref, the way to
acknowledge, and "open your secure messenger or call the ICC desk". An SMS is kept to one message
where it can be (`bot.reach.gsm`): the page's words shortened, never its ref or the way to
acknowledge — a reply `ACK 12` when inbound SMS are read, and the link.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from markupsafe import escape

from bot.activations.activation import Activations
from bot.directory.model import Contact
from bot.paging.steps import unit_prefix
from bot.reach.channel import ChannelError
from bot.reach.email import Connections, Mailer, MailError, compose, message_id
from bot.reach.gsm import one_sms, parts
from bot.reach.links import ack_url
from bot.reach.sms import SmsError, SmsGateway
from bot.render import Message
from bot.runtime.metrics import NO_ADDRESS
from bot.storage import activation_store, bulk
from bot.storage import page_store as store
from bot.storage.models import (
    ActivationRow,
    ActivationStatus,
    PageAttemptRow,
    PageRow,
    PageTargetRow,
    Timer,
    TimerKind,
)
from bot.timeutil import format_local_utc, load_zone, utcnow

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from bot.directory.keeper import DirectoryKeeper
    from bot.paging.board import Board
    from bot.render import Renderer
    from bot.runtime.metrics import Metrics
    from bot.runtime.scheduler import Scheduler
    from bot.settings import Settings
    from bot.storage.db import Database

log = logging.getLogger(__name__)

CONTENT_FREE = ("TLP:AMBER+STRICT", "TLP:RED")  # nothing of the page leaves the secure channel
TRIES = 3  # per channel and step, on every channel
RETRY_AFTER = timedelta(minutes=1)
SENDS_AT_ONCE = 32  # below common per-client connection limits (Postfix: 50)
EMAIL_TEMPLATE = "page_email"
SMS_TEMPLATE = "page_sms"
FallbackTimer = tuple[str, datetime, dict[str, Any]]  # key, due, payload
Wordings = dict[tuple[Any, ...], tuple[str, Message]]  # one rendering per way of reading a page
LINK_SLOT = "\x00link\x00"  # where each person's own acknowledgement link goes


@dataclass
class Burst:
    """What the steps of one batch share: the SMTP connections kept open for it, the e-mail
    wordings rendered so far."""

    mail: Connections
    wordings: Wordings = field(default_factory=dict)


@dataclass(frozen=True)
class Tried:
    """One try as `page_attempt` records it (`PageAttemptRow`): a plain record while the burst
    runs, every one inserted in one statement after it (building the table objects in the
    burst cost 0.1 ms a message, measured in bench/, bench_email)."""

    target_id: int
    channel: str
    tried_at: datetime
    sent_at: datetime | None = None
    error: str | None = None
    message_id: str | None = None

    def values(self) -> dict[str, Any]:
        return {
            "target_id": self.target_id,
            "channel": self.channel,
            "tried_at": self.tried_at,
            "sent_at": self.sent_at,
            "error": self.error,
            "message_id": self.message_id,
        }


def further_channels(contact: Contact | None) -> list[str]:
    """The channels tried after Matrix, in the contact's order."""
    return [c for c in contact.channels if c != "matrix"] if contact else []


def matrix_went_first(row: PageTargetRow) -> bool:
    """Whether the page was tried on Matrix before this channel (the message says why it comes
    this way), or the person is reached only this way (it says nothing of Matrix)."""
    return row.event_id is not None or row.send_error is not None


@dataclass(frozen=True, kw_only=True)
class Fallback:
    settings: Settings
    db: Database
    keeper: DirectoryKeeper
    renderer: Renderer
    scheduler: Scheduler
    metrics: Metrics
    activations: Activations
    board: Board
    mailer: Mailer
    sms: SmsGateway

    async def arm(
        self,
        session: AsyncSession,
        page: PageRow,
        activation: ActivationRow | None,
        rows: list[PageTargetRow],
        failed: set[int],
    ) -> None:
        """Once the page went out on Matrix: each of `rows` with further channels gets its first
        fallback step — at once for those whose Matrix send failed (`failed`, row ids) — in the
        caller's transaction, the one that records the sends."""
        contacts = self.keeper.current.contacts
        now = utcnow()
        timers = [
            self._timer(page, activation, row, 1, now if row.id in failed else None)
            for row in rows
            if further_channels(contacts.get(row.handle))
        ]
        if timers:
            await self.scheduler.arm_many(session, TimerKind.PAGE_FALLBACK, timers)

    async def hurry(
        self, page: PageRow, activation: ActivationRow | None, row: PageTargetRow
    ) -> None:
        """The person's next channel now, not after the delay: their Matrix cannot reach them."""
        key, _due, _payload = self._timer(page, activation, row, 0)
        async with self.db.session() as session:
            steps = key.rsplit(":", 1)[0] + ":"  # every step and try of this person's
            await self.scheduler.hurry(session, TimerKind.PAGE_FALLBACK, steps)

    def _timer(
        self,
        page: PageRow,
        activation: ActivationRow | None,
        row: PageTargetRow,
        step: int,
        due: datetime | None = None,
        attempt: int = 1,
    ) -> FallbackTimer:
        """Step `step` (its `attempt`-th try) for the person's row, due at `due` (default: the
        fallback delay from now); keyed under their unit, which an answer or the close ends."""
        unit = row.covers or row.handle
        prefix = unit_prefix(activation.id, page.id, unit) if activation else f"pg{page.id}:{unit}:"
        key = f"{prefix}fb:{row.handle}:{step}.{attempt}"
        when = due if due is not None else utcnow() + self.settings.fallback_after
        return key, when, {"target": row.id, "step": step, "attempt": attempt}

    async def on_steps(self, timers: list[Timer]) -> list[Timer]:
        """Steps that fell due together — a big page's fallback is one burst: their rows, pages
        and activations read in one go, the sends side by side (`SENDS_AT_ONCE` at a time, as
        SMTP servers limit a client's connections), every try and next step written in one
        transaction, each board refreshed once. The e-mails share a few SMTP connections, kept
        open for the burst (`Mailer.connections`). Measured in bench/ (bench_email): one step
        at a time spent more on its three transactions than on the mail. Returns no step to
        retry: a send that failed is recorded, and tried again by a step of its own."""
        async with self.db.session() as session:
            rows = await store.targets_by_id(session, [t.payload["target"] for t in timers])
            pages = await store.pages_by_id(session, [r.page_id for r in rows.values()])
            activations = await activation_store.by_ids(
                session, [p.activation_id for p in pages.values() if p.activation_id]
            )
        steps: list[tuple[Timer, PageRow, ActivationRow | None, PageTargetRow]] = []
        for timer in timers:
            row = rows.get(timer.payload["target"])
            page = pages.get(row.page_id) if row else None
            if row is None or page is None:
                continue
            activation = activations.get(page.activation_id) if page.activation_id else None
            if self._still_open(page, activation, row):
                steps.append((timer, page, activation, row))
        done: list[tuple[Tried, FallbackTimer | None]] = []
        async with self.mailer.connections() as mail:
            burst = Burst(mail)
            queue = iter(steps)  # shared: each step goes to the next sender free

            async def sender() -> None:
                for step in queue:
                    outcome = await self._step(burst, *step)
                    if outcome is not None:
                        done.append(outcome)

            senders = min(SENDS_AT_ONCE, len(steps))
            for failed in await asyncio.gather(
                *(sender() for _ in range(senders)), return_exceptions=True
            ):
                if isinstance(failed, BaseException):
                    raise failed  # once every sender has stopped: none is left sending
        reached = {
            attempt.target_id: {"delivered_at": attempt.sent_at}
            for attempt, _next in done
            if attempt.sent_at and rows[attempt.target_id].delivered_at is None
        }
        async with self.db.session() as session:
            await bulk.insert_rows(session, PageAttemptRow, [a.values() for a, _next in done])
            await store.mark_many(session, reached)
            following = [step for _attempt, step in done if step is not None]
            await self.scheduler.arm_many(session, TimerKind.PAGE_FALLBACK, following)
        tried = {row.page_id for row in rows.values()}
        for page in pages.values():
            activation = activations.get(page.activation_id) if page.activation_id else None
            if page.kind == "page" and activation is not None and page.id in tried:
                self.board.refresh(page, activation)  # how else they were tried
        return []

    async def _step(
        self,
        burst: Burst,
        timer: Timer,
        page: PageRow,
        activation: ActivationRow | None,
        row: PageTargetRow,
    ) -> tuple[Tried, FallbackTimer | None] | None:
        """One person's next channel: the try, and the step after it (a retry a minute later,
        the next channel after the delay, or at once when this one cannot be used)."""
        contact = self.keeper.current.contacts.get(row.handle)
        channels = further_channels(contact)
        step, attempt = int(timer.payload["step"]), int(timer.payload.get("attempt", 1))
        if contact is None or step > len(channels):
            return None
        channel = channels[step - 1]
        if attempt == 1:
            self.metrics.fallbacks.labels(channel).inc()
        tried, failure = await self._try(channel, burst, page, activation, row, contact)
        if failure is not None and failure.retry and attempt < TRIES:
            retry = utcnow() + RETRY_AFTER
            return tried, self._timer(page, activation, row, step, retry, attempt + 1)
        if step < len(channels):
            # Sent: the next channel if this one brings no answer; given up: the next one now.
            due = None if failure is None else utcnow()
            return tried, self._timer(page, activation, row, step + 1, due)
        return tried, None

    @staticmethod
    def _still_open(page: PageRow, activation: ActivationRow | None, row: PageTargetRow) -> bool:
        """Whether anyone still waits for this person's answer."""
        if row.acked_at or row.declined_at:
            return False
        if activation is not None and activation.status != ActivationStatus.OPEN:
            return False
        return not (page.kind == "check" and utcnow() >= row.deadline)

    async def _try(
        self,
        channel: str,
        burst: Burst,
        page: PageRow,
        activation: ActivationRow | None,
        row: PageTargetRow,
        contact: Contact,
    ) -> tuple[Tried, ChannelError | None]:
        """One try through `channel`, as it is to be recorded, and why it did not leave."""
        tried_at = utcnow()
        try:
            if channel == "email":
                sent = await self._mail(burst, page, activation, row, contact)
            else:
                sent = await self._sms(page, activation, row, contact)
        except ChannelError as exc:
            self.metrics.send_failed(channel, exc.kind)
            log.warning("%s to %s by %s failed: %s", page.ref, row.handle, channel, exc)
            return Tried(row.id, channel, tried_at, error=str(exc)), exc
        self.metrics.pages_sent.labels(channel).inc()
        return Tried(row.id, channel, tried_at, utcnow(), message_id=sent), None

    async def _mail(
        self,
        burst: Burst,
        page: PageRow,
        activation: ActivationRow | None,
        row: PageTargetRow,
        contact: Contact,
    ) -> str:
        """The page by e-mail, in the person's language; returns its Message-ID."""
        if not contact.email:
            raise MailError("no e-mail address in the directory", retry=False, kind=NO_ADDRESS)
        link = ack_url(self.settings, row.id)
        subject, wording = self._mail_wording(
            page, activation, row, contact, bool(link), burst.wordings
        )
        if link:
            wording = Message(
                wording.body.replace(LINK_SLOT, link),
                wording.html.replace(LINK_SLOT, str(escape(link))),
            )
        standing_in = f".for-{row.covers}" if row.covers else ""  # a backup's is its own message
        identity = message_id(self.mailer.sender, f"{page.ref}.{row.handle}{standing_in}")
        mail = compose(
            sender=self.mailer.sender,
            to=contact.email,
            subject=subject,
            message=wording,
            message_id=identity,
        )
        await burst.mail.send(mail)
        return identity

    def _mail_wording(
        self,
        page: PageRow,
        activation: ActivationRow | None,
        row: PageTargetRow,
        contact: Contact,
        linked: bool,
        wordings: Wordings,
    ) -> tuple[str, Message]:
        """The e-mail's subject and text for everyone who reads it alike (language, zone,
        deadline, whom they stand in for), rendered once a batch with a slot for each person's
        own link: measured in bench/ (bench_email), rendering per person was a third of the
        bot's cost per mail."""
        lang = self.renderer.language_for(EMAIL_TEMPLATE, contact.languages)
        on_matrix = matrix_went_first(row)
        key = (page.id, lang, row.timezone, row.deadline, row.covers, linked, on_matrix)
        if key not in wordings:
            sender = self.keeper.current.contact_for(page.sender)
            context = {
                "ref": page.ref,
                "activation": activation,
                "marker": self.activations.marker if activation and activation.exercise else None,
                "content_free": bool(activation and activation.tlp in CONTENT_FREE),
                "check": page.kind == "check",
                "text": page.text_in(lang),
                "sender": sender.name if sender else page.sender,
                "deadline": format_local_utc(row.deadline, load_zone(row.timezone), lang=lang),
                "link": LINK_SLOT if linked else None,
                "on_matrix": on_matrix,
                "replies": bool(self.settings.imap_url),  # an e-mail reply acknowledges
                "covers": self.keeper.current.contacts.get(row.covers) if row.covers else None,
            }
            wordings[key] = (
                self.renderer.text(f"{EMAIL_TEMPLATE}_subject", lang=lang, **context),
                self.renderer.render(EMAIL_TEMPLATE, lang=lang, **context),
            )
        return wordings[key]

    async def _sms(
        self, page: PageRow, activation: ActivationRow | None, row: PageTargetRow, contact: Contact
    ) -> str:
        """The page by SMS, in the person's language, one message where it can be; returns the
        gateway's ID for it."""
        if not contact.phone:
            raise SmsError("no phone number in the directory", retry=False, kind=NO_ADDRESS)
        lang = self.renderer.language_for(SMS_TEMPLATE, contact.languages)
        content_free = bool(activation and activation.tlp in CONTENT_FREE)
        check = page.kind == "check"
        context = {
            "ref": page.ref,
            "number": page.id,
            "marker": self.activations.marker if activation and activation.exercise else None,
            "content_free": content_free,
            "check": check,
            "tlp": activation.tlp if activation else None,
            "link": ack_url(self.settings, row.id),
            "reply": self.settings.sms_replies,
            "on_matrix": matrix_went_first(row),
        }
        # Nothing to leak, even by an override:
        said = "" if content_free or check else page.text_in(lang)
        text = one_sms(
            lambda words: self.renderer.text(SMS_TEMPLATE, lang=lang, text=words, **context), said
        )
        if parts(text) > 1:
            log.info("%s to %s by SMS takes %d messages", page.ref, row.handle, parts(text))
        return await self.sms.send(to=contact.phone, text=text, reference=f"{page.ref}.{row.id}")

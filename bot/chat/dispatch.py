"""From an inbox event to an answer: age gate, role check, parsing, the handler, the reply.

Two kinds of failure, two experiences: a `UserError` or `UsageError` is the sender's to fix and is
shown as it is (with usage and example for the latter); anything else is our fault, logged with
the event ID and a short reference, and answered with an apology that carries the reference —
never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError

from bot.chat.classification import ClassificationGuard
from bot.chat.registry import PASSIVE, CommandContext, CommandSpec, Reply, Via, split_command
from bot.directory.roles import Role
from bot.errors import Refused, UsageError, UserError
from bot.matrix.content import (
    ANNOTATION,
    REDACTION,
    Relation,
    relation_of,
    text_field,
    without_reply_fallback,
)
from bot.matrix.send import ReplyTo, fits_one_event
from bot.render import Message
from bot.runtime.metrics import UNKNOWN_COMMAND
from bot.runtime.tasks import Grouped, leave_slot
from bot.storage import core
from bot.storage.models import InboxEvent, Outcome
from bot.timeutil import format_duration, utcnow

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

ALIASES = {"!ack": "ack"}
# How long an answered look-up waits for its inbox row to be recorded before it marks it
# (`CommandRunner.run`, `recorded`): as long as a batch's recording is retried while the
# database is away; past it, the row stays pending and the look-up is answered again at the next
# start, if still recent.
RECORDED_WAIT = 600.0
# Answers in the bot's direct rooms to partners (an ack's "recorded") on their way to the
# homeserver at once, at most: three hundred at once queued the cell's `status` and the page's
# board behind them on a busy homeserver (bench/, the storm). The cell's answers do not wait.
PARTNER_SENDS = 4
EVENT_ID = re.compile(r"\$\S{1,254}")  # as `PageTargetRow.ack_event_id` can hold it


@dataclass(frozen=True)
class Incoming:
    """An event the bot acts on: how it came, and its text — the command line (command, edit),
    the reply's body, the reaction's key, or the ID of the event redacted."""

    via: Via
    text: str


def reply_target(event_id: str, relation: Relation) -> ReplyTo:
    """Answer inside the thread the command was typed in, else as a reply to it."""
    return ReplyTo(event_id=event_id, thread_root=relation.thread_root)


class RateLimiter:
    """At most `count` commands per sender in any `per` window: generous for people, a brake on
    a script gone wrong. In memory on purpose: after a restart everyone starts afresh."""

    def __init__(self, count: int, per: timedelta) -> None:
        self.count, self.per = count, per
        self._seen: dict[str, deque[float]] = {}

    def allow(self, sender: str) -> bool:
        now = time.monotonic()
        recent = self._seen.setdefault(sender, deque())
        while recent and now - recent[0] > self.per.total_seconds():
            recent.popleft()
        if len(recent) >= self.count:
            return False
        recent.append(now)
        return True


class CommandRunner:
    def __init__(self, services: Services) -> None:
        self._services = services
        settings = services.settings
        self._guard = ClassificationGuard(settings.classified_markings)
        self._limiter = RateLimiter(*settings.rate_limit)
        self._told_limited = RateLimiter(1, settings.rate_limit[1])
        # Answers to strangers and notices of undecryptable events, per room: anyone can send
        # those events, so they must not make the bot post without limit.
        self._stranger_budget = RateLimiter(*settings.stranger_budget)
        self._names = {spec.name for spec in services.registry} | {via.value for via in PASSIVE}
        self._finishing: Grouped[tuple[str, Outcome], None] = Grouped(self._finish_group)
        self._partner_sends = asyncio.Semaphore(PARTNER_SENDS)

    def command_text(self, body: str) -> str | None:
        return split_command(body, self._services.settings.command_prefix, ALIASES)

    def wants(self, event_type: str, content: dict) -> bool:
        """Is this event for the bot: a command, or a reply, reaction or redaction one of the
        command families takes?"""
        return self.interpret(event_type, content) is not None

    def interpret(self, event_type: str, content: dict[str, Any]) -> Incoming | None:
        """What an event is to the bot, or None when it is not for the bot."""
        if event_type == REDACTION:
            redacts = text_field(content, "redacts")
            # Anything but an event ID (one word, as stored) cannot name an event the bot
            # recorded: not worth a handler.
            return self._passive(Via.REDACTION, redacts) if EVENT_ID.fullmatch(redacts) else None
        relation = relation_of(content)
        if event_type == "m.reaction":
            if relation.rel_type != ANNOTATION:
                return None
            return self._passive(Via.REACTION, relation.key or "")
        if text_field(content, "msgtype") != "m.text":
            return None
        if relation.is_edit:
            new_body = text_field(content.get("m.new_content"), "body")
            edited = self.command_text(new_body)
            if edited is not None:
                return Incoming(Via.EDIT, edited)
            # Perhaps a reply the bot took, corrected: whether it was is read from the inbox.
            return self._passive(
                Via.REPLY,
                without_reply_fallback(new_body).replace("\x00", "").strip(),
                as_via=Via.REVISION,
            )
        body = text_field(content, "body")
        if relation.in_reply_to is not None:
            body = without_reply_fallback(body)
        text = self.command_text(body)
        if text is not None:
            return Incoming(Via.COMMAND, text)
        if relation.answers is not None:
            return self._passive(Via.REPLY, body.replace("\x00", "").strip())
        return None

    def _passive(self, via: Via, text: str, *, as_via: Via | None = None) -> Incoming | None:
        taker = self._services.registry.passive(via)
        wanted = taker is not None and taker.accepts(text)
        return Incoming(as_via or via, text) if wanted else None

    def goes_first(self, item: InboxEvent, direct_rooms: AbstractSet[str]) -> bool:
        """Whether people wait for this as they work: what is typed in the cell's rooms, and
        what the cell's own people and the DGs type anywhere, their direct rooms included; not
        a partner's answer in their direct room (a storm of acks must not hold a `status` back,
        `TaskSupervisor`)."""
        if item.room_id not in direct_rooms:
            return True
        return self._services.directory.role_of(item.sender).allows(Role.DG)

    def reads_only(self, item: InboxEvent) -> bool:
        """Whether handling this event writes nothing: a typed look-up (`help`, `status`…),
        or a typed command that is only answered (unknown, refused, late)."""
        incoming = self.interpret(item.event_type, item.content)
        if incoming is None or incoming.via is not Via.COMMAND:
            return False
        spec = self._services.registry.match(incoming.text or "help")[0]
        return spec is None or spec.reads_only

    async def run(
        self,
        item: InboxEvent,
        *,
        recorded: asyncio.Future[None] | None = None,
        answered: asyncio.Event | None = None,
    ) -> None:
        """Handle one inbox event and mark it finished. Never raises: an event that makes the bot
        fail is recorded as failed, with a reference in the log, and the next one runs.

        A look-up answered before its inbox row is committed (`reads_only`, `bot.matrix.sync`)
        comes with the future that tells the row is `recorded`, awaited before the row is
        marked, and an event set once it is `answered` (sent, or there is no answer)."""
        started = time.monotonic()
        name, outcome, answer = "?", Outcome.FAILED, None
        relation = relation_of(item.content)
        about = {"event": item.event_id, "room": item.room_id}  # a JSON log line's fields
        try:
            incoming = self.interpret(item.event_type, item.content) or Incoming(Via.COMMAND, "")
            if incoming.via in PASSIVE:
                name = incoming.via.value
                name, outcome, answer = await self._take(item, incoming, relation)
            else:
                matched = self._services.registry.match(incoming.text or "help")
                name = matched[2]
                name, outcome, answer = await self._answer(item, matched, incoming.via, relation)
        except DBAPIError:
            log.exception("database unavailable for event=%s", item.event_id, extra=about)
            self._services.metrics.command_errors.inc()
            answer = self._services.renderer.render("database_unavailable", command=name)
        except Exception:
            ref = secrets.token_hex(3)
            log.exception("command failed ref=%s event=%s", ref, item.event_id, extra=about)
            self._services.metrics.command_errors.inc()
            answer = self._services.renderer.render("internal_error", ref=ref)
        if answer is not None and not self._may_answer(item.sender, item.room_id):
            log.info("answer to %s held back: over the room's budget", item.event_id)
            answer = None
        try:
            if answer is not None:
                answer = await self._framed(item.room_id, answer)
                if not fits_one_event(answer):
                    answer = await self._as_file(item, name, answer)
                leave_slot()  # from here on, the homeserver's pace (the room's lane still held)
                messenger = self._services.messenger
                first = self.goes_first(item, messenger.direct_rooms)
                async with contextlib.nullcontext() if first else self._partner_sends:
                    await messenger.notice(
                        item.room_id,
                        answer,
                        reply_to=reply_target(item.event_id, relation),
                        txn_id=f"reply-{item.event_id}",
                    )
        except Exception:
            log.exception("could not answer event=%s", item.event_id, extra=about)
            outcome = Outcome.UNANSWERED
        if answered is not None:
            answered.set()
        if recorded is None or await self._until_recorded(item.event_id, recorded):
            await self._finish(item.event_id, outcome)
        seconds = time.monotonic() - started
        metrics, label = self._services.metrics, self._label(name)
        metrics.commands.labels(label, outcome).inc()
        metrics.command_seconds.labels(label).observe(seconds)
        log.info(
            "command=%s room=%s sender=%s event=%s outcome=%s ms=%d",
            name,
            item.room_id,
            item.sender,
            item.event_id,
            outcome,
            seconds * 1000,
            extra={
                "command": name,
                "room": item.room_id,
                "sender": item.sender,
                "event": item.event_id,
                "outcome": str(outcome),
                "ms": round(seconds * 1000),
            },
        )

    def _label(self, name: str) -> str:
        """The command's name as a metric label: a declared command or a passive way in; what
        else someone typed is `unknown`, so that typing cannot make new series."""
        return name if name in self._names else UNKNOWN_COMMAND

    def _may_answer(self, sender: str, room_id: str) -> bool:
        """People in the directory are always answered; strangers within a per-room budget, so
        that nobody outside the cell can make the bot post without limit."""
        if self._services.directory.role_of(sender) is not Role.STRANGER:
            return True
        return self._stranger_budget.allow(room_id)

    async def notify_undecryptable(self, room_id: str, sender: str, event_id: str) -> None:
        """Say once that a message could not be read, framed like every message of the room's
        activation; within the room's budget, since anyone can forge such events."""
        if not self._stranger_budget.allow(room_id):
            log.info("undecryptable notice for %s held back: over the room's budget", event_id)
            return
        services = self._services
        contact = services.directory.contact_for(sender)
        message = services.renderer.render(
            "undecryptable",
            sender=contact.name if contact else sender,
            device=services.settings.device_name,
        )
        message = await self._framed(room_id, message)
        await services.messenger.notice(room_id, message, txn_id=f"utd-{event_id}")

    async def _as_file(self, item: InboxEvent, command: str, answer: Message) -> Message:
        """An answer too long for one event (a sitrep of a long night) goes as a file, with a
        short reply saying so: refused by the homeserver, it would reach nobody."""
        data = answer.body.encode()
        filename = f"{command.replace(' ', '-')}-{utcnow():%Y%m%dT%H%MZ}.txt"
        await self._services.messenger.send_file(
            item.room_id,
            data,
            filename=filename,
            mimetype="text/plain",
            txn_id=f"reply-file-{item.event_id}",
        )
        short = self._services.renderer.render(
            "answer_as_file", command=command, filename=filename, kib=len(data) // 1024 + 1
        )
        return await self._framed(item.room_id, short)

    @staticmethod
    async def _until_recorded(event_id: str, recorded: asyncio.Future[None]) -> bool:
        """Whether the inbox row of a look-up answered early was recorded (within the wait)."""
        try:
            async with asyncio.timeout(RECORDED_WAIT):
                await asyncio.shield(recorded)  # shared by the batch's look-ups: never cancelled
        except TimeoutError:
            log.error(
                "event=%s answered, never recorded; answered again at the next start if recent",
                event_id,
            )
            return False
        return True

    async def _finish(self, event_id: str, outcome: Outcome) -> None:
        """Mark the event handled, retrying while the database is briefly away: an event left
        pending would run again at the next start."""
        for pause in (0, 1, 2, 4, 8):
            await asyncio.sleep(pause)
            try:
                await self._finishing.submit((event_id, outcome))
                return
            except DBAPIError as exc:
                log.warning("could not mark event=%s %s (%s)", event_id, outcome, exc)
        log.error(
            "event=%s stays pending; it runs again at the next start if still recent", event_id
        )

    async def _finish_group(self, finished: list[tuple[str, Outcome]]) -> list[Exception | None]:
        """The events finished together marked in one transaction (a storm of acks)."""
        by_outcome: dict[Outcome, list[str]] = {}
        for event_id, outcome in finished:
            by_outcome.setdefault(outcome, []).append(event_id)
        async with self._services.db.session() as session:
            for outcome, event_ids in by_outcome.items():
                await core.finish_inbox_many(session, event_ids, outcome)
        return [None] * len(finished)

    async def _framed(self, room_id: str, answer: Message | Reply) -> Message:
        """Every answer is framed here, once: with the activation it is about, else with the
        activation of the room it is answered in (its TLP, and exercise markers)."""
        activations = self._services.activations
        if isinstance(answer, Reply):
            return activations.frame(answer.message, answer.about)
        if answer.framed:
            return answer
        try:
            activation = await activations.for_room(room_id)
        except Exception:
            log.exception("could not tell whether %s is an activation room", room_id)
            return answer  # an unframed answer beats none
        return activations.frame(answer, activation)

    async def _answer(
        self,
        item: InboxEvent,
        matched: tuple[CommandSpec | None, str, str],
        via: Via,
        relation: Relation,
    ) -> tuple[str, Outcome, Message | Reply | None]:
        services = self._services
        spec, arg_text, typed = matched
        role = services.directory.role_of(item.sender)
        refusal = self._refusal(item, spec, typed, via, role)
        if refusal is not None:
            return refusal
        assert spec is not None
        try:
            args = spec.signature.parse(arg_text)
            marking = self._classified(args)
            if marking is not None:
                return (
                    spec.name,
                    Outcome.REFUSED,
                    self._render("classified_refused", marking=marking),
                )
            if (not_here := self._not_private(spec, item.room_id)) is not None:
                return spec.name, Outcome.REFUSED, not_here
            context = self._context(item, role, relation, via)
            return spec.name, Outcome.DONE, await spec.handler(context, **args)
        except UsageError as exc:
            return spec.name, Outcome.USAGE, self._usage(spec, str(exc))
        except UserError as exc:
            return spec.name, Outcome.REFUSED, self._refused(exc)

    async def _take(
        self, item: InboxEvent, incoming: Incoming, relation: Relation
    ) -> tuple[str, Outcome, Message | Reply | None]:
        """A reply, reaction or redaction, to the family that takes it. Taken however late it
        is read (an ack stays true), never refused with a usage line: it is not a command."""
        name = incoming.via.value
        taker = self._services.registry.passive(
            Via.REPLY if incoming.via is Via.REVISION else incoming.via
        )
        role = self._services.directory.role_of(item.sender)
        if taker is None or not role.allows(taker.role):
            return name, Outcome.IGNORED, None  # a stranger's 👍 or reply is not for the bot
        if incoming.via is Via.REVISION:
            revised = await self._revised_reply(item, relation)
            if revised is None:
                return name, Outcome.IGNORED, None  # an edit of anything the bot did not take
            relation = revised
        replying = incoming.via in (Via.REPLY, Via.REVISION)
        if replying and (marking := self._guard.marking_in(incoming.text)):
            return name, Outcome.REFUSED, self._render("classified_refused", marking=marking)
        related = incoming.text if incoming.via is Via.REDACTION else relation.answers
        context = self._context(item, role, relation, incoming.via, related, incoming.text)
        try:
            return name, Outcome.DONE, await taker.handler(context)
        except UserError as exc:
            return name, Outcome.REFUSED, self._refused(exc)

    def _refused(self, exc: UserError) -> Message | Reply:
        """A refusal worded by the capability, framed with its activation; else the text."""
        if isinstance(exc, Refused):
            return Reply(exc.message, exc.about)
        return self._render("user_error", text=str(exc))

    async def _revised_reply(self, item: InboxEvent, edit: Relation) -> Relation | None:
        """The relation of the reply an edit corrects: a reply by the same person that the bot
        took (it is in the inbox); None for an edit of anything else."""
        assert edit.event_id is not None
        async with self._services.db.session() as session:
            original = await core.inbox_event(session, edit.event_id)
        if original is None or original.sender != item.sender or original.room_id != item.room_id:
            return None
        taken = self.interpret(original.event_type, original.content)
        return relation_of(original.content) if taken and taken.via is Via.REPLY else None

    def _context(
        self,
        item: InboxEvent,
        role: Role,
        relation: Relation,
        via: Via,
        relates_to: str | None = None,
        text: str = "",
    ) -> CommandContext:
        return CommandContext(
            services=self._services,
            sender=item.sender,
            role=role,
            contact=self._services.directory.contact_for(item.sender),
            room_id=item.room_id,
            event_id=item.event_id,
            sent_at=item.origin_ts,
            relates_to=relates_to or relation.answers,
            thread_root=relation.thread_root,
            via=via,
            text=text,
        )

    def _render(self, template: str, /, **context: Any) -> Message:
        return self._services.renderer.render(template, **context)

    def _refusal(
        self, item: InboxEvent, spec: CommandSpec | None, typed: str, via: Via, role: Role
    ) -> tuple[str, Outcome, Message | Reply | None] | None:
        """Why this event is not run, as (command, outcome, answer); None when it may run."""
        prefix = self._services.settings.command_prefix
        name = spec.name if spec else typed
        late = self._lateness_minutes(item.origin_ts)
        if late is not None and not (spec and spec.any_age):
            return name, Outcome.LATE, self._render("command_late", minutes=late, command=typed)
        if via is Via.EDIT:
            if spec is None or not role.allows(spec.role):
                return name, Outcome.IGNORED, None  # a stranger's edit is not for the bot
            if not spec.revised_by_edit:
                return name, Outcome.EDITED, self._render("command_edited", command=typed)
        if not self._limiter.allow(item.sender):
            # Said once per window: the refusals must not become the flood they stop.
            told = self._told_limited.allow(item.sender)
            limited = self._render(
                "rate_limited", count=self._limiter.count, per=format_duration(self._limiter.per)
            )
            return name, Outcome.RATE_LIMITED, limited if told else None
        if spec is None:
            suggestion = self._services.registry.suggest(typed)
            unknown = self._render(
                "unknown_command", typed=typed, suggestion=suggestion, prefix=prefix
            )
            return name, Outcome.UNKNOWN, unknown
        if not role.allows(spec.role):
            refused = self._render(
                "refused",
                command=spec.name,
                required=spec.role.value,
                stranger=role is Role.STRANGER,
                prefix=prefix,
            )
            return name, Outcome.REFUSED, refused
        return None

    def _not_private(self, spec: CommandSpec, room_id: str) -> Message | None:
        """The refusal of an answer with activation content in a room with outsiders."""
        outsiders = self._services.messenger.outsiders(room_id) if spec.confidential else set()
        if not outsiders:
            return None
        listed = ", ".join(sorted(outsiders))
        return self._render(
            "confidential_refused", command=spec.name, outsiders=listed, count=len(outsiders)
        )

    def _classified(self, args: dict[str, object]) -> str | None:
        """The classification marking in any text argument; such text is never stored or sent."""
        for value in args.values():
            texts = value if isinstance(value, list) else [value]
            for text in texts:
                if isinstance(text, str) and (marking := self._guard.marking_in(text)):
                    return marking
        return None

    def _usage(self, spec: CommandSpec, problem: str) -> Message:
        prefix = self._services.settings.command_prefix
        return self._services.renderer.render(
            "usage_error",
            problem=problem,
            usage=spec.usage(prefix),
            example=f"{prefix} {spec.example}",
            command=spec.name,
            prefix=prefix,
        )

    def _lateness_minutes(self, sent_at: datetime) -> int | None:
        age = utcnow() - sent_at
        if age <= self._services.settings.max_command_age:
            return None
        return max(1, round(age.total_seconds() / 60))

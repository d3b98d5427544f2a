"""The bot's own sync loop, in place of nio's `sync_forever`.

Why not `sync_forever`: it awaits callbacks one after another without error handling, retries
failures without pause, and saves the sync token before handlers ran, and only with an E2E store.
Here, every batch is handled in this order: the events that carry commands are written to the
inbox *in the same transaction* as the token that follows them, and only then dispatched. A crash
at any point either replays the batch (token not saved, inbox rows deduplicated by event ID) or
finds the commands in the inbox (token saved): nothing is run twice, nothing typed is lost.

One exception, for speed: a look-up that writes nothing (`help`, `status`: `early`) is answered
before its batch is recorded, its row marked once recorded. Recording first cost a look-up about
4 ms, and recording while the homeserver took the answer as much again (bench/, command
latency); a crash in that moment replays the batch and answers the look-up once more, under the
same transaction ID, which the homeserver takes as the same message.

The very first sync of a new bot skips room history: nothing sent before the bot existed is a
command. Events older than the bot's own join in a room are history too.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import ClientError
from nio import (
    Api,
    AsyncClient,
    BadEvent,
    InviteMemberEvent,
    KeysQueryResponse,
    MegolmEvent,
    MessageDirection,
    ReactionEvent,
    ReceiptEvent,
    RedactionEvent,
    RoomCreateEvent,
    RoomMemberEvent,
    RoomMessagesError,
    RoomMessageText,
    SyncError,
    SyncResponse,
    UploadFilterError,
)
from sqlalchemy.exc import SQLAlchemyError

from bot.matrix.content import REDACTION, redaction_content
from bot.matrix.hearing import Hearing
from bot.matrix.sealed import KEY_WAIT, Sealed, SealedEvents
from bot.runtime.catchup import CatchUp
from bot.runtime.metrics import Metrics
from bot.storage import core
from bot.storage.db import Database
from bot.storage.models import InboxEvent, InboxStatus, Outcome
from bot.timeutil import utcnow

log = logging.getLogger(__name__)

BACKFILL_PAGES = 10  # at most this many pages of /messages per room after a long downtime
BACKFILL_MARGIN = timedelta(minutes=1)


def sync_filter(timeline_limit: int, receipt_rooms: Iterable[str] = ()) -> dict[str, Any]:
    """What the bot syncs: no presence, no typing; read receipts in `receipt_rooms` only."""
    return {
        "presence": {"not_types": ["*"]},
        "room": {
            "timeline": {"limit": timeline_limit},
            "ephemeral": {"types": ["m.receipt"], "rooms": sorted(receipt_rooms)},
        },
    }


@dataclass(frozen=True)
class ReadReceipt:
    """Someone's public read receipt: they had read up to `event_id` at `at`."""

    user_id: str
    event_id: str
    at: datetime


@dataclass(frozen=True)
class ReceiptWatch:
    """The rooms whose read receipts the bot asks for (its direct-message rooms: receipts in busy
    rooms would cost every sync), and what hears them. When `rooms()` changes, the next sync
    asks with a new filter; a receipt sent while the old one was in force is not seen again."""

    rooms: Callable[[], AbstractSet[str]]
    heard: Callable[[str, list[ReadReceipt]], Awaitable[None]]


# Look-ups (`early`): given the batch's commands and the future that tells their rows are
# recorded, answer those that write nothing; returns the event IDs it took, once they are
# answered (or it stopped waiting).
Early = Callable[[list[InboxEvent], "asyncio.Future[None]"], Awaitable[set[str]]]


@dataclass(frozen=True)
class Batch:
    """What a sync response brings to record: the bot's new joins, and the commands."""

    joins: dict[str, datetime]
    commands: list[InboxEvent]


class FatalSyncError(RuntimeError):
    """The homeserver refuses the bot's session; retrying cannot help."""


def origin_time(event: Any) -> datetime:
    return datetime.fromtimestamp(event.server_timestamp / 1000, tz=UTC)


class SyncLoop:
    """Reads the homeserver and hands command events to `dispatch`, exactly once each."""

    def __init__(
        self,
        client: AsyncClient,
        db: Database,
        *,
        wants: Callable[[str, dict[str, Any]], bool],
        dispatch: Callable[[list[InboxEvent]], None],
        early: Early | None = None,
        on_invite: Callable[[str, str], Awaitable[None]],
        on_ready: Callable[[], Awaitable[None]],
        prepared: Callable[[], Awaitable[object]] | None = None,
        on_undecryptable: Callable[[str, str, str], Awaitable[None]] | None = None,
        on_keys: Callable[[KeysQueryResponse | None], None] | None = None,
        on_room_created: Callable[[str, str], None] | None = None,
        on_arrival: Callable[[str, str], None] | None = None,
        catch_up: CatchUp | None = None,
        receipts: ReceiptWatch | None = None,
        hearing: Hearing | None = None,
        key_wait: timedelta = KEY_WAIT,
        timeout_ms: int = 30_000,
        backoff: tuple[float, float] = (5.0, 300.0),
        timeline_limit: int = 100,
        metrics: Metrics | None = None,
    ) -> None:
        self._client = client
        self._metrics = metrics
        self._db = db
        self._wants = wants
        self._dispatch = dispatch
        self._early = early
        self._answered_early: dict[str, asyncio.Future[None]] = {}  # until their rows are recorded
        self._on_invite = on_invite
        self._on_ready = on_ready
        self._prepared = prepared
        self._on_undecryptable = on_undecryptable
        self._on_keys = on_keys
        self._on_room_created = on_room_created
        self._on_arrival = on_arrival
        self._catch_up = catch_up or CatchUp()
        self._receipts = receipts
        self._hearing = hearing
        self._filter_rooms: frozenset[str] = frozenset()  # the rooms the filter has receipts of
        self._sealed = SealedEvents(client, key_wait)
        self._sessions_reported: set[str] = set()
        self._timeout_ms = timeout_ms
        self._backoff = backoff
        self._timeline_limit = timeline_limit
        self._persisted_at: datetime | None = None  # when the stored token was written
        self._handed_over: str | None = None  # the token after the last batch dispatched
        self._filter: str | None = None
        self._joins: dict[str, datetime] = {}
        self._invites_seen: set[str] = set()
        self.last_sync_at: datetime | None = None

    @property
    def user_id(self) -> str:
        return self._client.user_id

    async def run(self) -> None:
        async with self._db.session() as session:
            state = await core.load_sync_state(session, self.user_id)
            self._joins = await core.load_joins(session)
            kept = await core.inbox_with_status(session, InboxStatus.SEALED)
            for broken in self._sealed.restore(kept):
                await core.finish_inbox(session, broken.event_id, Outcome.FAILED)
        for sealed in self._sealed.waiting():
            self._catch_up.reading(sealed.event.event_id, sealed.sent_at, sealed.event.sender)
        since = state.next_batch if state else None
        self._persisted_at = state.updated_at if state else None
        filter_id = self._filter = await self._filter_id(state.filter_id if state else None)
        delay = self._backoff[0]
        first = True
        while True:
            began = utcnow()  # everything the homeserver held by now is in this sync's answer
            filter_id = await self._refilter(filter_id)
            try:
                response = await self._client.sync(
                    timeout=0 if first else self._timeout_ms,
                    since=since,
                    sync_filter=filter_id,
                    full_state=first or None,
                )
            except (OSError, TimeoutError) as exc:
                response = SyncError(str(exc))
            except Exception as exc:  # nio failing on what the homeserver sent: never fatal
                log.exception("sync response could not be read")
                response = SyncError(f"unreadable sync response ({type(exc).__name__})")
            if isinstance(response, SyncError):
                if response.status_code == "M_UNKNOWN_TOKEN":
                    raise FatalSyncError(f"the homeserver refused the session: {response.message}")
                log.warning("sync failed (%s); retrying in %.0fs", response.message, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff[1])
                continue
            if first and self._prepared is not None:
                # What handling needs (the directory) was made ready while the homeserver
                # prepared this first, full-state batch; nothing in it is handled before.
                await self._prepared()
            try:
                batch = await self._read(response, history=since is None)
                if not first:
                    await self._answer_early(response, batch.commands)
                fresh = await self._persist(batch, response.next_batch, filter_id)
            except (SQLAlchemyError, OSError) as exc:
                # The database is away: keep the old token, so the same batch comes again and
                # is recorded once it is back (the inbox deduplicates); nothing runs unrecorded.
                log.warning("could not record the sync batch (%s); retrying in %.0fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff[1])
                continue
            delay = self._backoff[0]
            answered = self._recorded(batch.commands)
            since = response.next_batch
            self.last_sync_at = utcnow()
            if self._metrics is not None:
                self._metrics.last_sync.set(self.last_sync_at.timestamp())
            await self._maintain_keys()
            await self._handle_invites(response)
            self._watch_members(response, arrivals=not first)
            for item in fresh:
                if item.status == InboxStatus.SEALED:
                    self._catch_up.reading(item.event_id, item.origin_ts, item.sender)
            if first:
                first = False
                await self._on_ready()  # dispatches every pending inbox row, these included
            else:
                self._dispatch(
                    [
                        item
                        for item in fresh
                        if item.status == InboxStatus.PENDING and item.event_id not in answered
                    ]
                )
            await self._unseal()
            await self._read_receipts(response)
            self._hear(response)
            self._handed_over = since
            self._catch_up.synced(began)

    async def nothing_new(self) -> datetime | None:
        """When a sync of our own, begun now, found nothing for the bot beyond what the loop has
        handed over; None if it found something (the loop's long-poll is returning it) or the
        homeserver did not answer.

        The loop's long-poll returns as soon as anything arrives, so a due timer learns this way,
        in one round trip, that nothing sent before its moment is unread, instead of waiting up
        to a whole long-poll for the loop's next batch. Only looked at: the loop's position does
        not move, and to-device messages are not acknowledged.
        """
        if self._handed_over is None:
            return None
        began = utcnow()
        method, path = Api.sync(
            self._client.access_token, since=self._handed_over, timeout=0, filter=self._filter
        )
        try:
            response = await self._client.send(method, path, timeout=10)
            try:
                if response.status != 200:
                    return None
                answer = await response.json()
            finally:
                response.release()
        except (ClientError, OSError, TimeoutError, ValueError):
            return None
        return began if not _anything_for_the_bot(answer, self.user_id) else None

    async def _filter_id(self, stored: str | None) -> str | None:
        """The stored filter, unless its receipt rooms may be out of date (a new one each start,
        then); unfiltered if the homeserver takes none."""
        if stored and self._receipts is None:
            return stored
        rooms = frozenset(self._receipts.rooms()) if self._receipts else frozenset()
        response = await self._client.upload_filter(**sync_filter(self._timeline_limit, rooms))
        if isinstance(response, UploadFilterError):
            log.warning("could not upload the sync filter (%s); syncing unfiltered", response)
            return stored
        self._filter_rooms = rooms
        return response.filter_id

    async def _refilter(self, filter_id: str | None) -> str | None:
        """A new filter when the rooms to read receipts in changed (a new direct-message room);
        the old one if the homeserver refuses it (retried before the next sync)."""
        if self._receipts is None or self._receipts.rooms() == self._filter_rooms:
            return filter_id
        rooms = frozenset(self._receipts.rooms())
        response = await self._client.upload_filter(**sync_filter(self._timeline_limit, rooms))
        if isinstance(response, UploadFilterError):
            log.warning("could not upload the sync filter (%s); keeping the old one", response)
            return filter_id
        self._filter_rooms = rooms
        self._filter = response.filter_id
        return response.filter_id

    def _hear(self, response: SyncResponse) -> None:
        """Note whom this batch brought something from: their server is reachable."""
        if self._hearing is None:
            return
        senders: set[str] = set()
        for info in response.rooms.join.values():
            senders.update(getattr(event, "sender", "") for event in info.timeline.events)
            for event in info.ephemeral:
                if isinstance(event, ReceiptEvent):
                    senders.update(r.user_id for r in event.receipts)
        senders.update(getattr(event, "sender", "") for event in response.to_device_events)
        for sender in senders:
            if isinstance(sender, str) and sender.startswith("@"):
                self._hearing.heard(sender)

    async def _read_receipts(self, response: SyncResponse) -> None:
        """Hand the public read receipts of others in the watched rooms to the watcher; a
        watcher that fails is logged, never the end of the loop."""
        if self._receipts is None:
            return
        for room_id, info in response.rooms.join.items():
            if room_id not in self._filter_rooms:
                continue
            receipts = [
                ReadReceipt(r.user_id, r.event_id, datetime.fromtimestamp(r.timestamp / 1000, UTC))
                for event in info.ephemeral
                if isinstance(event, ReceiptEvent)
                for r in event.receipts
                if r.receipt_type == "m.read"
                and r.user_id != self.user_id
                and isinstance(r.timestamp, int | float)
            ]
            if not receipts:
                continue
            try:
                await self._receipts.heard(room_id, receipts)
            except Exception:
                log.exception("read receipts in %s could not be recorded", room_id)

    async def _read(self, response: SyncResponse, *, history: bool) -> Batch:
        """The batch's new joins and its commands (with what a gap left out, read back)."""
        joins = self._own_joins(response, history=history)
        # Rooms joined in this batch have no gap to fill: what came before the join is history.
        settled = {r for r, at in self._joins.items() if joins.get(r, at) <= at}
        # A restart's full-state sync shows every room's join again: write only what is new.
        changed = {r: at for r, at in joins.items() if r not in self._joins or at > self._joins[r]}
        self._joins.update(changed)
        return Batch(changed, [] if history else await self._commands(response, settled))

    async def _persist(
        self, batch: Batch, next_batch: str, filter_id: str | None
    ) -> list[InboxEvent]:
        """Record this batch's commands and the next token in one transaction."""
        async with self._db.session() as session:
            for room_id, joined_at in batch.joins.items():
                await core.save_join(session, room_id, joined_at)
            fresh = await core.record_inbox(session, batch.commands)
            await core.save_sync_state(
                session, self.user_id, next_batch=next_batch, filter_id=filter_id
            )
        self._persisted_at = utcnow()
        return fresh

    async def _answer_early(self, response: SyncResponse, commands: list[InboxEvent]) -> None:
        """Have the look-ups among `commands` answered before the batch is recorded. Not after
        a gap: a command read back from before it may have been handled already."""
        if self._early is None or any(i.timeline.limited for i in response.rooms.join.values()):
            return
        waiting = [
            item
            for item in commands
            if item.status == InboxStatus.PENDING and item.event_id not in self._answered_early
        ]
        if not waiting:
            return
        recorded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            taken = await self._early(waiting, recorded)
        except Exception:  # then they are all handled as any command is, once recorded
            log.exception("look-ups could not be answered before their batch was recorded")
            return
        for event_id in taken:
            self._answered_early[event_id] = recorded

    def _recorded(self, commands: list[InboxEvent]) -> set[str]:
        """The look-ups answered early whose rows are now recorded (with this batch, or with an
        earlier one whose recording failed): told so, and not to be dispatched again."""
        answered = {item.event_id for item in commands} & self._answered_early.keys()
        for event_id in answered:
            recorded = self._answered_early.pop(event_id)
            if not recorded.done():
                recorded.set_result(None)
        return answered

    def _own_joins(self, response: SyncResponse, *, history: bool) -> dict[str, datetime]:
        """When the bot joined each room in this batch; on the very first sync, 'now'."""
        joins: dict[str, datetime] = {}
        for room_id, info in response.rooms.join.items():
            for event in [*info.state, *info.timeline.events]:
                if (
                    isinstance(event, RoomMemberEvent)
                    and event.state_key == self.user_id
                    and event.membership == "join"
                    and event.prev_membership != "join"
                ):
                    joins[room_id] = origin_time(event)
            if history or (room_id not in joins and room_id not in self._joins):
                joins[room_id] = utcnow()
        return joins

    async def _commands(self, response: SyncResponse, settled: set[str]) -> list[InboxEvent]:
        received = utcnow()
        events: list[InboxEvent] = []
        for room_id, info in response.rooms.join.items():
            joined_at = self._joins.get(room_id)
            timeline = list(info.timeline.events)
            gap = info.timeline.limited and info.timeline.prev_batch and self._persisted_at
            if gap and room_id in settled:
                timeline = await self._backfill(room_id, info.timeline.prev_batch) + timeline
            for event in timeline:
                try:
                    item = self._command_in(room_id, event, joined_at, received)
                except Exception:
                    item = _failed_item(room_id, event, received)
                if item is not None:
                    events.append(item)
        return events

    def _command_in(
        self, room_id: str, event: Any, joined_at: datetime | None, received: datetime
    ) -> InboxEvent | None:
        """The inbox row of a timeline event the bot acts on, else None; an encrypted one not
        decrypted yet is kept as a sealed row (`bot.matrix.sealed`)."""
        if isinstance(event, MegolmEvent):
            if event.sender == self.user_id or (
                joined_at is not None and origin_time(event) < joined_at
            ):
                return None
            return self._sealed.keep(room_id, event, received)
        if isinstance(event, RoomMessageText | ReactionEvent):
            event_type = event.source.get("type", "m.room.message")
            content = event.source.get("content")
            content = content if isinstance(content, dict) else {}
        elif _is_redaction(event):
            event_type, content = REDACTION, redaction_content(event.source)
        else:
            return None
        if event.sender == self.user_id:
            return None
        sent = origin_time(event)
        if joined_at is not None and sent < joined_at:
            return None  # history from before the bot joined
        if not self._wants(event_type, content):
            return None
        return InboxEvent(
            event_id=event.event_id,
            room_id=room_id,
            sender=event.sender,
            origin_ts=sent,
            received_at=received,
            content=content,
            event_type=event_type,
        )

    async def _backfill(self, room_id: str, prev_batch: str) -> list[Any]:
        """Events the limited timeline left out since the last stored sync (oldest first).

        After a long downtime a busy room's sync shows only the newest events; commands typed
        before them would be lost. The inbox deduplicates, so overlapping pages are harmless.
        """
        assert self._persisted_at is not None
        horizon = self._persisted_at - BACKFILL_MARGIN
        older: list[Any] = []
        token = prev_batch
        for _ in range(BACKFILL_PAGES):
            page = await self._client.room_messages(
                room_id, start=token, direction=MessageDirection.back, limit=100
            )
            if isinstance(page, RoomMessagesError):
                log.warning("backfill of %s failed: %s", room_id, page.message)
                break
            older.extend(page.chunk)
            reached = any(origin_time(e) < horizon for e in page.chunk if _has_ts(e))
            if reached or not page.chunk or not page.end:
                break
            token = page.end
        else:
            log.warning("backfill of %s stopped after %d pages", room_id, BACKFILL_PAGES)
        log.info("backfilled %d events in %s after a gap", len(older), room_id)
        return list(reversed(older))

    async def _unseal(self) -> None:
        """Try the kept encrypted events with the keys known now: a command opened joins the
        inbox as pending and runs; one given up on is recorded and reported."""
        if not len(self._sealed):
            return
        await self._sealed.ask_for_keys()
        opened, given_up = self._sealed.open()
        if not opened and not given_up:
            return
        received = utcnow()
        commands: list[InboxEvent] = []
        other: list[Sealed] = []
        for sealed, clear in opened:
            try:
                item = self._command_in(
                    sealed.room_id, clear, self._joins.get(sealed.room_id), received
                )
            except Exception:
                log.exception("decrypted event %s could not be read", sealed.event.event_id)
                item = None
            if item is not None:
                commands.append(item)
            else:
                other.append(sealed)
        try:
            async with self._db.session() as session:
                for item in commands:
                    await core.unseal_inbox(session, item)
                for sealed in other:
                    await core.finish_inbox(session, sealed.event.event_id, Outcome.DONE)
                for sealed in given_up:
                    await core.finish_inbox(session, sealed.event.event_id, Outcome.UNDECRYPTABLE)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("could not record decrypted events (%s); trying again", exc)
            self._sealed.put_back([sealed for sealed, _ in opened] + given_up)
            return
        log.info("decrypted %d kept events (%d commands)", len(opened), len(commands))
        self._dispatch(commands)
        for sealed in other + given_up:
            self._catch_up.handled(sealed.event.event_id)
        for sealed in given_up:
            await self._report_undecryptable(sealed)

    async def _report_undecryptable(self, sealed: Sealed) -> None:
        """Say once per session that a message could not be read: a command the bot cannot
        read must not vanish without a word."""
        event = sealed.event
        log.warning(
            "undecryptable event %s in %s from %s", event.event_id, sealed.room_id, event.sender
        )
        if event.session_id in self._sessions_reported or self._on_undecryptable is None:
            return
        self._sessions_reported.add(event.session_id)
        try:
            await self._on_undecryptable(sealed.room_id, event.sender, event.event_id)
        except Exception:
            log.exception("could not report the undecryptable event %s", event.event_id)

    def _watch_members(self, response: SyncResponse, *, arrivals: bool) -> None:
        """Tell who created each room (the bot's own rooms are private to the directory) and,
        after the first sync, who joined or was invited since."""
        for room_id, info in response.rooms.join.items():
            for event in [*info.state, *info.timeline.events]:
                if isinstance(event, RoomCreateEvent) and self._on_room_created is not None:
                    self._on_room_created(room_id, event.sender)
                elif (
                    arrivals
                    and self._on_arrival is not None
                    and isinstance(event, RoomMemberEvent)
                    and event.membership in ("join", "invite")
                    and event.state_key != self.user_id
                ):
                    self._on_arrival(room_id, event.state_key)

    async def _handle_invites(self, response: SyncResponse) -> None:
        for room_id, info in response.rooms.invite.items():
            if room_id in self._invites_seen:
                continue
            inviter = next(
                (
                    e.sender
                    for e in info.invite_state
                    if isinstance(e, InviteMemberEvent)
                    and e.state_key == self.user_id
                    and e.membership == "invite"
                ),
                None,
            )
            if inviter is None:
                continue
            self._invites_seen.add(room_id)
            try:
                await self._on_invite(room_id, inviter)
            except Exception:
                self._invites_seen.discard(room_id)
                log.exception("handling the invite to %s from %s failed", room_id, inviter)

    async def _maintain_keys(self) -> None:
        """What nio's sync_forever does for encryption after each sync."""
        client = self._client
        if client.olm is None:
            return
        try:
            if client.should_upload_keys:
                await client.keys_upload()
            queried = await client.keys_query() if client.should_query_keys else None
            if self._on_keys is not None:
                # Trust is settled before any key is shared, so a member's new device gets keys.
                self._on_keys(queried if isinstance(queried, KeysQueryResponse) else None)
            if client.should_claim_keys:
                await client.keys_claim(client.get_users_for_key_claiming())
            await client.send_to_device_messages()
        except Exception:
            log.exception("end-to-end key maintenance failed; will retry after the next sync")


def _failed_item(room_id: str, event: Any, received: datetime) -> InboxEvent | None:
    """An event the bot could not even read: logged with a reference and recorded as failed,
    so that the sync position moves past it and the next start does not meet it again."""
    ref = secrets.token_hex(3)
    event_id = getattr(event, "event_id", None)
    log.exception("unreadable event ref=%s event=%s room=%s", ref, event_id, room_id)
    if not isinstance(event_id, str):
        return None
    sender = getattr(event, "sender", None)
    return InboxEvent(
        event_id=event_id,
        room_id=room_id,
        sender=sender if isinstance(sender, str) else "",
        origin_ts=received,
        received_at=received,
        content={},
        event_type="unreadable",
        status=Outcome.FAILED,
        finished_at=received,
    )


def _anything_for_the_bot(answer: Any, bot_id: str) -> bool:
    """Whether a sync answer holds what the loop must read: someone else's timeline event (the
    bot's own messages are never commands), a membership change, a to-device message (a room
    key)."""
    if not isinstance(answer, dict):
        return True
    rooms = answer.get("rooms") or {}
    joined = rooms.get("join") or {}
    for info in joined.values():
        events = ((info or {}).get("timeline") or {}).get("events") or []
        if any(not isinstance(e, dict) or e.get("sender") != bot_id for e in events):
            return True
    if rooms.get("invite") or rooms.get("leave") or rooms.get("knock"):
        return True
    return bool((answer.get("to_device") or {}).get("events"))


def _is_redaction(event: Any) -> bool:
    """A redaction, however nio read it: from room version 11 on the redacted event's ID is in
    the content, which nio's schema does not know, so it hands such a redaction over as a
    `BadEvent` of that type."""
    if isinstance(event, RedactionEvent):
        return True
    return isinstance(event, BadEvent) and event.source.get("type") == REDACTION


def _has_ts(event: Any) -> bool:
    return isinstance(getattr(event, "server_timestamp", None), int)

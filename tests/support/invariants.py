"""What must hold in the bot's database whatever people typed: row counts to compare before and
after a refused command, and consistency rules that a half-done command would break.

Shared by the access table test (refusals change nothing) and the handler fuzz tests.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import Table, func
from sqlalchemy import select as core_select  # rows, where SQLModel's gives a first column
from sqlmodel import select

from bot.activations import chain
from bot.storage import models
from bot.storage.db import Database

# The bot's own bookkeeping, which every event touches: the inbox row of the command itself, the
# sync position, when it joined rooms. Everything else is what commands may (or may not) change.
BOOKKEEPING = {"inbox_event", "sync_state", "room_join"}


def domain_tables() -> list[Table]:
    """Every table but the bookkeeping ones, so that a table added later is compared too."""
    return [t for t in models.metadata.sorted_tables if t.name not in BOOKKEEPING]


async def counts(db: Database) -> dict[str, int]:
    """Rows per domain table (in one query)."""
    tables = domain_tables()
    query = select(*(select(func.count()).select_from(t).scalar_subquery() for t in tables))
    async with db.session() as session:
        row = (await session.exec(query)).one()  # type: ignore[call-overload]
    return {t.name: n for t, n in zip(tables, row, strict=True)}


async def contents(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every domain table, as sorted tuples of strings: to show that something
    wrote nothing at all, changed rows included."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    async with db.session() as session:
        for table in domain_tables():
            rows = (await session.exec(core_select(table))).all()  # type: ignore[call-overload]
            found[table.name] = sorted(tuple(map(str, row)) for row in rows)
    return found


async def _all(session: Any, model: Any) -> list[Any]:
    return list((await session.exec(select(model))).all())


_ACTIVATION_KEY = re.compile(r"^a(\d+):")


async def problems(db: Database) -> list[str]:
    """Every broken consistency rule, as one line each; empty when the database is sound."""
    found: list[str] = []
    async with db.session() as session:
        activations = {a.id: a for a in await _all(session, models.ActivationRow)}
        entries = await _all(session, models.LogEntryRow)
        sitreps = await _all(session, models.SitrepRow)
        pages = {p.id: p for p in await _all(session, models.PageRow)}
        page_targets = await _all(session, models.PageTargetRow)
        requests = {r.id: r for r in await _all(session, models.InputRequestRow)}
        request_targets = {t.id: t for t in await _all(session, models.RequestTargetRow)}
        answers = await _all(session, models.InputAnswerRow)
        drafts = await _all(session, models.AdviceDraftRow)
        series = {s.id: s for s in await _all(session, models.RoundSeriesRow)}
        runs = {r.id: r for r in await _all(session, models.RoundRunRow)}
        timers = await _all(session, models.Timer)

    def is_open(timer: models.Timer) -> bool:
        return timer.completed_at is None and timer.cancelled_at is None

    # Activations: a room, a logbook that verifies, one logbook line per sitrep.
    by_activation: dict[int, list[models.LogEntryRow]] = defaultdict(list)
    for entry in sorted(entries, key=lambda e: (e.activation_id, e.seq)):
        by_activation[entry.activation_id].append(entry)
    for activation in activations.values():
        log = by_activation[activation.id]
        if activation.room_id is None:
            found.append(f"{activation.ref} has no room")
        if not log or log[0].kind != "system.activate":
            found.append(f"{activation.ref}'s logbook does not start with its opening")
        verification = chain.verify(activation.ref, log)
        if not verification.ok:
            found.append(
                f"{activation.ref}'s logbook breaks at #{verification.first_broken}: "
                f"{verification.reason}"
            )
        numbers = sorted(s.number for s in sitreps if s.activation_id == activation.id)
        if numbers != list(range(1, len(numbers) + 1)):
            found.append(f"{activation.ref}'s sitreps are numbered {numbers}")
        issued = sum(e.kind == "system.sitrep" for e in log)
        if issued != len(numbers):
            found.append(f"{activation.ref} has {len(numbers)} sitreps, {issued} in its logbook")
        if activation.status == "closed" and activation.closed_at is None:
            found.append(f"{activation.ref} is closed without a closing time")

    # Timers point at things that exist, under the activation they belong to.
    refers = {
        "page.step": ("page", pages),
        "check.close": ("page", pages),
        "request.step": ("request", requests),
        "round.run": ("series", series),
        "round.remind": ("run", runs),
        "round.close": ("run", runs),
    }
    for timer in timers:
        if timer.kind in refers:
            field, rows = refers[timer.kind]
            if timer.payload.get(field) not in rows:
                found.append(f"timer {timer.kind}:{timer.key} points at a missing {field}")
        prefix = _ACTIVATION_KEY.match(timer.key)
        if prefix and int(prefix.group(1)) not in activations:
            found.append(f"timer {timer.kind}:{timer.key} belongs to a missing activation")

    def armed(key_part: str, *, open_only: bool = False) -> bool:
        return any(key_part in t.key and (is_open(t) or not open_only) for t in timers)

    # Pages: people, delivery recorded, a board, and a next step for everyone still waiting.
    targets_of: dict[int, list[models.PageTargetRow]] = defaultdict(list)
    for target in page_targets:
        targets_of[target.page_id].append(target)
    for page in pages.values():
        rows = targets_of[page.id]
        activation = activations.get(page.activation_id) if page.activation_id else None
        if not rows:
            found.append(f"{page.ref} was sent to nobody")
        for row in rows:
            if row.event_id is None and row.send_error is None:
                found.append(f"{page.ref} to {row.handle}: neither delivered nor failed")
            if row.covers and not any(r.handle == row.covers and not r.covers for r in rows):
                found.append(f"{page.ref}: {row.handle} stands in for {row.covers}, not paged")
        if page.kind == "check":
            if not armed(f"chk{page.id}:close"):
                found.append(f"check {page.ref} has no closing timer")
            continue
        if activation is None:
            found.append(f"{page.ref} belongs to no activation")
            continue
        if page.board_event_id is None:
            found.append(f"{page.ref} has no board in the activation room")
        if activation.status != "open":
            continue
        backups = {r.covers: r for r in rows if r.covers}
        for row in (r for r in rows if not r.covers):
            backup = backups.get(row.handle)
            answered = row.acked_at or (backup is not None and backup.acked_at)
            step = f"a{activation.id}:pg{page.id}:{row.handle}:"
            if not (answered or row.unreachable_at or armed(step, open_only=True)):
                found.append(f"{page.ref}: {row.handle} waits with no step armed")

    # Input requests: people asked, their reminder and chase armed, answers on their request.
    asked: Counter[int] = Counter(t.request_id for t in request_targets.values())
    for request in requests.values():
        if not asked[request.id]:
            found.append(f"{request.ref} was asked of nobody")
        for step in ("remind", "chase"):
            if not armed(f"rq{request.id}:{step}"):
                found.append(f"{request.ref} has no {step} timer")
    for target in request_targets.values():
        if target.event_id is None and target.send_error is None:
            found.append(f"RQ-{target.request_id} to {target.handle}: neither sent nor failed")
    for answer in answers:
        target = request_targets.get(answer.target_id)
        if target is None or target.request_id != answer.request_id:
            found.append(f"answer {answer.id} is not from someone asked in RQ-{answer.request_id}")

    # Advice drafts: numbered 1..n per activation, built from that activation's requests.
    versions: dict[int, list[int]] = defaultdict(list)
    for draft in drafts:
        versions[draft.activation_id].append(draft.version)
        strangers = [
            r
            for r in draft.requests
            if getattr(requests.get(r), "activation_id", None) != draft.activation_id
        ]
        if strangers:
            found.append(
                f"advice v{draft.version} quotes requests {strangers} of another activation"
            )
    for activation_id, numbers in versions.items():
        if sorted(numbers) != list(range(1, len(numbers) + 1)):
            found.append(f"activation {activation_id}'s advice drafts are numbered {numbers}")

    # Rounds: a scheduled one has its next run armed; an open run has its prompt and its end.
    for one in series.values():
        activation = activations.get(one.activation_id) if one.activation_id else None
        if not armed(f"rd{one.id}:run:"):
            found.append(f"{one.ref} never had a run armed")
        running = activation is None or activation.status == "open"
        scheduled = one.cron and one.cancelled_at is None and running
        if scheduled and not armed(f"rd{one.id}:run:", open_only=True):
            found.append(f"{one.ref} is scheduled but its next run is not armed")
        if one.cancelled_at is not None and armed(f"rd{one.id}:run:", open_only=True):
            found.append(f"{one.ref} is cancelled but a run is still armed")
    for run in runs.values():
        if run.series_id not in series:
            found.append(f"round run {run.id} belongs to a missing round")
            continue
        if run.status != "open":
            continue
        if run.prompt_event_id is None:
            found.append(f"RD-{run.series_id} #{run.number} is open without a prompt")
        for step in ("remind", "close"):
            if not armed(f"rd{run.series_id}:{run.id}:{step}"):
                found.append(f"RD-{run.series_id} #{run.number} has no {step} timer")
    return found

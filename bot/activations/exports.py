"""What leaves the activation as files: logbook exports, the handover summary and the closing
record bundle.

The bundle is what an after-action review or an auditor receives: the record as Markdown (for
people) and JSON (for tools), and a manifest of SHA-256 hashes in `sha256sum` format, so that
`sha256sum -c` proves the files are the ones the bot posted.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.activations import chain
from bot.inputs.requests import RequestState, request_states
from bot.render import markdown_escape
from bot.storage import action_store, input_store, page_store, round_store
from bot.storage import activation_store as store
from bot.storage.models import (
    ActionRow,
    ActivationRow,
    LogEntryRow,
    PageAttemptRow,
    PageRow,
    PageTargetRow,
    RoundReportRow,
    RoundRunRow,
    RoundSeriesRow,
    SitrepRow,
)

EXPORT_FORMATS = ("md", "csv", "html")


def entry_line(entry: LogEntryRow) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "kind": entry.kind,
        "occurred_at": entry.occurred_at.isoformat(),
        "recorded_at": entry.recorded_at.isoformat(),
        "author": entry.author,
        "author_role": entry.author_role,
        "text": entry.text,
        "corrects": entry.corrects_seq,
        "hash": entry.hash,
        "prev_hash": entry.prev_hash,
    }


def export_logbook(activation: ActivationRow, entries: list[LogEntryRow], fmt: str) -> bytes:
    """The logbook as `md`, `csv` or `html`; user text escaped where the format needs it."""
    rows = [entry_line(e) for e in entries]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["seq"])
        writer.writeheader()
        writer.writerows({k: _cell(v) for k, v in r.items()} for r in rows)
        return out.getvalue().encode()
    if fmt == "html":
        head = "".join(f"<th>{escape(k)}</th>" for k in (rows[0] if rows else {}))
        body = "".join(
            "<tr>"
            + "".join(f"<td>{escape(str(v if v is not None else ''))}</td>" for v in r.values())
            + "</tr>"
            for r in rows
        )
        title = escape(f"{activation.tlp} · {activation.ref} — {activation.title} — logbook")
        return (
            f"<!doctype html><meta charset=utf-8><title>{title}</title><h1>{title}</h1>"
            f"<table border=1><tr>{head}</tr>{body}</table>"
        ).encode()
    title = f"# {activation.tlp} · {activation.ref} — {_md(activation.title)}"
    lines = [title, "", "## Logbook", ""]
    lines += [
        f"- **#{r['seq']}** {r['occurred_at']} (rec. {r['recorded_at']}) · {r['kind'].upper()} · "
        f"{r['author']} ({r['author_role']})"
        + (f" · corrects #{r['corrects']}" if r["corrects"] else "")
        + f" — {_md(r['text'])}"
        for r in rows
    ]
    return ("\n".join(lines) + "\n").encode()


def _cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: `=cmd()` typed in a log entry is not a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _md(text: str) -> str:
    """User text inside a Markdown list item: one line, Markdown and HTML characters escaped."""
    return markdown_escape(" ⏎ ".join(text.splitlines()))


def _md_lines(text: str) -> str:
    """A plain-text message (a sitrep, which quotes the logbook) inside a Markdown document:
    shown line for line as written, never read as Markdown or HTML."""
    return "  \n".join(markdown_escape(line) for line in text.splitlines())


@dataclass
class HandoverSummary:
    logged_actions: list[LogEntryRow] = field(default_factory=list)  # `log --action` entries
    last_decisions: list[LogEntryRow] = field(default_factory=list)


async def handover_summary(session: AsyncSession, activation: ActivationRow) -> HandoverSummary:
    """What a handover adds to the situation (which has the actions, A-n): what was logged for
    follow-up, and the last decisions."""
    entries = await store.log_entries(session, activation.id, kinds=["action", "decision"])
    return HandoverSummary(
        logged_actions=[e for e in entries if e.kind == "action"],
        last_decisions=[e for e in entries if e.kind == "decision"][-5:],
    )


def manifest(files: list[tuple[str, bytes, str]]) -> bytes:
    """`sha256sum` format: one line per file, so that `sha256sum -c` checks them all."""
    return "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data, _ in files
    ).encode()


@dataclass
class Bundle:
    ref: str
    markdown: bytes
    json: bytes
    # Files that travel with the record (the after-action review, its figures and charts):
    # (name, bytes, mimetype), posted after the record and covered by the same manifest.
    extra: list[tuple[str, bytes, str]] = field(default_factory=list)

    @property
    def names(self) -> tuple[str, str, str]:
        return (f"{self.ref}-record.md", f"{self.ref}-record.json", f"{self.ref}-SHA256SUMS")

    @property
    def manifest(self) -> bytes:
        return manifest(self._content())

    def _content(self) -> list[tuple[str, bytes, str]]:
        md_name, json_name, _ = self.names
        return [
            (md_name, self.markdown, "text/markdown"),
            (json_name, self.json, "application/json"),
            *self.extra,
        ]

    def files(self) -> list[tuple[str, bytes, str]]:
        return [*self._content(), (self.names[2], self.manifest, "text/plain")]


async def build_bundle(
    session: AsyncSession,
    activation: ActivationRow,
    extra: list[tuple[str, bytes, str]] | None = None,
) -> Bundle:
    """Everything the activation recorded, in both forms, with the logbook's verification;
    `extra` files (the review) go with them, in the manifest too."""
    entries = await store.log_entries(session, activation.id)
    sitreps = await store.sitreps(session, activation.id)
    check = chain.verify(activation.ref, entries)
    pages = await page_store.pages_with_targets(session, activation.id)
    tries = await page_store.tries_by_row(session, [row for _page, rows in pages for row in rows])
    requests = await request_states(session, activation.id)
    drafts = await input_store.advice_drafts(session, activation.id)
    runs = await round_store.runs_of_activation(session, activation.id)
    actions = await action_store.of_activation(session, activation.id)
    document = {
        "activation": {
            "ref": activation.ref,
            "title": activation.title,
            "tlp": activation.tlp,
            "exercise": activation.exercise,
            "level": activation.level,
            "lead": activation.lead,
            "status": activation.status,
            "opened_at": _iso(activation.opened_at),
            "closed_at": _iso(activation.closed_at),
            "summary": activation.closing_summary,
        },
        "logbook": [entry_line(e) for e in entries],
        "logbook_verification": {
            "entries": check.entries,
            "ok": check.ok,
            "first_broken": check.first_broken,
        },
        "sitreps": [_sitrep(s) for s in sitreps],
        "pages": [_page(page, rows, tries) for page, rows in pages],
        "input_requests": [_request(state) for state in requests],
        "rounds": [_run(series, run, reports) for series, run, reports in runs],
        "actions": [_action(a) for a in actions],
        "advice_drafts": [
            {
                "version": d.version,
                "requests": d.requests,
                "created_by": d.created_by,
                "created_at": _iso(d.created_at),
                "markdown": d.markdown,
            }
            for d in drafts
        ],
    }
    markdown = export_logbook(activation, entries, "md").decode()
    markdown += "\n## Situation reports\n\n" + (
        "\n\n".join(f"### Sitrep {s.number}\n\n{_md_lines(s.body)}" for s in sitreps) or "None.\n"
    )
    markdown += "\n\n## Input requests\n\n" + (
        "\n".join(_request_markdown(state) for state in requests) or "None.\n"
    )
    markdown += "\n\n## Coordination rounds\n\n" + (
        "\n".join(_run_markdown(series, run, reports) for series, run, reports in runs) or "None.\n"
    )
    markdown += "\n\n## Actions\n\n" + (
        "\n".join(_action_markdown(a) for a in actions) or "None.\n"
    )
    markdown += "\n\n## Advice drafts\n\n" + ("\n\n".join(d.markdown for d in drafts) or "None.\n")
    markdown += "\n\n## Pages\n\n" + (
        "\n".join(_page_markdown(page, rows, tries) for page, rows in pages) or "None.\n"
    )
    markdown += (
        f"\n\n## Verification\n\nLogbook hash chain: {'intact' if check.ok else 'BROKEN'} "
        f"({check.entries} entries).\n"
    )
    return Bundle(
        ref=activation.ref,
        markdown=markdown.encode(),
        json=json.dumps(document, indent=2, ensure_ascii=False).encode(),
        extra=list(extra or []),
    )


def _action(action: ActionRow) -> dict[str, Any]:
    return {
        "ref": action.ref,
        "text": action.text,
        "owners": action.owners,
        "due_at": _iso(action.due_at),
        "status": action.status,
        "source": action.source,
        "created_by": action.created_by,
        "created_at": _iso(action.created_at),
        "reminded_at": _iso(action.reminded_at),
        "chased_at": _iso(action.chased_at),
        "done_at": _iso(action.done_at),
        "done_by": action.done_by,
        "done_note": action.done_note,
    }


def _action_markdown(action: ActionRow) -> str:
    due = f", due {_iso(action.due_at)}" if action.due_at else ""
    state = f"done {_iso(action.done_at)}" if action.done_at else "OPEN"
    note = f" — {_md(action.done_note)}" if action.done_note else ""
    return f"- {action.ref} ({', '.join(action.owners)}{due}): {_md(action.text)} — {state}{note}"


def _run(series: RoundSeriesRow, run: RoundRunRow, reports: list[RoundReportRow]) -> dict:
    """One run of a round: when, its agenda, every update (corrections included, in order),
    and who did not report."""
    reported = {r.matrix_id for r in reports}
    return {
        "round": series.ref,
        "number": run.number,
        "kind": series.kind,
        "agenda": series.agenda,
        "scheduled_for": _iso(run.scheduled_for),
        "started_at": _iso(run.started_at),
        "closed_at": _iso(run.closed_at),
        "status": run.status,
        "updates": [
            {
                "name": r.name,
                "matrix_id": r.matrix_id,
                "text": r.text,
                "via": r.via,
                "at": _iso(r.reported_at),
            }
            for r in reports
        ],
        "did_not_report": [p["name"] for p in run.participants if p["matrix_id"] not in reported],
    }


def _run_markdown(series: RoundSeriesRow, run: RoundRunRow, reports: list[RoundReportRow]) -> str:
    view = _run(series, run, reports)
    lines = [f"### {series.ref} #{run.number} — {run.status}, started {view['started_at']}"]
    if series.agenda:
        lines.append(f"Agenda: {_md(series.agenda)}")
    lines += [
        f"- {_md(u['name'])} ({u['at']}, {u['via']}): {_md(u['text'])}" for u in view["updates"]
    ]
    missing = ", ".join(_md(name) for name in view["did_not_report"])
    lines.append(f"Did not report: {missing or 'nobody'}.")
    return "\n".join(lines) + "\n"


def _person(row: PageTargetRow, tries: list[PageAttemptRow]) -> dict[str, Any]:
    latency = (
        (row.acked_at - row.delivered_at).total_seconds()
        if row.acked_at and row.delivered_at
        else None
    )
    return {
        "handle": row.handle,
        "name": row.name,
        "organisation": row.organisation,
        "stands_in_for": row.covers or None,
        "delivered_at": _iso(row.delivered_at),
        "seen_at": _iso(row.seen_at),  # None: not known (receipts may be private), not unseen
        "send_error": row.send_error,
        "repaged_at": _iso(row.repaged_at),
        "acknowledged_at": _iso(row.acked_at),
        "acknowledged_how": row.ack_how,
        "ack_latency_s": latency,
        "declined_at": _iso(row.declined_at),
        "declined_reason": row.declined_reason,
        "escalated_at": _iso(row.escalated_at),
        "unreachable_at": _iso(row.unreachable_at),
        "other_channels": [
            {
                "channel": t.channel,
                "tried_at": _iso(t.tried_at),
                "sent_at": _iso(t.sent_at),
                "error": t.error,
                "message_id": t.message_id,
            }
            for t in tries
        ],
    }


def _page(
    page: PageRow, rows: list[PageTargetRow], tries: dict[int, list[PageAttemptRow]]
) -> dict[str, Any]:
    return {
        "ref": page.ref,
        "sender": page.sender,
        "text": page.text,
        "urgent": page.urgent,
        "ack_window_s": page.ack_window_s,
        "sent_at": _iso(page.created_at),
        "people": [_person(r, tries.get(r.id, [])) for r in rows],
    }


def _page_markdown(
    page: PageRow, rows: list[PageTargetRow], tries: dict[int, list[PageAttemptRow]]
) -> str:
    lines = [f"- **{page.ref}** {_iso(page.created_at)} by {page.sender}: {_md(page.text)}"]
    for person in (_person(r, tries.get(r.id, [])) for r in rows):
        outcome = (
            f"acknowledged after {person['ack_latency_s']:.0f} s ({person['acknowledged_how']})"
            if person["acknowledged_at"] and person["ack_latency_s"] is not None
            else "declined: " + _md(person["declined_reason"] or "")
            if person["declined_at"]
            else "unreachable"
            if person["unreachable_at"]
            else "not delivered"
            if person["send_error"]
            else "no answer"
        )
        standing_in = f" (backup for {person['stands_in_for']})" if person["stands_in_for"] else ""
        channels = "".join(
            f"; {c['channel']} sent {c['sent_at']}"
            if c["sent_at"]
            else f"; {c['channel']} failed: {_md(c['error'] or '')}"
            for c in person["other_channels"]
        )
        lines.append(f"  - {_md(person['name'])}{standing_in}: {outcome}{channels}")
    return "\n".join(lines)


def _request(state: RequestState) -> dict[str, Any]:
    names = {t.id: t for t in state.targets}
    return {
        "ref": state.request.ref,
        "question": state.request.question,
        "sender": state.request.sender,
        "deadline": _iso(state.request.deadline),
        "asked": [
            {
                "handle": t.handle,
                "name": t.name,
                "organisation": t.organisation,
                "delivered_at": _iso(t.delivered_at),
                "reminded_at": _iso(t.reminded_at),
                "chased_at": _iso(t.chased_at),
            }
            for t in state.targets
        ],
        "answers": [
            {
                "handle": names[a.target_id].handle,
                "version": a.version,
                "text": a.text,
                "answered_at": _iso(a.answered_at),
                "late": a.late,
                "via": a.via,
            }
            for a in state.answers
        ],
    }


def _request_markdown(state: RequestState) -> str:
    names = {t.id: t.name for t in state.targets}
    request = state.request
    lines = [f"- **{request.ref}** {_md(request.question)} (by {_iso(request.deadline)})"]
    lines += [
        f"  - {_md(names[a.target_id])} v{a.version} {_iso(a.answered_at)}"
        + (" (late)" if a.late else "")
        + f": {_md(a.text)}"
        for a in state.answers
    ]
    lines += [f"  - {_md(t.name)}: no answer" for t in state.missing]
    return "\n".join(lines)


def _sitrep(sitrep: SitrepRow) -> dict[str, Any]:
    return {
        "number": sitrep.number,
        "period_start": _iso(sitrep.period_start),
        "period_end": _iso(sitrep.period_end),
        "prepared_by": sitrep.prepared_by,
        "created_at": _iso(sitrep.created_at),
        "body": sitrep.body,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None

"""Where one activation stands, as `status` and `handover` tell it: read in as few queries as
the activation needs.

A quiet activation (no page, request or schedule yet) is read in two queries: a tally and its
level history. Each list is read only when the tally says it has something; on SQLite every
query costs four hops to aiosqlite's thread, and `status` is the command asked most often
(bench/, command latency).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from bot.actions.actions import action_view, open_actions
from bot.activations.activation import LevelChange, level_history
from bot.directory.model import Directory
from bot.inputs.requests import Inputs, InputSummary
from bot.paging.board import PageSummary, page_summary
from bot.rounds.runs import Rounds
from bot.storage import activation_store, round_store
from bot.storage.activation_store import Tally
from bot.storage.db import Database
from bot.storage.models import ActivationRow


@dataclass(frozen=True)
class Situation:
    tally: Tally
    history: list[LevelChange]
    pages: PageSummary
    requests: InputSummary
    next_rounds: list[tuple[str, str, str | None]]  # (RD-n, when, next run in local time)
    actions: list[dict[str, Any]]  # the open ones, as `action_view` shows them


async def read_situation(
    activation: ActivationRow,
    *,
    db: Database,
    inputs: Inputs,
    rounds: Rounds,
    directory: Directory,
    zone: ZoneInfo,
) -> Situation:
    activation_id: int = activation.id
    async with db.session() as session:
        tally = await activation_store.tally(session, activation_id)
        history = await level_history(session, activation)
        pages = (
            await page_summary(session, activation_id)
            if tally.pages
            else PageSummary(pages=0, people=0, acknowledged=0, waiting=[], unreachable=[])
        )
        requests = (
            await inputs.summary(session, activation_id)
            if tally.requests
            else InputSummary(requests=[], overdue=[])
        )
        series = (
            await round_store.scheduled_for_activation(session, activation_id)
            if tally.scheduled_rounds
            else []
        )
        actions = await open_actions(session, activation_id)
    next_rounds = [(s.ref, s.when_text, rounds.next_local(s)) for s in series]
    shown = [action_view(a, directory, zone) for a in actions.open]
    return Situation(tally, history, pages, requests, next_rounds, shown)

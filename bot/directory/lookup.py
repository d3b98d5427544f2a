"""`contacts` and `contact`: the directory as people search it, with what the bot has learnt of
each person — their last acknowledgement's latency and their latest communication check."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.errors import UserError
from bot.render import Message
from bot.storage import page_store
from bot.storage.models import PageTargetRow
from bot.timeutil import format_duration, format_local_utc, utcnow, zone_label

if TYPE_CHECKING:
    from bot.directory.keeper import DirectoryKeeper
    from bot.render import Renderer
    from bot.settings import Settings
    from bot.storage.db import Database

PAGE_SIZE = 20


@dataclass(frozen=True, kw_only=True)
class Lookup:
    settings: Settings
    db: Database
    keeper: DirectoryKeeper
    renderer: Renderer

    async def search(self, query: str | None, page: int) -> Message:
        """One page of the people matching every word of `query` (everyone without one)."""
        directory = self.keeper.current
        found = directory.search(query)
        pages = max(1, -(-len(found) // PAGE_SIZE))
        if page > pages:
            raise UserError(
                f"There {'is' if pages == 1 else 'are'} only {pages} page(s) of results."
            )
        shown = found[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        async with self.db.session() as session:  # the shown page's people only
            checks = await page_store.check_results(session, [c.key for c in shown])
        rows = [
            {
                "handle": c.handle,
                "name": c.name,
                "role": c.role.value,
                "organisation": directory.organisation_of(c).name,
                "languages": ", ".join(c.languages),
                "zone": zone_label(c.zone),
                "stale": c.key in checks and checks[c.key].acked_at is None,
            }
            for c in shown
        ]
        return self.renderer.render(
            "contacts",
            rows=rows,
            query=query,
            total=len(found),
            everyone=len(directory.contacts),
            page=page,
            pages=pages,
            prefix=self.settings.command_prefix,
        )

    async def card(self, handle: str) -> Message:
        """One person: organisation, role, languages, local time, groups, backup, last answers."""
        directory = self.keeper.current
        person = directory.find(handle)
        if person is None:
            suggestion = directory.closest(handle.lower())
            hint = f" Did you mean `{suggestion}`?" if suggestion else ""
            raise UserError(f"No contact `{handle}` in the directory.{hint}")
        async with self.db.session() as session:
            latency = await page_store.last_ack_latency(session, person.key)
            checks = await page_store.check_results(session, [person.key])
        backup = directory.contacts.get(person.backup) if person.backup else None
        backs_up = [c for c in directory.contacts.values() if c.backup == person.handle]
        return self.renderer.render(
            "contact",
            person=person,
            role=person.role.value,
            organisation=directory.organisation_of(person),
            now=format_local_utc(utcnow(), person.zone),
            backup=backup,
            backs_up=backs_up,
            groups=[(g, directory.groups[g]) for g in person.groups],
            last_ack=format_duration(timedelta(seconds=latency)) if latency is not None else None,
            last_check=_check_line(checks.get(person.key)),
        )


def _check_line(row: PageTargetRow | None) -> dict[str, str | None] | None:
    """The person's latest communication check, for the contact card: its date, and how long
    the answer took (None: no answer)."""
    if row is None:
        return None
    when = row.delivered_at or row.deadline
    latency = (
        format_duration(row.acked_at - (row.delivered_at or row.acked_at)) if row.acked_at else None
    )
    return {"latency": latency, "date": f"{when:%d %b %Y}"}

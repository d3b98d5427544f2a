"""The directory's history in the database: what the file said, and when contacts left it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.directory import Contact, Directory
from bot.storage.models import ContactRow, GroupRow, OrganisationRow
from bot.timeutil import utcnow


@dataclass(frozen=True)
class DirectoryChanges:
    added: list[str]
    changed: list[str]
    removed: list[str]


def _contact_fields(contact: Contact) -> dict[str, object]:
    return {
        "name": contact.name,
        "organisation": contact.organisation,
        "matrix_id": contact.matrix_id,
        "role": contact.role.value,
        "languages": list(contact.languages),
        "timezone": contact.timezone,
        "groups": list(contact.groups),
        "backup": contact.backup,
    }


def _same(row: object, fields: dict[str, object]) -> bool:
    return all(getattr(row, f) == v for f, v in fields.items())


async def store_directory(session: AsyncSession, directory: Directory) -> DirectoryChanges:
    """Make the tables say what `directory` says; contacts no longer in it become inactive."""
    now = utcnow()
    for table, key, wanted in (
        (
            OrganisationRow,
            "key",
            {
                o.key: {"name": o.name, "kind": o.kind, "country": o.country}
                for o in directory.organisations.values()
            },
        ),
        (GroupRow, "name", {n: {"description": d} for n, d in directory.groups.items()}),
    ):
        rows = {getattr(r, key): r for r in (await session.exec(select(table))).all()}
        for name, fields in wanted.items():
            row = rows.get(name)
            if row is not None and row.active and _same(row, fields):
                continue  # rewriting 2,000 unchanged organisations cost every start ~0.3 s
            row = row or table(**{key: name})
            for field, value in {**fields, "active": True, "updated_at": now}.items():
                setattr(row, field, value)
            session.add(row)
        for name, row in rows.items():
            if name not in wanted and row.active:
                row.active, row.updated_at = False, now
                session.add(row)

    existing = {r.handle: r for r in (await session.exec(select(ContactRow))).all()}
    added, changed, removed = [], [], []
    for handle, contact in directory.contacts.items():
        fields = _contact_fields(contact)
        row = existing.get(handle)
        if row is None:
            row = ContactRow(handle=handle, first_loaded_at=now, updated_at=now, **fields)
            added.append(handle)
        elif not row.active or any(getattr(row, f) != v for f, v in fields.items()):
            for field, value in fields.items():
                setattr(row, field, value)
            row.active, row.removed_at, row.updated_at = True, None, now
            changed.append(handle)
        else:
            continue
        session.add(row)
    for handle, row in existing.items():
        if handle not in directory.contacts and row.active:
            row.active, row.removed_at, row.updated_at = False, now, now
            session.add(row)
            removed.append(handle)
    return DirectoryChanges(added, changed, removed)


async def contact_rows(session: AsyncSession, *, active_only: bool = False) -> list[ContactRow]:
    query = select(ContactRow)
    if active_only:
        query = query.where(ContactRow.active == True)  # noqa: E712
    return list((await session.exec(query.order_by(ContactRow.handle))).all())

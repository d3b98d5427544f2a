"""The liaison directory (`config/directory.yaml`): who is who, and which role they hold.

Loading validates the whole file in one pass and reports every problem as one line naming the
file, the entry and the field, so an operator fixes a bad directory in one go. A directory that
does not validate is never put in force.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.problems import ProblemList
from bot.roles import Role
from bot.settings import MATRIX_USER_ID
from bot.timeutil import load_zone

ORGANISATION_KINDS = ("national", "eu", "nato", "benelux", "embassy", "international", "other")
LANGUAGES = ("en", "fr", "nl", "de")


class DirectoryError(ProblemList):
    """The directory file does not validate; the one in force (if any) stays."""


@dataclass(frozen=True)
class Organisation:
    key: str
    name: str
    kind: str
    country: str


@dataclass(frozen=True)
class Contact:
    handle: str
    name: str
    organisation: str
    matrix_id: str
    role: Role
    languages: tuple[str, ...]
    timezone: str
    groups: tuple[str, ...] = ()
    backup: str | None = None


@dataclass(frozen=True)
class Directory:
    organisations: dict[str, Organisation]
    contacts: dict[str, Contact]
    groups: dict[str, str]
    by_matrix_id: dict[str, Contact] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_matrix_id", {c.matrix_id: c for c in self.contacts.values()})

    def role_of(self, matrix_id: str) -> Role:
        contact = self.by_matrix_id.get(matrix_id)
        return contact.role if contact else Role.STRANGER

    def contact_for(self, matrix_id: str) -> Contact | None:
        return self.by_matrix_id.get(matrix_id)

    @classmethod
    def empty(cls) -> Directory:
        return cls(organisations={}, contacts={}, groups={})


def load_directory(path: Path) -> Directory:
    """Read and validate `path`; raise DirectoryError with every problem found."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DirectoryError([f"{path}: file not found"]) from None
    except yaml.YAMLError as exc:
        raise DirectoryError([f"{path}: not valid YAML: {exc}".replace("\n", " ")]) from None
    return parse_directory(raw, source=str(path))


def parse_directory(raw: Any, *, source: str) -> Directory:
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise DirectoryError([f"{source}: expected sections organisations, contacts, groups"])

    def problem(entry: str, fieldname: str, message: str) -> None:
        problems.append(f"{source}: {entry}: {fieldname}: {message}")

    groups = {str(k): str(v) for k, v in (raw.get("groups") or {}).items()}
    organisations: dict[str, Organisation] = {}
    for index, item in enumerate(_entries(raw, "organisations", problems, source)):
        key = str(item.get("key") or "")
        entry = f"organisations[{index}] {key or '?'}"
        if not key:
            problem(entry, "key", "missing")
            continue
        if key in organisations:
            problem(entry, "key", f"duplicate organisation `{key}`")
        kind = str(item.get("kind") or "other")
        if kind not in ORGANISATION_KINDS:
            problem(entry, "kind", f"`{kind}` is not one of {', '.join(ORGANISATION_KINDS)}")
        organisations[key] = Organisation(
            key=key,
            name=str(item.get("name") or key),
            kind=kind,
            country=str(item.get("country") or ""),
        )

    contacts: dict[str, Contact] = {}
    matrix_ids: dict[str, str] = {}
    for index, item in enumerate(_entries(raw, "contacts", problems, source)):
        handle = str(item.get("handle") or "")
        entry = f"contacts[{index}] {handle or '?'}"
        if not handle:
            problem(entry, "handle", "missing")
            continue
        if handle in contacts:
            problem(entry, "handle", f"duplicate handle `{handle}`")
        matrix_id = str(item.get("matrix_id") or "")
        if not MATRIX_USER_ID.match(matrix_id):
            problem(entry, "matrix_id", f"`{matrix_id}` is not a Matrix ID (@name:server)")
        elif matrix_id in matrix_ids:
            problem(entry, "matrix_id", f"`{matrix_id}` is also used by `{matrix_ids[matrix_id]}`")
        matrix_ids.setdefault(matrix_id, handle)
        organisation = str(item.get("organisation") or "")
        if organisation not in organisations:
            problem(entry, "organisation", f"unknown organisation `{organisation}`")
        try:
            role = Role.parse(str(item.get("role") or "partner"))
        except ValueError as exc:
            problem(entry, "role", str(exc))
            role = Role.PARTNER
        languages = tuple(str(lang) for lang in (item.get("languages") or ["en"]))
        for lang in languages:
            if lang not in LANGUAGES:
                problem(entry, "languages", f"`{lang}` is not supported ({', '.join(LANGUAGES)})")
        timezone = str(item.get("timezone") or "Europe/Brussels")
        try:
            load_zone(timezone)
        except ValueError as exc:
            problem(entry, "timezone", str(exc))
        contact_groups = tuple(str(g) for g in (item.get("groups") or []))
        for group in contact_groups:
            if group not in groups:
                problem(entry, "groups", f"group `{group}` is not declared under groups")
        backup = item.get("backup")
        contacts[handle] = Contact(
            handle=handle,
            name=str(item.get("name") or handle),
            organisation=organisation,
            matrix_id=matrix_id,
            role=role,
            languages=languages,
            timezone=timezone,
            groups=contact_groups,
            backup=str(backup) if backup else None,
        )

    problems.extend(_backup_problems(contacts.values(), contacts, source))
    if problems:
        raise DirectoryError(problems)
    return Directory(organisations=organisations, contacts=contacts, groups=groups)


def _entries(raw: dict[str, Any], section: str, problems: list[str], source: str) -> list[dict]:
    items = raw.get(section) or []
    if not isinstance(items, list):
        problems.append(f"{source}: {section}: expected a list of entries")
        return []
    good = []
    for index, item in enumerate(items):
        if isinstance(item, dict):
            good.append(item)
        else:
            problems.append(f"{source}: {section}[{index}]: expected a mapping of fields")
    return good


def _backup_problems(
    contacts: Iterable[Contact], by_handle: dict[str, Contact], source: str
) -> list[str]:
    problems = []
    for contact in contacts:
        entry = f"{source}: contacts {contact.handle}: backup"
        if contact.backup is None:
            continue
        if contact.backup not in by_handle:
            problems.append(f"{entry}: unknown contact `{contact.backup}`")
            continue
        chain, current = [contact.handle], contact.backup
        while current in by_handle and current not in chain:
            chain.append(current)
            current = by_handle[current].backup
        if current == contact.handle:
            problems.append(f"{entry}: backup cycle {' → '.join([*chain, current])}")
    return problems

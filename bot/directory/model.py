"""The liaison directory (`config/directory.yaml`): who is who, their role, language and zone.

Loading validates the whole file in one pass and reports every problem as one line naming the
file, the entry and the field, so an operator fixes a bad directory in one go. A directory that
does not validate is never put in force. The directory in force is an immutable object with its
lookups prebuilt, swapped as a whole on reload, so a command never sees half of a reload.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from bot.directory.roles import Role
from bot.errors import ProblemList, UserError
from bot.settings import MATRIX_USER_ID
from bot.timeutil import load_zone

ORGANISATION_KINDS = ("national", "eu", "nato", "benelux", "embassy", "international", "other")
LANGUAGES = ("en", "fr", "nl", "de")
KEY = r"[a-z0-9][a-z0-9._\-]*"
# libyaml's safe loader where PyYAML was built with it: 3-4x faster on a 5,000-contact file.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Resolution:
    """Targets resolved to people: each person once, in directory order; unknown keys named."""

    people: tuple[Contact, ...]
    unknown: tuple[tuple[str, str | None], ...]  # (key, closest known key)


class Directory:
    """The directory in force. Build with `load_directory`/`parse_directory`; never mutate."""

    def __init__(
        self,
        organisations: dict[str, Organisation],
        contacts: dict[str, Contact],
        groups: dict[str, str],
    ) -> None:
        self.organisations = organisations
        self.contacts = contacts
        self.groups = groups
        self._by_matrix_id = {c.matrix_id: c for c in contacts.values()}
        self._order = {handle: index for index, handle in enumerate(contacts)}
        self._members: dict[str, list[Contact]] = {}
        for contact in contacts.values():
            for key in (contact.organisation, *contact.groups):
                self._members.setdefault(key, []).append(contact)

    @classmethod
    def empty(cls) -> Directory:
        return cls({}, {}, {})

    def role_of(self, matrix_id: str) -> Role:
        contact = self._by_matrix_id.get(matrix_id)
        return contact.role if contact else Role.STRANGER

    def contact_for(self, matrix_id: str) -> Contact | None:
        return self._by_matrix_id.get(matrix_id)

    def matrix_ids(self) -> set[str]:
        return set(self._by_matrix_id)

    def find(self, handle_or_matrix_id: str) -> Contact | None:
        key = handle_or_matrix_id.strip()
        return self.contacts.get(key.lower()) or self._by_matrix_id.get(key)

    def organisation_of(self, contact: Contact) -> Organisation:
        return self.organisations[contact.organisation]

    def target_keys(self) -> list[str]:
        return [*self.contacts, *self.organisations, *self.groups]

    def resolve(self, keys: Iterable[str]) -> Resolution:
        """Handles, organisation keys and group names → the people they stand for.

        A key that is several things at once (a handle and an organisation) means all of them.
        """
        found: dict[str, Contact] = {}
        unknown: list[tuple[str, str | None]] = []
        for raw in keys:
            key = raw.strip().lower()
            contact = self.contacts.get(key)
            collective = key in self.organisations or key in self.groups
            if contact is None and not collective:
                unknown.append((key, self.closest(key)))
                continue
            members = self._members.get(key, []) if collective else []
            for person in ([contact] if contact else []) + members:
                found.setdefault(person.handle, person)
        people = sorted(found.values(), key=lambda c: self._order[c.handle])
        return Resolution(tuple(people), tuple(unknown))

    def people(self, keys: Iterable[str], *, besides: str) -> list[Contact]:
        """Targets → people other than `besides` (the bot), or a refusal naming every unknown
        key with the closest known one: nothing is sent to part of a list."""
        resolution = self.resolve(keys)
        if resolution.unknown:
            parts = [
                f"`{key}`" + (f" (did you mean `{hint}`?)" if hint else "")
                for key, hint in resolution.unknown
            ]
            raise UserError(f"Unknown target {', '.join(parts)}; nothing was sent.")
        people = [p for p in resolution.people if p.matrix_id != besides]
        if not people:
            raise UserError("Those targets resolve to nobody; nothing was sent.")
        return people

    def closest(self, key: str) -> str | None:
        """The target key `key` most likely meant: a near spelling of a handle, organisation
        or group, or a contact's handle when `key` is (close to) their Matrix user name, name,
        or surname (`pdevries`, `Pieter de Vries`, `de vries`)."""
        key = key.strip().lower()
        aliases = {k: k for k in self.target_keys()}
        for contact in self.contacts.values():
            localpart = contact.matrix_id[1:].split(":", 1)[0].lower()
            name = contact.name.lower()
            for alias in (localpart, name, name.split(" ", 1)[-1]):
                aliases.setdefault(alias, contact.handle)
        hits = difflib.get_close_matches(key, list(aliases), n=1, cutoff=0.6)
        return aliases[hits[0]] if hits else None

    def search(self, query: str | None) -> list[Contact]:
        """Contacts whose handle, name, organisation (key or name) or groups contain every word."""
        words = (query or "").lower().split()
        if not words:
            return list(self.contacts.values())
        return [c for c in self.contacts.values() if all(w in self._haystack(c) for w in words)]

    def _haystack(self, contact: Contact) -> str:
        organisation = self.organisations.get(contact.organisation)
        parts = [
            contact.handle,
            contact.name,
            contact.matrix_id,
            contact.organisation,
            organisation.name if organisation else "",
            *contact.groups,
        ]
        return " ".join(parts).lower()


def load_directory(path: Path, cache: Path | None = None) -> Directory:
    """Read and validate `path`; raise DirectoryError with every problem found.

    With `cache`, the parsed file is kept there as JSON under the file's SHA-256: parsing 5,000
    contacts of YAML takes about a second of every start (bench/, start-up), reading the same
    as JSON a few milliseconds. Validation runs every time all the same.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DirectoryError([f"{path}: file not found"]) from None
    try:
        _refuse_anchors(text, path)
        digest = hashlib.sha256(text.encode()).hexdigest()
        raw = _cached(cache, digest)
        if raw is None:
            raw = yaml.load(text, Loader=SAFE_LOADER)
            _keep(cache, digest, raw)
    except yaml.YAMLError as exc:
        raise DirectoryError([f"{path}: not valid YAML: {exc}".replace("\n", " ")]) from None
    return parse_directory(raw, source=str(path))


def _refuse_anchors(text: str, path: Path) -> None:
    """Raise DirectoryError if the file has any YAML anchor or alias (merge keys `<<: *x` too).

    Aliases let a few kilobytes stand for gigabytes ("billion laughs": nine levels of nine
    aliases is 387 million strings once the JSON cache or a field's str() walks the value),
    and a directory has no use for them. So the file is first read as parser events, which
    never expand anything (0.1 s on 5,000 contacts), and refused with the lines to rewrite.
    Runs before the cache, so a cached parse of such a file from before this check is refused
    all the same. A file with no `&` or `*` at all cannot hold either, and skips the scan.
    """
    if "&" not in text and "*" not in text:
        return
    lines = list(dict.fromkeys(event.start_mark.line + 1 for event in _anchored_events(text)))
    if lines:
        shown = ", ".join(str(line) for line in lines[:5])
        more = f" and {len(lines) - 5} more" if len(lines) > 5 else ""
        raise DirectoryError(
            [
                f"{path}: line{'s' if len(lines) > 1 else ''} {shown}{more}: anchors and aliases"
                " (&, *) are not allowed in directory.yaml; write each entry out"
            ]
        )


def _anchored_events(text: str) -> Iterator[yaml.NodeEvent]:
    """The file's anchors (`&x`) and aliases (`*x`), read by the parser alone: no node is built
    and no alias followed, so this costs the size of the text whatever the aliases stand for."""
    for event in yaml.parse(text, Loader=SAFE_LOADER):
        if isinstance(event, yaml.NodeEvent) and event.anchor is not None:
            yield event


def _cached(cache: Path | None, digest: str) -> Any:
    """The parsed file from the cache if it was made from exactly this text, else None."""
    if cache is None:
        return None
    try:
        kept = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return kept.get("raw") if isinstance(kept, dict) and kept.get("sha256") == digest else None


def _keep(cache: Path | None, digest: str, raw: Any) -> None:
    """Cache `raw` only if JSON gives back exactly the same (YAML dates or number keys would not
    survive the trip; such a file is simply parsed every time)."""
    if cache is None:
        return
    try:
        text = json.dumps({"sha256": digest, "raw": raw})
        if json.loads(text)["raw"] != raw:
            return
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(cache)
    except (OSError, TypeError, ValueError):
        return


def parse_directory(raw: Any, *, source: str) -> Directory:
    return _Parser(source).parse(raw)


class _Parser:
    """One pass over the file; every problem is collected, none stops the pass."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def problem(self, entry: str, field: str, message: str) -> None:
        self.problems.append(f"{self.source}: {entry}: {field}: {message}")

    def parse(self, raw: Any) -> Directory:
        if not isinstance(raw, dict):
            raise DirectoryError(
                [f"{self.source}: expected sections organisations, contacts, groups"]
            )
        groups = self._groups(raw.get("groups"))
        organisations = self._organisations(self._entries(raw, "organisations"))
        contacts = self._contacts(self._entries(raw, "contacts"), organisations, groups)
        self._check_backups(contacts)
        if self.problems:
            raise DirectoryError(self.problems)
        return Directory(organisations, contacts, groups)

    def _entries(self, raw: dict[str, Any], section: str) -> list[tuple[int, dict[str, Any]]]:
        items = raw.get(section) or []
        if not isinstance(items, list):
            self.problems.append(f"{self.source}: {section}: expected a list of entries")
            return []
        good = []
        for index, item in enumerate(items):
            if isinstance(item, dict):
                good.append((index, item))
            else:
                self.problems.append(
                    f"{self.source}: {section}[{index}]: expected a mapping of fields"
                )
        return good

    def _key(self, item: dict[str, Any], field: str, entry: str, seen: Iterable[str]) -> str | None:
        """The entry's identifying key: present, well-formed, not a duplicate."""
        value = str(item.get(field) or "").strip()
        if not value:
            self.problem(entry, field, "missing")
            return None
        if value != value.lower() or not re.fullmatch(KEY, value):
            self.problem(entry, field, f"`{value}` must be lower-case letters, digits, . _ -")
        if value in seen:
            self.problem(entry, field, f"duplicate `{value}`")
        return value

    def _groups(self, raw: Any) -> dict[str, str]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.problems.append(f"{self.source}: groups: expected `name: description` pairs")
            return {}
        for name in raw:
            if not re.fullmatch(KEY, str(name)):
                self.problem(f"groups {name}", "name", "must be lower-case letters, digits, . _ -")
        return {str(k): str(v) for k, v in raw.items()}

    def _organisations(self, items: list[tuple[int, dict[str, Any]]]) -> dict[str, Organisation]:
        organisations: dict[str, Organisation] = {}
        for index, item in items:
            entry = f"organisations[{index}] {item.get('key') or '?'}"
            key = self._key(item, "key", entry, organisations)
            if key is None:
                continue
            kind = str(item.get("kind") or "other")
            if kind not in ORGANISATION_KINDS:
                self.problem(
                    entry, "kind", f"`{kind}` is not one of {', '.join(ORGANISATION_KINDS)}"
                )
            organisations[key] = Organisation(
                key=key,
                name=str(item.get("name") or key),
                kind=kind,
                country=str(item.get("country") or ""),
            )
        return organisations

    def _contacts(
        self,
        items: list[tuple[int, dict[str, Any]]],
        organisations: dict[str, Organisation],
        groups: dict[str, str],
    ) -> dict[str, Contact]:
        contacts: dict[str, Contact] = {}
        matrix_ids: dict[str, str] = {}
        for index, item in items:
            entry = f"contacts[{index}] {item.get('handle') or '?'}"
            handle = self._key(item, "handle", entry, contacts)
            if handle is None:
                continue
            matrix_id = str(item.get("matrix_id") or "")
            if not MATRIX_USER_ID.match(matrix_id):
                self.problem(entry, "matrix_id", f"`{matrix_id}` is not a Matrix ID (@name:server)")
            elif matrix_id in matrix_ids:
                self.problem(
                    entry, "matrix_id", f"`{matrix_id}` is also used by `{matrix_ids[matrix_id]}`"
                )
            matrix_ids.setdefault(matrix_id, handle)
            organisation = str(item.get("organisation") or "")
            if organisation not in organisations:
                self.problem(entry, "organisation", f"unknown organisation `{organisation}`")
            contacts[handle] = Contact(
                handle=handle,
                name=str(item.get("name") or handle),
                organisation=organisation,
                matrix_id=matrix_id,
                role=self._role(item, entry),
                languages=self._languages(item, entry),
                timezone=self._timezone(item, entry),
                groups=self._contact_groups(item, entry, groups),
                backup=str(item["backup"]) if item.get("backup") else None,
            )
        return contacts

    def _role(self, item: dict[str, Any], entry: str) -> Role:
        try:
            return Role.parse(str(item.get("role") or "partner"))
        except ValueError as exc:
            self.problem(entry, "role", str(exc))
            return Role.PARTNER

    def _languages(self, item: dict[str, Any], entry: str) -> tuple[str, ...]:
        raw = item.get("languages") or ["en"]
        languages = tuple(str(lang) for lang in (raw if isinstance(raw, list) else [raw]))
        for lang in languages:
            if lang not in LANGUAGES:
                self.problem(
                    entry, "languages", f"`{lang}` is not supported ({', '.join(LANGUAGES)})"
                )
        return languages

    def _timezone(self, item: dict[str, Any], entry: str) -> str:
        timezone = str(item.get("timezone") or "Europe/Brussels")
        try:
            load_zone(timezone)
        except ValueError as exc:
            self.problem(entry, "timezone", str(exc))
        return timezone

    def _contact_groups(
        self, item: dict[str, Any], entry: str, groups: dict[str, str]
    ) -> tuple[str, ...]:
        raw = item.get("groups") or []
        names = tuple(str(g) for g in (raw if isinstance(raw, list) else [raw]))
        for name in names:
            if name not in groups:
                self.problem(entry, "groups", f"group `{name}` is not declared under groups")
        return names

    def _check_backups(self, contacts: dict[str, Contact]) -> None:
        for contact in contacts.values():
            if contact.backup is None:
                continue
            entry = f"contacts {contact.handle}"
            if contact.backup not in contacts:
                self.problem(entry, "backup", f"unknown contact `{contact.backup}`")
                continue
            chain: list[str] = [contact.handle]
            current: str | None = contact.backup
            while current is not None and current in contacts and current not in chain:
                chain.append(current)
                current = contacts[current].backup
            if current == contact.handle:
                self.problem(entry, "backup", f"backup cycle {' → '.join([*chain, current])}")

"""The liaison directory (`config/directory.yaml`): who is who, their role, language and zone.

Loading validates the whole file in one pass and reports every problem as one line naming the
file, the line, the entry and the field, so an operator fixes a bad directory in one go: first
its shape (`shape.py`: typed models that refuse unknown keys, so that a typo never silently
drops a language or a backup), then what the values mean and how entries refer to each other.
A directory that does not validate is never put in force. The directory in force is an
immutable object with its lookups prebuilt, swapped as a whole on reload, so a command never
sees half of a reload.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import yaml

from bot.directory.roles import Role
from bot.directory.shape import (
    CHANNELS,
    KEY,
    LANGUAGES,
    ORGANISATION_KINDS,
    ContactEntry,
    OrganisationEntry,
    Positions,
    Problem,
    Where,
    read_shape,
)
from bot.errors import ProblemList, UserError
from bot.settings import EMAIL, MATRIX_USER_ID, PHONE
from bot.timeutil import load_zone

Entry = TypeVar("Entry")  # a directory entry as read from the file (`OrganisationEntry`, …)

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
    matrix_id: str | None  # None: reached by e-mail or SMS only
    role: Role
    languages: tuple[str, ...]
    timezone: str
    groups: tuple[str, ...] = ()
    backup: str | None = None
    email: str | None = None
    phone: str | None = None
    channels: tuple[str, ...] = ("matrix",)  # tried in this order for a page or a check

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def key(self) -> str:
        """What the bot's rows know them by: their Matrix ID, or `~handle` for someone not on
        Matrix (never a Matrix ID, so no Matrix sender can ever answer in their name)."""
        return self.matrix_id or f"~{self.handle}"

    @property
    def on_matrix(self) -> bool:
        """Whether a page starts in Matrix for them (it comes first whenever it is listed)."""
        return self.channels[:1] == ("matrix",)


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
        self._by_matrix_id = {c.matrix_id: c for c in contacts.values() if c.matrix_id}
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

    def name_of(self, matrix_id: str) -> str:
        """How the directory names `matrix_id`, or the ID itself for someone it does not list."""
        contact = self._by_matrix_id.get(matrix_id)
        return contact.name if contact else matrix_id

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
            localpart = (contact.matrix_id or "@:")[1:].split(":", 1)[0].lower()
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
            contact.matrix_id or "",
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
    directory, problems = _Parser().parse(raw)
    if problems:
        # Only a file with problems is read again for its lines: a good one is loaded at full
        # speed (libyaml, or the cache), and this file parsed once already.
        raise DirectoryError(_lines(problems, str(path), Positions.read(text, SAFE_LOADER)))
    assert directory is not None
    return directory


def _refuse_anchors(text: str, path: Path) -> None:
    """Raise DirectoryError if the file has any YAML anchor or alias (merge keys `<<: *x` too).

    Aliases let a few kilobytes stand for gigabytes ("billion laughs": nine levels of nine
    aliases is 387 million strings once the JSON cache or a field's str() walks the value),
    and a directory has no use for them. So the file is first read as parser events, which
    never expand anything (0.1 s on 5,000 contacts), and refused with the lines to rewrite.
    Runs before the cache, so a cached parse of such a file from before this check is refused
    all the same. A file with no `&` or `*` at all cannot hold either, and skips the scan.
    """
    lines = anchor_lines(text)
    if lines:
        shown = ", ".join(str(line) for line in lines[:5])
        more = f" and {len(lines) - 5} more" if len(lines) > 5 else ""
        raise DirectoryError(
            [
                f"{path}: line{'s' if len(lines) > 1 else ''} {shown}{more}: anchors and aliases"
                " (&, *) are not allowed in directory.yaml; write each entry out"
            ]
        )


def anchor_lines(text: str) -> list[int]:
    """The lines of `text` with a YAML anchor or alias, each once, read without expanding any
    (see `_refuse_anchors`); a playbook is refused with them just as the directory is."""
    if "&" not in text and "*" not in text:
        return []
    return list(dict.fromkeys(event.start_mark.line + 1 for event in _anchored_events(text)))


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
    """Validate an already-read file; raise DirectoryError with every problem found (without
    lines: those come from the text, which `load_directory` has)."""
    directory, problems = _Parser().parse(raw)
    if problems:
        raise DirectoryError(_lines(problems, source, None))
    assert directory is not None
    return directory


def _lines(problems: list[Problem], source: str, positions: Positions | None) -> list[str]:
    """One line per problem, in the file's order when its lines are known."""
    if positions is not None:
        problems = sorted(problems, key=lambda p: p.line(positions) or 0)
    return [problem.text(source, positions) for problem in problems]


class _Parser:
    """One pass over the file; every problem is collected, none stops the pass.

    The shape comes first (`shape.read_shape`: unknown keys, wrong types, missing fields), then
    what the values mean and how entries refer to each other. A field the shape already found
    wrong is not reported again.
    """

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self._reported: set[Where] = set()
        self._index: dict[str, int] = {}  # handle -> its place under contacts
        self._misspelt: set[str | None] = set()  # sections present under another key

    def problem(self, path: Where, entry: str, field: str, message: str) -> None:
        problem = Problem(path, entry, field, message)
        if problem.subject not in self._reported:
            self.problems.append(problem)

    def _item_problem(self, at: Where, entry: str, field: str, index: int, message: str) -> None:
        """A problem with one item of a list field (`languages`, `channels`, `groups`)."""
        self.problem((*at, field, index), entry, field, message)

    def parse(self, raw: Any) -> tuple[Directory | None, list[Problem]]:
        if not isinstance(raw, dict):
            expected = "expected sections organisations, contacts, groups"
            return None, [Problem((), None, None, expected)]
        shape, self.problems = read_shape(raw)
        self._reported = {problem.subject for problem in self.problems}
        # A misspelt section (`group:`) is one problem, not one per contact that refers to it.
        self._misspelt = {p.meant for p in self.problems if len(p.path) == 1 and p.meant not in raw}
        groups = self._groups(shape.groups)
        organisations = self._organisations(shape.organisations)
        contacts = self._contacts(shape.contacts, organisations, groups)
        self._check_backups(contacts)
        if self.problems:
            return None, self.problems
        return Directory(organisations, contacts, groups), []

    def _key(self, path: Where, value: str, entry: str, seen: Iterable[str]) -> str | None:
        """The entry's identifying key: present, well-formed, not a duplicate."""
        value = value.strip()
        field = str(path[-1])
        if not value:
            self.problem(path, entry, field, "missing")
            return None
        if value != value.lower() or not re.fullmatch(KEY, value):
            self.problem(path, entry, field, f"`{value}` must be lower-case letters, digits, . _ -")
        if value in seen:
            self.problem(path, entry, field, f"duplicate `{value}`")
        return value

    def _keyed(
        self, section: str, field: str, items: list[tuple[int, Entry]], seen: Iterable[str]
    ) -> Iterator[tuple[int, Where, str, str, Entry]]:
        """The entries of `section` whose key (`field`) is usable, each with its index, where it
        stands, how a problem names it (`contacts[3] jdupont`) and its key; `seen` is read as
        the caller fills it, to tell a duplicate."""
        for index, item in items:
            value: str = getattr(item, field)
            entry = f"{section}[{index}] {value or '?'}"
            at: Where = (section, index)
            key = self._key((*at, field), value, entry, seen)
            if key is not None:
                yield index, at, entry, key, item

    def _groups(self, raw: dict[str, str | None]) -> dict[str, str]:
        for name in raw:
            if not re.fullmatch(KEY, name):
                self.problem(
                    ("groups", name),
                    f"groups {name}",
                    "name",
                    "must be lower-case letters, digits, . _ -",
                )
        return {name: description or "" for name, description in raw.items()}

    def _organisations(self, items: list[tuple[int, OrganisationEntry]]) -> dict[str, Organisation]:
        organisations: dict[str, Organisation] = {}
        for _, at, entry, key, item in self._keyed("organisations", "key", items, organisations):
            kind = item.kind or "other"
            if kind not in ORGANISATION_KINDS:
                self.problem(
                    (*at, "kind"),
                    entry,
                    "kind",
                    f"`{kind}` is not one of {', '.join(ORGANISATION_KINDS)}",
                )
            organisations[key] = Organisation(
                key=key, name=item.name or key, kind=kind, country=item.country or ""
            )
        return organisations

    def _contacts(
        self,
        items: list[tuple[int, ContactEntry]],
        organisations: dict[str, Organisation],
        groups: dict[str, str],
    ) -> dict[str, Contact]:
        contacts: dict[str, Contact] = {}
        matrix_ids: dict[str, str] = {}
        for index, at, entry, handle, item in self._keyed("contacts", "handle", items, contacts):
            self._index[handle] = index  # a duplicate replaces the first, as in `contacts`
            matrix_id = item.matrix_id  # None: reached by e-mail or SMS only (`_channels`)
            if matrix_id is not None:
                self._matrix_id(at, entry, matrix_id, matrix_ids)
                matrix_ids.setdefault(matrix_id, handle)
            if item.organisation not in organisations and "organisations" not in self._misspelt:
                self.problem(
                    (*at, "organisation"),
                    entry,
                    "organisation",
                    f"unknown organisation `{item.organisation}`",
                )
            contacts[handle] = Contact(
                handle=handle,
                name=item.name or handle,
                organisation=item.organisation,
                matrix_id=matrix_id,
                role=self._role(at, item, entry),
                languages=self._languages(at, item, entry),
                timezone=self._timezone(at, item, entry),
                groups=self._contact_groups(at, item, entry, groups),
                backup=item.backup or None,
                email=self._checked(at, entry, "email", item.email, EMAIL, "an e-mail address"),
                phone=self._checked(at, entry, "phone", item.phone, PHONE, "a number in E.164"),
                channels=self._channels(at, item, entry),
            )
        return contacts

    def _matrix_id(self, at: Where, entry: str, matrix_id: str, seen: dict[str, str]) -> None:
        """A Matrix ID, and one no other contact uses."""
        if not MATRIX_USER_ID.match(matrix_id):
            self.problem(
                (*at, "matrix_id"),
                entry,
                "matrix_id",
                f"`{matrix_id}` is not a Matrix ID (@name:server)",
            )
        elif matrix_id in seen:
            self.problem(
                (*at, "matrix_id"),
                entry,
                "matrix_id",
                f"`{matrix_id}` is also used by `{seen[matrix_id]}`",
            )

    def _role(self, at: Where, item: ContactEntry, entry: str) -> Role:
        try:
            role = Role.parse(item.role or "partner")
        except ValueError as exc:
            self.problem((*at, "role"), entry, "role", str(exc))
            return Role.PARTNER
        if role in (Role.LEAD, Role.MEMBER) and item.matrix_id is None:
            self.problem(
                (*at, "role"),
                entry,
                "role",
                f"an {role.value} works in the bot's rooms and needs a `matrix_id`",
            )
        return role

    def _languages(self, at: Where, item: ContactEntry, entry: str) -> tuple[str, ...]:
        languages = tuple(item.languages or ["en"])
        for index, lang in enumerate(languages):
            if lang not in LANGUAGES:
                unsupported = f"`{lang}` is not supported ({', '.join(LANGUAGES)})"
                self._item_problem(at, entry, "languages", index, unsupported)
        return languages

    def _timezone(self, at: Where, item: ContactEntry, entry: str) -> str:
        timezone = item.timezone or "Europe/Brussels"
        try:
            load_zone(timezone)
        except ValueError as exc:
            self.problem((*at, "timezone"), entry, "timezone", str(exc))
        return timezone

    def _checked(
        self, at: Where, entry: str, field: str, value: str | None, form: re.Pattern[str], what: str
    ) -> str | None:
        if value is not None and not form.match(value):
            example = "+32475123456" if field == "phone" else "duty@crisis.example"
            self.problem((*at, field), entry, field, f"`{value}` is not {what} ({example})")
        return value or None

    def _channels(self, at: Where, item: ContactEntry, entry: str) -> tuple[str, ...]:
        """The channels in order, each once; each needs the address it uses, and Matrix, the
        secure channel, comes first when listed. Someone without a Matrix ID is reached, by
        default, on the channels they have an address for."""
        channels = tuple(dict.fromkeys(item.channels or _default_channels(item)))
        if not channels:
            self.problem(
                (*at, "matrix_id"),
                entry,
                "matrix_id",
                "a contact needs a `matrix_id`, an `email` or a `phone` to be reached",
            )
        if "matrix" in channels[1:]:
            self._item_problem(
                at,
                entry,
                "channels",
                channels.index("matrix"),
                "`matrix` comes first when it is listed: a page starts in the secure channel",
            )
        for index, channel in enumerate(channels):
            if channel not in CHANNELS:
                self._item_problem(
                    at, entry, "channels", index, f"`{channel}` is not one of {', '.join(CHANNELS)}"
                )
            needs = {
                "matrix": ("matrix_id", item.matrix_id),
                "email": ("email", item.email),
                "sms": ("phone", item.phone),
            }.get(channel)
            if needs is not None and not needs[1]:
                self._item_problem(
                    at, entry, "channels", index, f"`{channel}` needs the contact's `{needs[0]}`"
                )
        return channels

    def _contact_groups(
        self, at: Where, item: ContactEntry, entry: str, groups: dict[str, str]
    ) -> tuple[str, ...]:
        names = tuple(item.groups or [])
        for index, name in enumerate(names):
            if name not in groups and "groups" not in self._misspelt:
                self._item_problem(
                    at, entry, "groups", index, f"group `{name}` is not declared under groups"
                )
        return names

    def _check_backups(self, contacts: dict[str, Contact]) -> None:
        for contact in contacts.values():
            if contact.backup is None:
                continue
            entry = f"contacts {contact.handle}"
            path = ("contacts", self._index[contact.handle], "backup")
            if contact.backup not in contacts:
                self.problem(path, entry, "backup", f"unknown contact `{contact.backup}`")
                continue
            chain: list[str] = [contact.handle]
            current: str | None = contact.backup
            while current is not None and current in contacts and current not in chain:
                chain.append(current)
                current = contacts[current].backup
            if current == contact.handle:
                self.problem(path, entry, "backup", f"backup cycle {' → '.join([*chain, current])}")


def _default_channels(item: ContactEntry) -> list[str]:
    """Matrix for someone on it; else e-mail, then SMS, as far as they have the address."""
    if item.matrix_id is not None:
        return ["matrix"]
    return [c for c, address in (("email", item.email), ("sms", item.phone)) if address]

"""Every playbook of the playbook folder (`config/playbooks/`), checked with the directory and the
duty rotas it will be applied with.

A playbook is the name of its file: `nuclear.yaml` is playbook `nuclear`. Each file's shape is
checked first (`shape.py`), then what its values mean: owners and targets that are in the
directory (a `duty:<team>` target a team with a rota), groups to invite that are groups, levels
and TLP labels as `activate` takes them, due times, durations and schedules as the commands read
them. Every problem is one line — file, line, item, field, what to do — and all of them are
found in one pass. A playbook with any problem is left out of what is returned, and — like a
bad directory or rota — the caller should refuse the whole set and keep the one in force.
Warnings do not stop anything: a file in the folder that is not a playbook.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

import yaml

from bot.activations.activation import LEVELS, parse_tlp
from bot.directory.model import SAFE_LOADER, Directory, anchor_lines
from bot.directory.shape import KEY, Positions, Where
from bot.errors import UserError
from bot.playbooks.model import (
    NOW,
    OWNER_ROLES,
    ChecklistItem,
    Playbook,
    PlaybookPage,
    PlaybookRound,
)
from bot.playbooks.problems import SECTIONS, PlaybookProblem, place
from bot.playbooks.shape import (
    ROOMS,
    ChecklistEntry,
    PageEntry,
    RoundEntry,
    Shape,
    Texts,
    read_shape,
)
from bot.rota.model import DUTY
from bot.rounds.recurrence import to_cron
from bot.timeutil import load_zone, parse_duration

SUFFIX = ".yaml"
DEFAULT_LEVEL = "monitoring"  # as `activate` without --level
DEFAULT_TLP = "TLP:AMBER"  # as `activate` without --tlp
DIRECTORY_ROLES = {"icc-lead": "lead", "icc-member": "member"}  # what an owner's role is called
_DUE = re.compile(r"^\+\s*(\d+\s*[smhd])$", re.IGNORECASE)


class PlaybookLoad(NamedTuple):
    """What `load_playbooks` found: the playbooks without problems, by key; the problems; and
    the warnings."""

    playbooks: dict[str, Playbook]
    problems: list[PlaybookProblem]
    warnings: list[PlaybookProblem]


def load_playbooks(folder: Path, directory: Directory, teams: Iterable[str] = ()) -> PlaybookLoad:
    """Read every `<key>.yaml` in `folder` (no folder: no playbooks), checked against
    `directory` and the duty rota `teams` (for `duty:<team>` targets)."""
    known = frozenset(teams)
    playbooks: dict[str, Playbook] = {}
    problems: list[PlaybookProblem] = []
    warnings: list[PlaybookProblem] = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.name.startswith(".") or not path.is_file():
            continue
        file = str(path)
        if path.suffix != SUFFIX:
            hint = "; rename it to .yaml" if path.suffix == ".yml" else ""
            message = f"not a playbook (.yaml): ignored{hint}"
            warnings.append(PlaybookProblem(file, None, None, None, message))
            continue
        if not re.fullmatch(KEY, path.stem):
            message = f"`{path.stem}` cannot name a playbook: use lower-case letters, digits, . _ -"
            problems.append(PlaybookProblem(file, None, None, None, message))
            continue
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(PlaybookProblem(file, None, None, None, f"cannot be read: {exc}"))
            continue
        playbook, found = read_playbook(
            text, key=path.stem, file=file, directory=directory, teams=known
        )
        problems += found
        if playbook is not None:
            playbooks[playbook.key] = playbook
    return PlaybookLoad(playbooks, problems, warnings)


def read_playbook(
    text: str, *, key: str, file: str, directory: Directory, teams: Iterable[str] = ()
) -> tuple[Playbook | None, list[PlaybookProblem]]:
    """One playbook's text read and checked: the playbook (None when it has any problem), and
    its problems in the file's order."""
    anchored = anchor_lines(text)
    if anchored:  # as the directory: a few lines could stand for gigabytes
        shown = ", ".join(str(line) for line in anchored[:5])
        more = f" and {len(anchored) - 5} more" if len(anchored) > 5 else ""
        lines = f"line{'s' if len(anchored) > 1 else ''} {shown}{more}"
        message = f"{lines}: anchors and aliases (&, *) are not allowed in a playbook; write it out"
        return None, [PlaybookProblem(file, None, None, None, message)]
    try:
        raw = yaml.load(text, Loader=SAFE_LOADER)
        positions = Positions.read(text, SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        message = f"not valid YAML: {exc}".replace("\n", " ")
        return None, [PlaybookProblem(file, line, None, None, message)]
    shape, problems = read_shape(raw, file, positions)
    if shape is None:
        return None, problems
    reader = _Reader(file, positions, directory, frozenset(teams), problems)
    playbook = reader.read(shape, key)
    found = sorted(reader.problems, key=lambda problem: problem.line or 0)
    return (None if found else playbook), found


def _subject(path: Where) -> Where:
    """The item's field (or the file's key) a problem at `path` is about."""
    return path[:3] if len(path) > 1 and path[0] in SECTIONS else path[:1]


class _Reader:
    """One pass over a playbook whose shape was read; every problem is collected, none stops the
    pass, and a field the shape already found wrong is not reported again."""

    def __init__(
        self,
        file: str,
        at: Positions,
        directory: Directory,
        teams: frozenset[str],
        problems: list[PlaybookProblem],
    ) -> None:
        self.file = file
        self.at = at
        self.directory = directory
        self.teams = teams
        self.problems = list(problems)
        self._reported = {_subject(problem.path) for problem in problems}

    def problem(self, path: Where, message: str, meant: str | None = None) -> None:
        if _subject(path) in self._reported:
            return
        item, field = place(path)
        self.problems.append(
            PlaybookProblem(self.file, self.at.line(path), item, field, message, meant, path)
        )

    def read(self, shape: Shape, key: str) -> Playbook:
        top = shape.top
        return Playbook(
            key=key,
            source=self.file,
            name=self._texts(("name",), top.name),
            description=self._texts(("description",), top.description) if top.description else {},
            level=self._level(top.level),
            tlp=self._tlp(top.tlp),
            exercise=top.exercise,
            invite=tuple(self._group(("invite", i), name) for i, name in enumerate(top.invite)),
            checklist=tuple(self._item(index, entry) for index, entry in shape.checklist),
            pages=tuple(self._page(index, entry) for index, entry in shape.pages),
            rounds=tuple(self._round(index, entry) for index, entry in shape.rounds),
        )

    # -- the file's own keys ----------------------------------------------------------------------

    def _texts(self, path: Where, texts: Texts) -> Mapping[str, str]:
        """The text by language (those given), each stripped; an empty one is a problem."""
        given = {lang: text for lang, text in texts.model_dump().items() if text is not None}
        for lang, text in given.items():
            if not text.strip():
                self.problem((*path, lang), "empty")
        return MappingProxyType({lang: text.strip() for lang, text in given.items()})

    def _level(self, level: str | None) -> str:
        if level is None:
            return DEFAULT_LEVEL
        if level.strip().lower() in LEVELS:
            return level.strip().lower()
        self.problem(
            ("level",), f"`{level}` is not a level: {', '.join(LEVELS)}{_hint(level, LEVELS)}"
        )
        return DEFAULT_LEVEL

    def _tlp(self, tlp: str | None) -> str:
        if tlp is None:
            return DEFAULT_TLP
        try:
            return parse_tlp(tlp)
        except UserError as exc:
            self.problem(("tlp",), str(exc))
            return DEFAULT_TLP

    def _group(self, path: Where, name: str) -> str:
        """A group to invite: declared in the directory, with someone in it on Matrix."""
        key = name.strip().lower()
        directory = self.directory
        if key in directory.groups:
            if not any(person.matrix_id for person in directory.resolve([key]).people):
                self.problem(path, f"nobody in group `{key}` is on Matrix, to be invited")
        elif key in directory.organisations or key in directory.contacts:
            what = "an organisation" if key in directory.organisations else "a person"
            self.problem(path, f"`{key}` is {what}; `invite` names groups of the directory")
        else:
            close = difflib.get_close_matches(key, list(directory.groups), n=1)
            if close:
                self.problem(path, f"unknown group `{key}`; did you mean `{close[0]}`?", close[0])
            else:
                groups = ", ".join(directory.groups) or "none"
                self.problem(path, f"unknown group `{key}` (the directory's groups: {groups})")
        return key

    # -- the items --------------------------------------------------------------------------------

    def _item(self, index: int, entry: ChecklistEntry) -> ChecklistItem:
        at = ("checklist", index)
        return ChecklistItem(
            text=self._texts((*at, "text"), entry.text),
            owner=self._target((*at, "owner"), entry.owner, owner=True),
            due=self._due((*at, "due"), entry.due),
        )

    def _page(self, index: int, entry: PageEntry) -> PlaybookPage:
        at = ("pages", index)
        return PlaybookPage(
            targets=self._targets((*at, "targets"), entry.targets),
            text=self._texts((*at, "text"), entry.text),
            ack=self._duration((*at, "ack"), entry.ack) if entry.ack is not None else None,
            urgent=entry.urgent,
        )

    def _round(self, index: int, entry: RoundEntry) -> PlaybookRound:
        at = ("rounds", index)
        when = " ".join(entry.when.split())
        cron = None
        if when.lower() == NOW:
            when = NOW
        else:
            try:
                cron = to_cron(when)
            except ValueError as exc:
                message = str(exc)
                if "is not a schedule" in message:
                    message += ", or `now` for a round at once"
                self.problem((*at, "when"), message)
        participants = None
        if entry.participants is not None:
            participants = self._targets((*at, "with"), entry.participants)
            for number, key in enumerate(participants):
                self._on_matrix((*at, "with", number), key)
        room = entry.room.strip().lower()
        if room not in ROOMS:
            self.problem((*at, "room"), f"`{entry.room}` is not a room: {' or '.join(ROOMS)}")
        return PlaybookRound(
            when=when,
            cron=cron,
            participants=participants,
            room=room,
            agenda=self._agenda((*at, "agenda"), entry.agenda or []),
            window=self._duration((*at, "window"), entry.window) if entry.window else None,
            tz=self._zone((*at, "tz"), entry.tz) if entry.tz is not None else None,
        )

    # -- values -----------------------------------------------------------------------------------

    def _targets(self, path: Where, keys: list[str]) -> tuple[str, ...]:
        if not keys:
            self.problem(path, "names nobody")
        return tuple(self._target((*path, number), key) for number, key in enumerate(keys))

    def _target(self, path: Where, name: str, *, owner: bool = False) -> str:
        """A target as `page` takes it — a handle, organisation, group, or duty:<team> — that
        stands for someone now; for an owner, also a role (`lead`, `member`)."""
        key = name.strip().lower()
        if owner and key in OWNER_ROLES:
            return key
        if not key:
            self.problem(path, "names nobody")
        elif key.startswith(DUTY):
            self._team(path, key.removeprefix(DUTY))
        elif owner and key in DIRECTORY_ROLES and key not in self.directory.target_keys():
            role = DIRECTORY_ROLES[key]
            self.problem(path, f"`{key}` is a role of the directory; write `{role}`", role)
        else:
            resolution = self.directory.resolve([key])
            if resolution.unknown:
                meant = resolution.unknown[0][1]
                hint = f"; did you mean `{meant}`?" if meant else ""
                roles = " (or a role: lead, member)" if owner and not meant else ""
                self.problem(path, f"unknown target `{key}`{hint}{roles}", meant)
            elif not resolution.people:
                self.problem(path, f"`{key}` stands for nobody in the directory")
        return key

    def _team(self, path: Where, team: str) -> None:
        if team in self.teams:
            return
        close = difflib.get_close_matches(team, sorted(self.teams), n=1)
        if close:
            meant = f"{DUTY}{close[0]}"
            self.problem(path, f"no duty rota for team `{team}`; did you mean `{meant}`?", meant)
        else:
            teams = ", ".join(sorted(self.teams)) or "none configured"
            self.problem(path, f"no duty rota for team `{team}` (teams: {teams})")

    def _on_matrix(self, path: Where, key: str) -> None:
        """A round takes its reports on Matrix: everyone a participant stands for is on it (the
        people on duty in a team are checked when the round starts)."""
        if key.startswith(DUTY):
            return
        off = [p.handle for p in self.directory.resolve([key]).people if p.matrix_id is None]
        if off:
            self.problem(
                path,
                f"`{key}` includes {', '.join(off)}, not on Matrix, where a round takes its "
                "reports; name people on Matrix",
            )

    def _due(self, path: Where, text: str) -> timedelta:
        found = _DUE.match(text.strip())
        if found is None:
            self.problem(
                path,
                f"`{text}` is not a time after activation: a + and a number and a unit, such "
                "as +15m, +2h, +1d",
            )
            return timedelta(0)
        return self._duration(path, found.group(1))

    def _duration(self, path: Where, text: str) -> timedelta:
        try:
            return parse_duration(text)
        except ValueError as exc:
            self.problem(path, str(exc))
            return timedelta(0)

    def _agenda(self, path: Where, items: list[str]) -> tuple[str, ...]:
        for number, item in enumerate(items):
            if not item.strip():
                self.problem((*path, number), "an empty agenda item")
            elif ";" in item:
                self.problem((*path, number), "an agenda item cannot hold `;`: make it two items")
        return tuple(item.strip() for item in items)

    def _zone(self, path: Where, name: str) -> str:
        try:
            load_zone(name)
        except ValueError as exc:
            self.problem(path, str(exc))
        return name


def _hint(value: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(value.strip().lower(), list(choices), n=1)
    return f"; did you mean `{close[0]}`?" if close else ""

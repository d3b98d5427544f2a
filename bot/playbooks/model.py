"""Playbooks as the rest of the bot uses them: immutable, checked against the directory and the
rotas in force when they were loaded, texts per language, due times as offsets from the moment
the activation opens.

Each part mirrors the command it stands for, so applying a playbook is running those commands:
a `ChecklistItem` is an action (its owner a role, `lead` or `member`, resolved when the playbook
is applied, or a target), a `PlaybookPage` is `page <targets> <text> [--ack] [--urgent]`, a
`PlaybookRound` is `round schedule <when> [--with] [--room] [--agenda] [--window] [--tz]` (or
`round now`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

BASE_LANGUAGE = "en"
OWNER_ROLES = ("lead", "member")  # lead: the activation's lead; member: one of the ICC roster
NOW = "now"  # a round's `when` for a round at once, as `round now`


def text_in(texts: Mapping[str, str], languages: tuple[str, ...]) -> str:
    """The text in the first of `languages` it has, else in English (which every text has)."""
    for lang in languages:
        if lang in texts:
            return texts[lang]
    return texts[BASE_LANGUAGE]


@dataclass(frozen=True)
class ChecklistItem:
    """Something someone must do by a time after the activation opens: an action."""

    text: Mapping[str, str]  # by language; "en" always there
    owner: str  # "lead", "member", or a target: handle, organisation, group, duty:<team>
    due: timedelta  # after the activation opens

    def text_for(self, *languages: str) -> str:
        """The text in the first of `languages` it has (a contact's, in their order), else
        English."""
        return text_in(self.text, languages)

    @property
    def role(self) -> str | None:
        """`lead` or `member` when the owner is a role, resolved when the playbook is applied;
        None when it is a target."""
        return self.owner if self.owner in OWNER_ROLES else None


@dataclass(frozen=True)
class PlaybookPage:
    """A page sent as the playbook is applied, as `page` sends it."""

    targets: tuple[str, ...]  # handles, organisations, groups, duty:<team>
    text: Mapping[str, str]
    ack: timedelta | None  # None: as `page` without --ack (ICC_ACK_TIMEOUT; 5m when urgent)
    urgent: bool

    def text_for(self, *languages: str) -> str:
        return text_in(self.text, languages)


@dataclass(frozen=True)
class PlaybookRound:
    """A coordination round scheduled as the playbook is applied, as `round schedule` (or, for
    `when` "now", `round now`) takes it."""

    when: str  # as written: every 2h, daily 08:00, weekdays 08:30, a cron, or now
    cron: str | None  # what `when` runs on (bot.rounds.recurrence.to_cron); None for now
    participants: tuple[str, ...] | None  # --with; None: the round's default audience
    room: str  # here (the activation room) or dg
    agenda: tuple[str, ...]  # empty: the default agenda
    window: timedelta | None  # None: the round's default (30m)
    tz: str | None  # None: ICC_TIMEZONE

    @property
    def agenda_text(self) -> str | None:
        """The agenda as `--agenda` takes it (items separated by `;`), or None."""
        return "; ".join(self.agenda) if self.agenda else None


@dataclass(frozen=True)
class Playbook:
    """One kind of crisis: how its activation opens and what is done first."""

    key: str  # the file's name: nuclear for nuclear.yaml
    source: str  # the file it was read from
    name: Mapping[str, str]
    description: Mapping[str, str]  # empty when the file has none
    level: str  # monitoring, information-sharing, full
    tlp: str  # the canonical label: TLP:AMBER
    exercise: bool
    invite: tuple[str, ...]  # directory groups invited into the activation room
    checklist: tuple[ChecklistItem, ...]
    pages: tuple[PlaybookPage, ...]
    rounds: tuple[PlaybookRound, ...]

    def name_for(self, *languages: str) -> str:
        return text_in(self.name, languages)

    def description_for(self, *languages: str) -> str:
        return text_in(self.description, languages) if self.description else ""

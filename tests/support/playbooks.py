"""Playbooks read by tests: the samples, edited copies of them, and a copy of the sample
configuration (directory, rotas, playbooks) to load and reload."""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.playbooks.load import PlaybookLoad, load_playbooks, read_playbook
from tests.support.rota import REPO, sample_directory

PLAYBOOKS = REPO / "config" / "playbooks"
SAMPLES = ("belgians-abroad", "exercise", "health", "nuclear", "terror")
TEAMS = ("ercc", "icc")  # the sample rotas' teams (config/rota/)


def sample_text(key: str) -> str:
    return (PLAYBOOKS / f"{key}.yaml").read_text(encoding="utf-8")


def edited(key: str, *changes: tuple[str, str]) -> str:
    """The sample `key` with each `(old, new)` replaced once; an `old` not in it fails."""
    text = sample_text(key)
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def problems_of(text: str, key: str = "nuclear") -> list[str]:
    """The problems of a playbook's text, checked against the sample directory and rotas, as
    `config/playbooks/<key>.yaml` would show them."""
    playbook, found = read_playbook(
        text,
        key=key,
        file=f"config/playbooks/{key}.yaml",
        directory=sample_directory(),
        teams=TEAMS,
    )
    assert (playbook is None) == bool(found)
    return [str(problem) for problem in found]


def load_samples() -> PlaybookLoad:
    return load_playbooks(PLAYBOOKS, sample_directory(), TEAMS)


def sample_config(into: Path) -> Path:
    """A copy of the sample configuration (directory, rotas, playbooks) in `into`; the path of
    its directory.yaml."""
    shutil.copytree(REPO / "config", into, dirs_exist_ok=True)
    return into / "directory.yaml"

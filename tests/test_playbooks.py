"""Playbooks (issue 22, the files): the samples load, a broken one is refused with every problem
at once and its line, a reload with one keeps what is in force, and the schema editors use."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest
import yaml

from bot.directory import keeper as keeper_module
from bot.directory.shape import LANGUAGES
from bot.playbooks.load import load_playbooks
from bot.playbooks.model import ChecklistItem, PlaybookPage, PlaybookRound
from bot.playbooks.shape import Texts
from bot.storage.db import Database
from tests.support.playbooks import (
    PLAYBOOKS,
    SAMPLES,
    TEAMS,
    edited,
    load_samples,
    problems_of,
    sample_config,
    sample_text,
)
from tests.support.processes import run_cli
from tests.support.rota import sample_directory

SETTINGS = {
    "ICC_HOMESERVER": "https://matrix.crisis.example",
    "ICC_USER_ID": "@iccbot:crisis.example",
    "ICC_PASSWORD": "a-real-secret-value",
    "ICC_STORE_KEY": "another-long-random-value",
}
# The problems of the sample `nuclear` with a wrong level, a misspelt key, an unknown owner, an
# unknown key and a due time that is not one — all of them at once, in the file's order; the
# operator's guide shows them (docs/operations.md, "Playbooks").
BROKEN = (
    ("level: information-sharing", "level: ful"),
    ("invite: [national]", "invites: [national]"),
    ("owner: fpsfa", "owner: fpsaf"),
    ("owner: member", "who: member"),
    ("due: +1h", "due: +15x"),
)
BROKEN_PROBLEMS = [
    "config/playbooks/nuclear.yaml: line 35: level: `ful` is not a level: monitoring, "
    "information-sharing, full; did you mean `full`?",
    "config/playbooks/nuclear.yaml: line 37: invites: unknown key; did you mean `invite`?",
    "config/playbooks/nuclear.yaml: line 52: checklist[2]: owner: unknown target `fpsaf`; "
    "did you mean `fpsfa`?",
    "config/playbooks/nuclear.yaml: line 58: checklist[3]: owner: missing",
    "config/playbooks/nuclear.yaml: line 58: checklist[3]: who: unknown key; the keys here "
    "are text, owner, due",
    "config/playbooks/nuclear.yaml: line 65: checklist[4]: due: `+15x` is not a time after "
    "activation: a + and a number and a unit, such as +15m, +2h, +1d",
]


def test_every_sample_playbook_loads_against_the_sample_directory_and_rotas() -> None:
    playbooks, problems, warnings = load_samples()
    assert (problems, warnings) == ([], [])
    assert sorted(playbooks) == list(SAMPLES)
    assert all(book.checklist and book.pages and book.rounds for book in playbooks.values())


def test_a_playbook_is_what_its_file_says_ready_to_apply() -> None:
    """Texts per language with English as the fallback, due times as offsets from activation,
    defaults as `page` and `round schedule` have them."""
    nuclear = load_samples().playbooks["nuclear"]
    assert (nuclear.level, nuclear.tlp, nuclear.exercise) == (
        "information-sharing",
        "TLP:AMBER",
        False,
    )
    assert nuclear.invite == ("national",)
    first = nuclear.checklist[0]
    assert (first.owner, first.role, first.due) == ("duty:icc", None, timedelta(minutes=15))
    assert first.text_for("fr").startswith("Confirmer la notification ECURIE/USIE")
    assert first.text_for("de", "nl").startswith("De ECURIE/USIE-melding")  # first they have
    assert first.text_for("de") == first.text["en"]  # no German: English
    assert nuclear.checklist[1] == ChecklistItem(
        text=nuclear.checklist[1].text, owner="lead", due=timedelta(minutes=15)
    )
    assert nuclear.checklist[1].role == "lead"
    page = nuclear.pages[0]
    assert page == PlaybookPage(("fanc", "fpsfa"), page.text, timedelta(minutes=15), True)
    assert nuclear.rounds[0] == PlaybookRound(
        when="every 2h",
        cron="0 */2 * * *",
        participants=("icc", "fanc", "fpsfa"),
        room="here",
        agenda=nuclear.rounds[0].agenda,
        window=timedelta(minutes=30),
        tz=None,
    )
    assert nuclear.rounds[0].agenda_text == "; ".join(nuclear.rounds[0].agenda)


def test_one_text_is_the_text_in_every_language() -> None:
    terror = load_samples().playbooks["terror"]
    ercc = next(page for page in terror.pages if page.targets == ("duty:ercc",))
    assert set(ercc.text) == {"en"}
    assert ercc.text_for("fr") == ercc.text_for("nl") == ercc.text["en"]


def test_texts_are_in_the_languages_the_bot_speaks() -> None:
    assert tuple(Texts.model_fields) == LANGUAGES


def test_a_broken_playbook_is_refused_with_every_problem_its_line_and_field() -> None:
    assert problems_of(edited("nuclear", *BROKEN)) == BROKEN_PROBLEMS


def test_a_broken_playbook_is_left_out_and_the_others_load(tmp_path: Path) -> None:
    (tmp_path / "nuclear.yaml").write_text(edited("nuclear", *BROKEN), encoding="utf-8")
    (tmp_path / "terror.yaml").write_text(sample_text("terror"), encoding="utf-8")
    (tmp_path / "notes.yml").write_text("name: notes\n", encoding="utf-8")
    playbooks, problems, warnings = load_playbooks(tmp_path, sample_directory(), TEAMS)
    assert list(playbooks) == ["terror"]
    assert {problem.file for problem in problems} == {str(tmp_path / "nuclear.yaml")}
    assert [str(w) for w in warnings] == [
        f"{tmp_path}/notes.yml: not a playbook (.yaml): ignored; rename it to .yaml"
    ]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            ("  en: Nuclear or radiological accident abroad\n", ""),
            "line 14: name.en: missing: every text has its English version",
        ),
        (
            ("  de: Nuklearer oder", "  da: Nuklearer oder"),
            "line 18: name.da: not a language of the bot; the languages are en, fr, nl, de",
        ),
        (("tlp: amber", "tlp: orange"), "line 36: tlp: `orange` is not a TLP label"),
        (
            ("invite: [national]", "invite: [fanc]"),
            "line 37: invite: `fanc` is an organisation; `invite` names groups of the directory",
        ),
        (
            ("owner: duty:icc", "owner: duty:ecc"),
            "line 40: checklist[0]: owner: no duty rota for team `ecc`; did you mean `duty:ercc`?",
        ),
        (
            ("owner: lead", "owner: icc-lead"),
            "line 46: checklist[1]: owner: `icc-lead` is a role of the directory; write `lead`",
        ),
        (("ack: 15m", "ack: 15"), "line 92: pages[0]: ack: expected text, got the number `15`"),
        (("urgent: true", "urgent: yes please"), "line 91: pages[0]: urgent: expected true or"),
        (
            ("targets: [benelux]", "targets: [benelux, nl-nccc]"),
            "line 105: pages[1]: targets: unknown target `nl-nccc`; did you mean `nl-ncc`?",
        ),
        (
            ("when: every 2h", "when: every 7m"),
            "line 125: rounds[0]: when: `every 7m`: the interval",
        ),
        (
            ("with: [icc, fanc, fpsfa]", "with: [icc, embassies]"),
            "line 126: rounds[0]: with: `embassies` includes emb-de, not on Matrix",
        ),
        (("window: 30m", "window: half an hour"), "line 127: rounds[0]: window: `half an hour`"),
        (
            ("      - Public information\n", "      - Public information; press\n"),
            "line 133: rounds[0]: agenda: an agenda item cannot hold `;`",
        ),
    ],
)
def test_a_value_the_bot_cannot_use_is_refused_with_its_line(
    change: tuple[str, str], problem: str
) -> None:
    [found] = problems_of(edited("nuclear", change))
    assert found.removeprefix("config/playbooks/nuclear.yaml: ").startswith(problem), found


def test_yaml_anchors_are_refused_before_anything_expands_them() -> None:
    text = sample_text("nuclear").replace("invite: [national]", "invite: &i [national]", 1)
    text += "\npages: *i\n"
    assert problems_of(text) == [
        "config/playbooks/nuclear.yaml: lines 37, 135: anchors and aliases (&, *) are not "
        "allowed in a playbook; write it out"
    ]


async def test_a_reload_with_a_broken_playbook_keeps_the_directory_rotas_and_playbooks(
    tmp_path: Path,
) -> None:
    """SIGHUP and `icc-bot directory reload` land in DirectoryKeeper.reload: a problem in one
    playbook refuses all three files, even a directory without problems, and says why in the
    status file the reload command reads."""
    path = sample_config(tmp_path / "config")
    db = Database(f"sqlite:///{tmp_path / 'icc.db'}")
    await db.upgrade()
    try:
        keeper = keeper_module.DirectoryKeeper(path, db, tmp_path)
        assert await keeper.reload()
        directory, rotas, playbooks = keeper.current, keeper.rotas, keeper.playbooks
        assert sorted(playbooks) == list(SAMPLES)
        path.write_text(path.read_text().replace("name: An Mertens", "name: An Mertens-Peeters"))
        (path.parent / "playbooks" / "nuclear.yaml").write_text(edited("nuclear", *BROKEN))
        assert not await keeper.reload()
        assert keeper.current is directory
        assert keeper.rotas is rotas
        assert keeper.playbooks is playbooks
        status = json.loads((tmp_path / keeper_module.STATUS_FILE).read_text())
        folder = f"{path.parent}/"
        assert status["problems"] == [line.replace("config/", folder) for line in BROKEN_PROBLEMS]
    finally:
        await db.dispose()


def test_check_prints_every_playbook_problem_and_exits_2(tmp_path: Path) -> None:
    path = sample_config(tmp_path)
    (path.parent / "playbooks" / "nuclear.yaml").write_text(edited("nuclear", *BROKEN))
    result = run_cli(SETTINGS | {"ICC_CONFIG_DIR": str(tmp_path)}, "check")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{len(BROKEN_PROBLEMS)} directory, rota and playbook problems:",
        *[f"  {line.replace('config/', f'{tmp_path}/')}" for line in BROKEN_PROBLEMS],
    ]


def test_check_names_the_playbooks_it_loaded() -> None:
    result = run_cli(SETTINGS | {"ICC_CONFIG_DIR": str(PLAYBOOKS.parent)}, "check")
    assert result.returncode == 0, result.stderr
    assert f"; 5 playbooks ({', '.join(SAMPLES)})" in result.stdout


def test_the_schema_command_prints_a_json_schema_the_samples_meet_and_typos_do_not() -> None:
    """`icc-bot directory schema playbook` needs no configuration; editors check a playbook
    against it as it is written."""
    result = run_cli({}, "directory", "schema", "playbook")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for key in SAMPLES:
        assert list(validator.iter_errors(yaml.safe_load(sample_text(key)))) == [], key
    for old, new, where in [
        ("invite: [national]", "invites: [national]", ()),
        ("owner: lead", "ownr: lead", ("checklist", 1)),
        ("  de: Nuklearer", "  da: Nuklearer", ("name",)),
    ]:
        raw = yaml.safe_load(edited("nuclear", (old, new)))
        errors = list(validator.iter_errors(raw))
        assert errors
        assert {tuple(error.absolute_path) for error in errors} == {where}, new

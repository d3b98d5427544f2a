"""Everyday use on the real homeserver, item by item (issue 18): a typo in the directory refused
on reload while the directory in force goes on working, a deadline read in the partner's own
language, and the rounds as the closing record keeps them."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from bot.directory.keeper import STATUS_FILE
from tests.support.bots import RunningBot
from tests.support.cast import Cast, paging_directory
from tests.support.matrix_people import Person, body
from tests.support.processes import run_cli, start_process, wait_for_log
from tests.support.reading import posted_file
from tests.support.rooms import activation_room, page_received, replacing, shared_room

BRUSSELS = ZoneInfo("Europe/Brussels")
GHOST = "@ghost:nowhere.example"  # as in the `paging_env` directory


# -- a typo in the directory, on reload ------------------------------------------------------------

# (whose entry, the key meant, the key typed, how the problem names the entry)
TYPOS = [
    ("partner", "languages", "langauges", "contacts[2] partner"),
    ("partner", "backup", "backups", "contacts[2] partner"),
    (None, "groups", "group", "top level"),
]


def with_typo(cast: Cast, handle: str | None, meant: str, typed: str) -> tuple[str, int]:
    """The `paging_env` directory as YAML with `meant` typed as `typed` in the contact `handle`
    (at the top level for None), and the line the typo is on."""
    directory = paging_directory(cast, ghost=GHOST)
    holder: dict[str, Any] = directory
    if handle is not None:
        holder = next(c for c in directory["contacts"] if c["handle"] == handle)
    holder[typed] = holder.pop(meant)
    text = yaml.safe_dump(directory, allow_unicode=True)
    [line] = [
        number
        for number, written in enumerate(text.splitlines(), 1)
        if written.lstrip("- ").startswith(f"{typed}:")
    ]
    return text, line


@contextmanager
def bot_process(env: dict[str, str], log_path: Path) -> Iterator[Any]:
    """`icc-bot run` as the operator runs it, stopped by SIGTERM at the end."""
    process = start_process(env, log_path)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0


@pytest.mark.synapse
async def test_a_typo_in_the_directory_is_refused_on_reload_with_its_line_and_the_key_meant(
    paging_env: dict[str, str], people: dict[str, Person], cast: Cast, tmp_path: Path
) -> None:
    """`icc-bot directory reload` beside the running bot: each typo is refused with the file,
    the line, the entry, the key typed and the key meant; the contact reads as before."""
    path = Path(paging_env["ICC_CONFIG_DIR"]) / "directory.yaml"
    log_path = tmp_path / "bot.log"
    with bot_process(paging_env, log_path):
        await wait_for_log(log_path, "INFO bot.app: ready")
        room = await shared_room(people, cast)
        for handle, meant, typed, entry in TYPOS:
            text, line = with_typo(cast, handle, meant, typed)
            path.write_text(text)
            result = run_cli(paging_env, "directory", "reload")
            assert result.returncode == 2, result.stderr
            problem = f"{path}: line {line}: {entry}: {typed}: unknown key; did you mean `{meant}`?"
            assert result.stderr.splitlines()[:2] == ["1 directory problem:", f"  {problem}"]
            assert "the running bot keeps its directory" in result.stderr

        card = body(await people["member"].ask(room, "!icc contact partner", cast.bot.user_id))
        assert "Languages: fr, en" in card
        assert "Backup: dg (Dg)" in card
        assert "Groups: icc" in card


@pytest.mark.synapse
async def test_a_directory_with_a_typo_reread_on_sighup_leaves_the_backup_in_force(
    paging_env: dict[str, str], people: dict[str, Person], cast: Cast, tmp_path: Path
) -> None:
    """A plain `kill -HUP` (no check first): the bot itself refuses the file, says where in its
    log and its status file, and a page the partner leaves unanswered still reaches the backup
    the refused file misspelt."""
    path = Path(paging_env["ICC_CONFIG_DIR"]) / "directory.yaml"
    log_path = tmp_path / "bot.log"
    with bot_process(paging_env, log_path) as process:
        await wait_for_log(log_path, "INFO bot.app: ready")
        _ref, room = await activation_room(people, cast, "Dyke watch")
        text, line = with_typo(cast, "partner", "backup", "backups")
        path.write_text(text)
        process.send_signal(signal.SIGHUP)
        problem = f"{path}: line {line}: contacts[2] partner: backups: unknown key; did you mean `backup`?"
        await wait_for_log(log_path, problem)
        assert "directory reload refused, the previous directory stays in force" in (
            log_path.read_text()
        )
        status = json.loads((Path(paging_env["ICC_DATA_DIR"]) / STATUS_FILE).read_text())
        assert (status["ok"], status["problems"]) == (False, [problem])

        await people["member"].send(room, "!icc page partner Dyke at Visé holding? --ack 2s")
        await page_received(people["partner"], cast, "Dyke at Visé")  # and left unanswered
        _dm, backup_page = await page_received(people["dg"], cast, "Dyke at Visé", timeout=30)
        assert "Partner hat nicht geantwortet" in body(backup_page)


# -- deadlines in the reader's language -------------------------------------------------------------

# Each reader's language, as the `paging_env` directory has it: partner fr, deputy nl, dg de.
READERS = {"partner": "fr", "deputy": "nl", "dg": "de"}
BRUSSELS_IN = {"fr": "Bruxelles", "nl": "Brussel", "de": "Brüssel"}
SUNDAY_IN = {"fr": "dim. {day}", "nl": "zo {day}", "de": "So., {day}."}  # as each writes it
MONTHS_IN = {  # abbreviated, January to December
    "fr": "janv. févr. mars avr. mai juin juil. août sept. oct. nov. déc.",
    "nl": "jan feb mrt apr mei jun jul aug sep okt nov dec",
    "de": "Jan. Feb. März Apr. Mai Juni Juli Aug. Sept. Okt. Nov. Dez.",
}


def next_sunday_afternoon() -> datetime:
    """14:28 Brussels on a Sunday at least two days ahead: a deadline whose weekday is known."""
    today = datetime.now(BRUSSELS).date()
    ahead = (6 - today.weekday()) % 7
    day = today + timedelta(days=ahead if ahead >= 2 else ahead + 7)
    return datetime.combine(day, time(14, 28), tzinfo=BRUSSELS)


@pytest.mark.synapse
async def test_an_input_request_deadline_reads_in_each_partners_language(
    paging_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    """Weekday, month and city in the reader's language, the UTC part as it is, in the text and
    the HTML their client shows: `dim. 29 nov. 14:28 Bruxelles (13:28Z)`."""
    _ref, room = await activation_room(people, cast, "Meuse flooding")
    deadline = next_sunday_afternoon()
    asked = await people["member"].ask(
        room,
        f"!icc ask partner,deputy,dg Close the Meuse to shipping? --by {deadline:%Y-%m-%dT%H:%M}",
        cast.bot.user_id,
    )
    assert "RQ-" in body(asked)
    utc = f"({deadline.astimezone(UTC):%H:%M}Z)"
    sentence = {
        "fr": "Merci de répondre avant {}.",
        "nl": "Gelieve te antwoorden vóór {}.",
        "de": "Bitte antworten Sie bis {}.",
    }
    for role, lang in READERS.items():
        _dm, request = await page_received(people[role], cast, "Close the Meuse to shipping?")
        written = (
            f"{SUNDAY_IN[lang].format(day=deadline.day)} "
            f"{MONTHS_IN[lang].split()[deadline.month - 1]} "
            f"14:28 {BRUSSELS_IN[lang]} {utc}"
        )
        assert sentence[lang].format(written) in body(request), (role, body(request))
        assert f"<b>{written}</b>" in request["content"]["formatted_body"]


@pytest.mark.synapse
async def test_a_page_deadline_reads_in_each_partners_language(
    paging_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    """A page's ack deadline is a time today: the city in the reader's language, the local time
    and the UTC part of the same moment, two hours after the page."""
    _ref, room = await activation_room(people, cast, "Meuse flooding")
    before = datetime.now(UTC)
    await people["member"].send(room, "!icc page partner,deputy,dg Pumps to Visé --ack 2h")
    pages = {
        role: (await page_received(people[role], cast, "Pumps to Visé"))[1] for role in READERS
    }
    after = datetime.now(UTC)
    sentence = {
        "fr": "Merci d’accuser réception avant {}",
        "nl": "Gelieve de ontvangst te bevestigen vóór {}",
        "de": "Bitte bestätigen Sie den Empfang bis {}",
    }
    for role, lang in READERS.items():
        # The deadline was taken between the two readings of the clock: one of their minutes.
        possible = [
            sentence[lang].format(
                f"{moment.astimezone(BRUSSELS):%H:%M} {BRUSSELS_IN[lang]} ({moment:%H:%M}Z)"
            )
            for moment in (before + timedelta(hours=2), after + timedelta(hours=2))
        ]
        assert any(p in body(pages[role]) for p in possible), (possible, body(pages[role]))


# -- the rounds in the closing record ---------------------------------------------------------------


def round_ref(prompt: dict) -> str:
    return body(prompt).split("COORDINATION ROUND ")[1].split(" ")[0]


async def partner_reports_and_corrects(
    people: dict[str, Person], cast: Cast, room: str, first: str, corrected: str
) -> str:
    """A round with the partner and the member, begun by the member: the partner (invited to
    the room by the round) reports `first`, then edits that message to say `corrected`. Its
    RD-n."""
    member, partner = people["member"], people["partner"]
    bot = cast.bot.user_id
    await member.send(room, "!icc round now --with partner,member --agenda Dykes; roads")
    await partner.wait_for_invite(room)
    await partner.join(room)
    prompt = await partner.wait_for(
        room, lambda e: "COORDINATION ROUND" in body(e) and "Partner" in body(e), sender=bot
    )
    rd = round_ref(prompt)
    original = await partner.send(room, f"!icc update {first}")
    assert f"Recorded for {rd} #1" in body(await partner.wait_for_reply(room, original, bot))
    command = f"!icc update {corrected}"
    edit = await partner.send(room, f"* {command}", **replacing(original, command))
    assert f"Recorded for {rd} #1" in body(await partner.wait_for_reply(room, edit, bot))
    return rd


@pytest.mark.synapse
async def test_the_record_keeps_every_round_run_each_version_of_an_update_and_who_did_not_report(
    paging_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    """One run ends on its own with nobody reporting; in the next, the partner reports and
    corrects the report by editing it, and close ends that run. The record files downloaded
    from the room hold both runs with their agenda and times, both versions of the update in
    order, and who did not report."""
    ref, room = await activation_room(people, cast, "Dyke watch")
    lead, member = people["lead"], people["member"]
    bot = cast.bot.user_id
    await member.send(room, "!icc round now --with member,lead --window 3s --agenda Sandbags")
    rd1 = round_ref(
        await member.wait_for(room, lambda e: "COORDINATION ROUND" in body(e), sender=bot)
    )
    await member.wait_for(room, lambda e: f"{rd1} #1 closed" in body(e), sender=bot)
    rd2 = await partner_reports_and_corrects(
        people, cast, room, "Dyke holding at Visé", "Dyke breached at Visé, 20 m"
    )
    await lead.ask(room, "!icc close Water receding", bot)

    record = json.loads(await posted_file(lead, room, cast, f"{ref}-record.json"))
    runs = [
        (run["round"], run["number"], run["agenda"], run["status"], run["did_not_report"])
        for run in record["rounds"]
    ]
    assert runs == [
        (rd1, 1, "Sandbags", "closed", ["Lead", "Member"]),
        (rd2, 1, "Dykes; roads", "closed", ["Member"]),
    ]
    assert all(run["started_at"] and run["closed_at"] for run in record["rounds"])
    assert record["rounds"][0]["updates"] == []
    updates = [(u["name"], u["via"], u["text"]) for u in record["rounds"][1]["updates"]]
    assert updates == [
        ("Partner", "command", "Dyke holding at Visé"),
        ("Partner", "edit", "Dyke breached at Visé, 20 m"),
    ]

    markdown = (await posted_file(lead, room, cast, f"{ref}-record.md")).decode()
    rounds = markdown.split("## Coordination rounds\n")[1].split("\n## ")[0]
    assert re.search(
        rf"### {rd1} #1 — closed, started \S+\nAgenda: Sandbags\nDid not report: Lead, Member\.",
        rounds,
    ), rounds
    assert re.search(
        rf"### {rd2} #1 — closed, started \S+\nAgenda: Dykes; roads\n"
        r"- Partner \(\S+, command\): Dyke holding at Visé\n"
        r"- Partner \(\S+, edit\): Dyke breached at Visé, 20 m\n"
        r"Did not report: Member\.",
        rounds,
    ), rounds


@pytest.mark.synapse
async def test_a_round_summary_gives_an_edited_update_in_its_latest_version(
    paging_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    """The partner's correction is what the room reads when the round ends, not the report it
    corrected beside it (the record keeps both); a further update of theirs still counts."""
    _ref, room = await activation_room(people, cast, "Dyke watch")
    rd = await partner_reports_and_corrects(
        people, cast, room, "Dyke holding at Visé", "Dyke breached at Visé, 20 m"
    )
    bot = cast.bot.user_id
    await people["partner"].ask(room, "!icc update Roads N90 closed", bot)
    await people["lead"].ask(room, "!icc close Water receding", bot)
    summary = await people["lead"].wait_for(
        room, lambda e: f"{rd} #1 closed" in body(e), sender=bot
    )
    assert "• Partner: Dyke breached at Visé, 20 m / Roads N90 closed\n" in body(summary)
    assert "holding" not in body(summary)


@pytest.mark.synapse
async def test_close_posts_the_running_rounds_summary_before_its_record_and_report(
    paging_bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    """What was reported in a round still running is said in the room before the activation's
    record and closing report, in the order a client shows them."""
    ref, room = await activation_room(people, cast, "Dyke watch")
    lead, member = people["lead"], people["member"]
    bot = cast.bot.user_id
    await member.send(room, "!icc round now --with member,lead --agenda Dykes")
    await member.wait_for(room, lambda e: "COORDINATION ROUND" in body(e), sender=bot)
    await member.ask(room, "!icc update Dyke holding at Visé", bot)

    report = await lead.ask(room, "!icc close Water receding", bot)
    assert f"{ref} closed by Lead" in body(report)
    said = [body(e) for e in lead.events(room, bot)]
    summaries = [i for i, text in enumerate(said) if " #1 closed — " in text]
    assert len(summaries) == 1, said
    summary = summaries[0]
    assert "Member: Dyke holding at Visé" in said[summary]
    assert "No report from: Lead." in said[summary]
    record = said.index(f"{ref}-record.md")
    assert summary < record < said.index(body(report))

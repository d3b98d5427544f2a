"""The liaison directory: targets, search, languages, history, reload, and its commands."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bot.directory import keeper as keeper_module
from bot.directory.model import (
    Contact,
    Directory,
    DirectoryError,
    load_directory,
    parse_directory,
)
from bot.directory.roles import Role
from bot.render import Renderer
from bot.storage.db import Database
from bot.storage.directory_store import contact_rows, store_directory
from tests.support.bots import bot_running
from tests.support.cast import Cast, desk_cast
from tests.support.databases import BACKENDS
from tests.support.desk import Desk
from tests.support.matrix_people import Person, body
from tests.support.processes import run_cli, start_ready
from tests.support.rooms import bot_joined, bot_left, shared_room

REPO = Path(__file__).resolve().parent.parent


def sample() -> dict[str, Any]:
    return yaml.safe_load((REPO / "config" / "directory.yaml").read_text())


@pytest.fixture
def directory() -> Directory:
    return parse_directory(sample(), source="directory.yaml")


def test_a_cached_parse_is_used_only_for_the_same_text(tmp_path: Path) -> None:
    """The start-up cache (bench/: YAML parsing was a second of every start) never serves a
    stale directory: it is keyed by the file's SHA-256, and a file JSON cannot hold exactly is
    never cached."""
    path, cache = tmp_path / "directory.yaml", tmp_path / "cache.json"
    path.write_text(yaml.safe_dump(sample()))
    first = load_directory(path, cache=cache)
    assert cache.exists()
    assert load_directory(path, cache=cache).contacts.keys() == first.contacts.keys()
    changed = sample()
    handle = changed["contacts"][0]["handle"]
    changed["contacts"][0]["name"] = "Renamed Since"
    path.write_text(yaml.safe_dump(changed))
    assert load_directory(path, cache=cache).contacts[handle].name == "Renamed Since"
    cache.unlink()
    changed["groups"]["dated"] = "x"
    path.write_text(yaml.safe_dump(changed).replace("dated: x", "dated: 2026-01-01"))  # a date
    with pytest.raises(DirectoryError, match="groups dated: description: expected text"):
        load_directory(path, cache=cache)  # no YAML-only value is text, so refused as well
    assert not cache.exists()


def test_resolve_handles_organisations_and_groups(directory: Directory) -> None:
    resolution = directory.resolve(["benelux", "ercc", "amertens", "lu-hcpn"])
    assert [c.handle for c in resolution.people] == [
        "amertens",
        "ercc-duty",
        "ercc-backup",
        "nl-ncc",
        "lu-hcpn",
    ]
    assert resolution.unknown == ()


def test_resolve_reports_unknown_keys_with_the_closest_one(directory: Directory) -> None:
    resolution = directory.resolve(["benelx", "ercc", "zzzz"])
    assert [c.handle for c in resolution.people] == ["ercc-duty", "ercc-backup"]
    assert resolution.unknown == (("benelx", "benelux"), ("zzzz", None))


def test_a_person_typed_by_user_name_or_name_is_suggested_by_handle(directory: Directory) -> None:
    """`contact pdevries` (their Matrix user name) or their name points to the handle."""
    assert directory.closest("pdevries") == "nl-ncc"
    assert directory.closest("Pieter de Vries") == "nl-ncc"
    assert directory.closest("de vries") == "nl-ncc"
    assert directory.closest("attache-fr") == "emb-fr"
    assert directory.closest("ercc-duyt") == "ercc-duty"


def test_search_matches_every_word_over_handle_name_organisation_and_group(
    directory: Directory,
) -> None:
    assert [c.handle for c in directory.search("embassies")] == ["emb-fr", "emb-de"]
    assert [c.handle for c in directory.search("nccn lead")] == []  # "lead" is a role, not text
    assert [c.handle for c in directory.search("foreign affairs")] == ["lpeeters"]
    assert [c.handle for c in directory.search("ERCC")] == ["ercc-duty", "ercc-backup"]
    assert len(directory.search(None)) == len(directory.contacts)


def test_more_validation_problems(tmp_path: Path) -> None:
    raw = sample()
    last = len(raw["organisations"])  # the entry appended here
    raw["organisations"].append({"key": "ercc", "name": "again", "kind": "galactic"})
    raw["groups"]["Bad Name"] = "spaces"
    raw["contacts"][0]["handle"] = "AMertens"
    with pytest.raises(DirectoryError) as caught:
        parse_directory(raw, source="d.yaml")
    text = "\n".join(caught.value.problems)
    assert f"organisations[{last}] ercc: key: duplicate `ercc`" in text
    assert f"organisations[{last}] ercc: kind: `galactic` is not one of" in text
    assert "groups Bad Name: name: must be lower-case" in text
    assert "contacts[0] AMertens: handle: `AMertens` must be lower-case" in text


def test_channels_need_their_address_in_its_form(tmp_path: Path) -> None:
    raw = sample()
    raw["contacts"][0].update(email="an.mertens", channels=["matrix", "email"])
    raw["contacts"][1].update(phone="0475 12 34 56", channels=["matrix", "sms"])
    raw["contacts"][2].update(channels=["matrix", "email", "pigeon"])
    with pytest.raises(DirectoryError) as caught:
        parse_directory(raw, source="d.yaml")
    text = "\n".join(caught.value.problems)
    assert "contacts[0] amertens: email: `an.mertens` is not an e-mail address" in text
    assert "contacts[1] jdupont: phone: `0475 12 34 56` is not a number in E.164" in text
    assert "contacts[2]" in text
    assert "channels: `email` needs the contact's `email`" in text


def test_a_contact_reachable_by_email_keeps_its_channels_in_order() -> None:
    raw = sample()
    raw["contacts"][0].update(email="an.mertens@crisis.example", channels=["matrix", "email"])
    contact = parse_directory(raw, source="d.yaml").contacts["amertens"]
    assert (contact.email, contact.channels) == ("an.mertens@crisis.example", ("matrix", "email"))
    assert parse_directory(sample(), source="d.yaml").contacts["jdupont"].channels == ("matrix",)


def test_matrix_comes_first_when_it_is_listed() -> None:
    raw = sample()
    raw["contacts"][0].update(email="an.mertens@crisis.example", channels=["email", "matrix"])
    with pytest.raises(DirectoryError, match="`matrix` comes first when it is listed"):
        parse_directory(raw, source="d.yaml")


def partner_without_matrix(**fields: Any) -> dict[str, Any]:
    """The sample with a partner who has no Matrix ID, and `fields`."""
    raw = sample()
    person = next(c for c in raw["contacts"] if c.get("role", "partner") == "partner")
    del person["matrix_id"]
    person.update(fields)
    return raw


def test_someone_without_a_matrix_id_is_reached_on_the_channels_they_have_an_address_for() -> None:
    raw = partner_without_matrix(email="desk@embassy.example", phone="+31612345678")
    person = next(
        c for c in parse_directory(raw, source="d.yaml").contacts.values() if not c.on_matrix
    )
    assert person.matrix_id is None
    assert person.channels == ("email", "sms")
    assert person.key == f"~{person.handle}"  # never a Matrix ID


def test_someone_without_a_matrix_id_or_any_address_is_refused() -> None:
    with pytest.raises(DirectoryError, match="needs a `matrix_id`, an `email` or a `phone`"):
        parse_directory(partner_without_matrix(), source="d.yaml")


def test_the_matrix_channel_needs_a_matrix_id() -> None:
    raw = partner_without_matrix(email="desk@embassy.example", channels=["matrix", "email"])
    with pytest.raises(DirectoryError, match="`matrix` needs the contact's `matrix_id`"):
        parse_directory(raw, source="d.yaml")


def test_a_lead_or_member_needs_a_matrix_id() -> None:
    raw = sample()
    member = next(c for c in raw["contacts"] if c.get("role") == "icc-member")
    del member["matrix_id"]
    member["email"] = "desk@crisis.example"
    with pytest.raises(DirectoryError, match="icc-member works in the bot's rooms and needs"):
        parse_directory(raw, source="d.yaml")


# -- typos and the file's shape (issue 18) ----------------------------------------------------------

SAMPLE_TEXT = (REPO / "config" / "directory.yaml").read_text()


@pytest.mark.parametrize(
    ("written", "typo", "meant", "entry"),
    [
        ("    languages: [nl, fr, en]", "langauges", "languages", "contacts[0] amertens"),
        ("    backup: lpeeters", "backups", "backup", "contacts[1] jdupont"),
        ("groups:", "group", "groups", "top level"),
    ],
)
def test_a_typo_is_refused_with_its_line_and_the_key_meant(
    tmp_path: Path, written: str, typo: str, meant: str, entry: str
) -> None:
    """A misspelt key used to be ignored: the contact silently got English, or no backup, or no
    group was declared. Now it is the one problem, on its own line, with the key it stands for."""
    assert written in SAMPLE_TEXT.splitlines()
    typed = written.replace(meant, typo, 1)
    text = SAMPLE_TEXT.replace(f"{written}\n", f"{typed}\n", 1)
    line = text.splitlines().index(typed) + 1
    path = tmp_path / "directory.yaml"
    path.write_text(text)
    with pytest.raises(DirectoryError) as caught:
        load_directory(path)
    assert caught.value.problems == [
        f"{path}: line {line}: {entry}: {typo}: unknown key; did you mean `{meant}`?"
    ]


BROKEN = """\
organisations:
  - {key: nccn, name: NCCN, kind: national, contry: BE}
  - {key: nl-ncc, name: NCC, country: NO}
contacts:
  - handle: a
    organisation: nccn
    matrix_id: "@a:x.example"
    backup: b
    languages: [nl, 5]
  - handle: b
    organisation: nccn
    matrix_id: "@b:x.example"
    backup: a
    timezone: Mars/Olympus
    fax: "+32 2 000 00 00"
  - name: Nobody
    organisation: nccn
groups:
  icc: ICC roster
"""


def test_every_problem_at_once_each_with_its_line_entry_and_field(tmp_path: Path) -> None:
    """The shape (unknown keys, text that YAML read as something else, missing fields) and the
    checks after it (time zones, backups) in one report, in the file's order."""
    path = tmp_path / "directory.yaml"
    path.write_text(BROKEN)
    with pytest.raises(DirectoryError) as caught:
        load_directory(path)
    where = f"{path}: line"
    assert caught.value.problems == [
        f"{where} 2: organisations[0] nccn: contry: unknown key; did you mean `country`?",
        f"{where} 3: organisations[1] nl-ncc: country: expected text, got a yes/no value (YAML"
        " reads an unquoted yes, no, on, off, true or false that way); put the text in quotes",
        f"{where} 8: contacts a: backup: backup cycle a → b → a",
        f"{where} 9: contacts[0] a: languages: expected text, got the number `5`; put it in"
        " quotes to make it text",
        f"{where} 13: contacts b: backup: backup cycle b → a → b",
        f"{where} 14: contacts[1] b: timezone: `Mars/Olympus` is not an IANA time zone"
        " (e.g. Europe/Brussels)",
        f"{where} 15: contacts[1] b: fax: unknown key; the keys here are handle, name,"
        " organisation, matrix_id, role, languages, timezone, groups, backup, email, phone,"
        " channels",
        f"{where} 16: contacts[2] ?: handle: missing",
    ]


def default_channels(written: dict[str, Any]) -> list[str]:
    """Matrix for someone on it, else the channels they have an address for (SPEC)."""
    if "matrix_id" in written:
        return ["matrix"]
    return [
        channel for channel, field in (("email", "email"), ("sms", "phone")) if field in written
    ]


def test_the_sample_loads_as_written(tmp_path: Path) -> None:
    """The models drop nothing: every contact's languages, backup and the rest as in the file,
    read from YAML and again from the start-up cache."""
    raw = sample()
    cache = tmp_path / "cache.json"
    loads = [load_directory(REPO / "config" / "directory.yaml", cache=cache) for _ in range(2)]
    assert cache.exists()  # the second load came from it
    for directory in loads:
        assert list(directory.contacts) == [c["handle"] for c in raw["contacts"]]
        for written in raw["contacts"]:
            assert directory.contacts[written["handle"]] == Contact(
                handle=written["handle"],
                name=written["name"],
                organisation=written["organisation"],
                matrix_id=written.get("matrix_id"),
                role=Role.parse(written["role"]),
                languages=tuple(written["languages"]),
                timezone=written["timezone"],
                groups=tuple(written["groups"]),
                backup=written.get("backup"),
                email=written.get("email"),
                phone=written.get("phone"),
                channels=tuple(written.get("channels", default_channels(written))),
            )
        assert directory.groups == raw["groups"]
        assert [(o.key, o.name, o.kind, o.country) for o in directory.organisations.values()] == [
            (o["key"], o["name"], o["kind"], o["country"]) for o in raw["organisations"]
        ]
    backups = {c.handle: c.backup for c in loads[0].contacts.values() if c.backup}
    assert backups == {"amertens": "jdupont", "jdupont": "lpeeters", "ercc-duty": "ercc-backup"}


def test_the_schema_command_prints_a_json_schema_the_sample_meets_and_typos_do_not() -> None:
    """`icc-bot directory schema` needs no configuration; editors check the file against it."""
    result = run_cli({}, "directory", "schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors(sample())) == []
    contact = schema["$defs"]["ContactEntry"]
    assert set(contact["required"]) == {"handle", "organisation"}
    assert contact["additionalProperties"] is False
    assert schema["additionalProperties"] is False
    for typed, meant in [("langauges", "languages"), ("backups", "backup"), ("group", "groups")]:
        raw = sample()
        holder = raw if meant == "groups" else next(c for c in raw["contacts"] if meant in c)
        holder[typed] = holder.pop(meant)
        errors = [error.message for error in validator.iter_errors(raw)]
        assert errors == [f"Additional properties are not allowed ('{typed}' was unexpected)"]


def test_language_choice_and_fallback(tmp_path: Path) -> None:
    for stem, words in [("greet", "Hello {{ who }}"), ("greet.fr", "Bonjour {{ who }}")]:
        (tmp_path / f"{stem}.txt.j2").write_text(words)
        (tmp_path / f"{stem}.html.j2").write_text(f"<p>{words}</p>")
    renderer = Renderer(tmp_path)
    assert renderer.language_for("greet", ["nl", "fr", "en"]) == "fr"
    assert renderer.language_for("greet", ["de", "en", "fr"]) == "en"
    assert renderer.language_for("greet", ["nl"]) == "en"  # no Dutch template: English
    assert renderer.render("greet", lang="fr", who="<Anne>").html == "<p>Bonjour &lt;Anne&gt;</p>"
    assert renderer.render("greet", lang="nl", who="Anne").body == "Hello Anne"


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_history_keeps_removed_contacts_inactive(database_url: str) -> None:
    db = Database(database_url)
    await db.upgrade()
    raw = sample()
    try:
        async with db.session() as session:
            first = await store_directory(session, parse_directory(raw, source="v1"))
        assert len(first.added) == len(raw["contacts"])
        removed = raw["contacts"].pop()  # dg-nl leaves
        raw["contacts"][0]["timezone"] = "Europe/Paris"
        async with db.session() as session:
            second = await store_directory(session, parse_directory(raw, source="v2"))
        assert (second.added, second.changed, second.removed) == ([], ["amertens"], ["dg-nl"])
        async with db.session() as session:
            rows = {r.handle: r for r in await contact_rows(session)}
            active = await contact_rows(session, active_only=True)
        assert rows["dg-nl"].active is False
        assert rows["dg-nl"].removed_at is not None
        assert rows["amertens"].timezone == "Europe/Paris"
        assert len(active) == len(raw["contacts"])
        raw["contacts"].append(removed)  # back again: the same row, active again
        async with db.session() as session:
            third = await store_directory(session, parse_directory(raw, source="v3"))
            again = {r.handle: r for r in await contact_rows(session)}
        assert third.changed == ["dg-nl"]
        assert again["dg-nl"].id == rows["dg-nl"].id
        assert again["dg-nl"].active is True
    finally:
        await db.dispose()


# -- its commands, on the desk (the fast tier); the running bot's reload, start and invites --------

pytest_synapse = pytest.mark.synapse


async def test_contacts_and_contact_commands(desk: Desk) -> None:
    room_id = desk.room("lead", "member", "partner", "dg")
    reply = await desk.ask("member", room_id, "!icc contacts")
    assert "Contacts: 5" in reply.body
    assert "• lead — Lead · NCCN · icc-lead · en · Brussels" in reply.body
    reply = await desk.ask("member", room_id, "!icc contacts partner")
    assert "Contacts matching “partner”: 1 of 5" in reply.body
    reply = await desk.ask("member", room_id, "!icc contact lead")
    assert f"Matrix: {desk.who('lead')}" in reply.body
    assert "Time zone: Europe/Brussels — now " in reply.body
    reply = await desk.ask("member", room_id, "!icc contact leed")
    assert "No contact `leed` in the directory. Did you mean `lead`?" in reply.body
    reply = await desk.ask("member", room_id, "!icc contacts --page 3")
    assert "only 1 page(s)" in reply.body
    for role in ("partner", "dg"):  # a stranger's refusal: tests/test_access.py
        reply = await desk.ask(role, room_id, "!icc contacts")
        assert "Contacts:" not in reply.body


def write_directory(env: dict[str, str], directory: dict[str, Any]) -> None:
    (Path(env["ICC_CONFIG_DIR"]) / "directory.yaml").write_text(yaml.safe_dump(directory))


def with_stranger_as_member(cast: Cast) -> dict[str, Any]:
    directory = cast.directory()
    directory["contacts"].append(
        {
            "handle": "newcomer",
            "name": "Newcomer",
            "organisation": "nccn",
            "matrix_id": cast.stranger.user_id,
            "role": "icc-member",
        }
    )
    return directory


async def test_reload_puts_a_good_file_in_force_and_refuses_a_bad_one(desk: Desk) -> None:
    room_id = desk.room("lead", "member", "stranger")
    path = desk.settings.directory_path
    path.write_text(yaml.safe_dump(with_stranger_as_member(desk_cast())))
    assert await desk.services.keeper.reload()
    reply = await desk.ask("stranger", room_id, "!icc contacts")
    assert "Contacts: 6" in reply.body

    broken = with_stranger_as_member(desk_cast())
    broken["contacts"][0]["organisation"] = "nowhere"
    path.write_text(yaml.safe_dump(broken))
    assert not await desk.services.keeper.reload()
    reply = await desk.ask("stranger", room_id, "!icc contacts")
    assert "Contacts: 6" in reply.body  # the previous directory stays in force


@pytest_synapse
async def test_directory_reload_command_signals_the_running_bot(
    bot_env: dict[str, str], people: dict[str, Person], cast: Cast, tmp_path: Path
) -> None:
    log_path = tmp_path / "bot.log"
    process = await start_ready(bot_env, log_path)
    try:
        room_id = await shared_room(people, cast, with_stranger=True)
        write_directory(bot_env, with_stranger_as_member(cast))
        result = run_cli(bot_env, "directory", "reload")
        assert result.returncode == 0, result.stderr
        assert "directory reloaded by the running bot" in result.stdout
        reply = await people["stranger"].ask(room_id, "!icc contacts", cast.bot.user_id)
        assert "Contacts: 6" in body(reply)

        broken = with_stranger_as_member(cast)
        broken["contacts"][1]["backup"] = "ghost"
        write_directory(bot_env, broken)
        result = run_cli(bot_env, "directory", "reload")
        assert result.returncode == 2
        assert "backup: unknown contact `ghost`" in result.stderr
        assert "the running bot keeps its directory" in result.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    result = run_cli(bot_env | {"ICC_CONFIG_DIR": str(REPO / "config")}, "directory", "reload")
    assert result.returncode == 1
    assert "no running bot found" in result.stderr


@pytest_synapse
async def test_invites_waiting_at_start_are_judged_by_the_directory_loading_meanwhile(
    bot_env: dict[str, str],
    people: dict[str, Person],
    cast: Cast,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The directory loads while the homeserver prepares the first sync (bench/, start-up); that
    batch waits for it. Here the load takes two seconds, far longer than this account's first
    sync: were the invites judged before it, the member's would be declined as a stranger's."""
    async with bot_running(bot_env):
        pass  # the first start records where the bot stopped reading
    member_room = await people["member"].create_room(invite=[cast.bot.user_id])
    stranger_room = await people["stranger"].create_room(invite=[cast.bot.user_id])

    def slow_load(path: Path, cache: Path | None = None) -> Directory:
        time.sleep(2)  # a big file on a slow disk (the load runs in a thread)
        return load_directory(path, cache=cache)

    monkeypatch.setattr(keeper_module, "load_directory", slow_load)
    async with bot_running(bot_env):
        await people["member"].wait_for(member_room, bot_joined(cast.bot.user_id))
        await people["stranger"].wait_for(stranger_room, bot_left(cast.bot.user_id))


@pytest_synapse
async def test_a_broken_directory_stops_the_bot_at_start_with_every_problem(
    bot_env: dict[str, str], cast: Cast
) -> None:
    broken = cast.directory()
    broken["contacts"][1]["organisation"] = "nowhere"
    broken["contacts"][2]["backup"] = "ghost"
    write_directory(bot_env, broken)
    result = await asyncio.to_thread(run_cli, bot_env, "run")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "organisation: unknown organisation `nowhere`" in result.stderr
    assert "backup: unknown contact `ghost`" in result.stderr
    assert "INFO bot.app: ready" not in result.stderr
    # With the homeserver away as well, the directory is still what the operator hears of.
    away = await asyncio.to_thread(
        run_cli, bot_env | {"ICC_HOMESERVER": "http://127.0.0.1:9"}, "run"
    )
    assert away.returncode == 2, away.stderr[-2000:]
    assert "organisation: unknown organisation `nowhere`" in away.stderr


# -- hostile files (issue 16) ---------------------------------------------------------------------

ANCHORS_REFUSED = (
    "anchors and aliases (&, *) are not allowed in directory.yaml; write each entry out"
)

# Nine levels of nine aliases: 9**9 (387 million) strings once expanded, some gigabytes. PyYAML
# itself builds the shared lists once, but anything that walks the value (the JSON cache, str()
# of a field) expands it all; refused up front, nothing ever does.
BOMB = "\n".join(
    ['lol0: &lol0 ["lol"]']
    + [f"lol{n}: &lol{n} [{', '.join([f'*lol{n - 1}'] * 9)}]" for n in range(1, 10)]
    + [
        "organisations: [{key: nccn, name: NCCN}]",
        "contacts:",
        "  - {handle: lol, name: *lol9, organisation: nccn, matrix_id: '@lol:crisis.example'}",
    ]
)

MERGED = """\
defaults: &belgian
  organisation: nccn
  timezone: Europe/Brussels
organisations:
  - {key: nccn, name: NCCN}
contacts:
  - <<: *belgian
    handle: lead
    matrix_id: '@lead:crisis.example'
"""

# In a child with 1 GB of address space and a minute: if the refusal ever comes after the
# expansion, the test fails on a MemoryError or the timeout instead of taking the machine down.
LOAD_IN_A_BOX = """
import resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from bot.directory.model import DirectoryError, load_directory
try:
    load_directory(Path(sys.argv[1]), cache=Path(sys.argv[2]))
except DirectoryError as exc:
    print("\\n".join(exc.problems))
else:
    print("accepted")
"""


def test_an_alias_bomb_is_refused_before_anything_expands_it(tmp_path: Path) -> None:
    """A 'billion laughs' file is refused, naming the file and the lines, before it is composed,
    cached or validated; `icc-bot check`, start and reload (SIGHUP, `icc-bot directory reload`)
    all read the file through load_directory."""
    path, cache = tmp_path / "directory.yaml", tmp_path / "cache.json"
    path.write_text(BOMB)
    done = subprocess.run(
        [sys.executable, "-c", LOAD_IN_A_BOX, str(path), str(cache)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{path}: lines 1, 2, 3, 4, 5 and 6 more: {ANCHORS_REFUSED}"
    assert not cache.exists()


def test_a_merge_key_is_an_alias_and_is_refused_too(tmp_path: Path) -> None:
    """`<<: *defaults` is the everyday use of aliases; still refused, with the lines to rewrite."""
    path = tmp_path / "directory.yaml"
    path.write_text(MERGED)
    with pytest.raises(DirectoryError) as caught:
        load_directory(path)
    assert caught.value.problems == [f"{path}: lines 1, 7: {ANCHORS_REFUSED}"]


def test_ampersands_and_asterisks_in_text_are_not_anchors(tmp_path: Path) -> None:
    """Only YAML's own `&x`/`*x` are refused: an `R&D *duty* desk` name loads as written."""
    raw = sample()
    raw["organisations"][0]["name"] = "R&D *duty* desk"
    raw["contacts"][0]["name"] = "*Anne* & co"
    path = tmp_path / "directory.yaml"
    path.write_text(yaml.safe_dump(raw))
    directory = load_directory(path)
    assert directory.contacts[raw["contacts"][0]["handle"]].name == "*Anne* & co"
    assert "R&D *duty* desk" in [o.name for o in directory.organisations.values()]


async def test_a_reload_refuses_an_aliased_file_and_says_why(tmp_path: Path) -> None:
    """SIGHUP and `icc-bot directory reload` land in DirectoryKeeper.reload: the same refusal, written to
    the status file the reload command reads; the directory in force stays."""
    path = tmp_path / "directory.yaml"
    path.write_text(yaml.safe_dump(sample()))
    db = Database(f"sqlite:///{tmp_path / 'icc.db'}")
    await db.upgrade()
    try:
        keeper = keeper_module.DirectoryKeeper(path, db, tmp_path)
        assert await keeper.reload()
        in_force = keeper.current
        path.write_text(MERGED)  # not the bomb: this test runs in the suite's own process
        assert not await keeper.reload()
        assert keeper.current is in_force
        status = json.loads((tmp_path / keeper_module.STATUS_FILE).read_text())
        assert status["problems"] == [f"{path}: lines 1, 7: {ANCHORS_REFUSED}"]
    finally:
        await db.dispose()


@pytest.mark.parametrize("address", ["desk:duty@embassy.example", "desk,duty@embassy.example"])
def test_an_email_address_mail_libraries_would_read_as_another_is_refused(address: str) -> None:
    """`a:b@x` is sent to b@x by aiosmtplib: the directory refuses what is not plainly one
    mailbox."""
    raw = sample()
    raw["contacts"][0]["email"] = address
    with pytest.raises(DirectoryError, match="is not an e-mail address"):
        parse_directory(raw, source="d.yaml")

"""Configuration, the minimal directory loader, time formatting and the `icc-bot` CLI."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from bot.directory.model import DirectoryError, load_directory
from bot.directory.roles import Role
from bot.runtime.logs import RedactSecrets
from bot.settings import SettingsError, load_settings
from bot.timeutil import format_duration, format_local_utc
from tests.support.processes import run_cli

GOOD = {
    "ICC_HOMESERVER": "https://matrix.crisis.example",
    "ICC_USER_ID": "@iccbot:crisis.example",
    "ICC_PASSWORD": "a-real-secret-value",
    "ICC_STORE_KEY": "another-long-random-value",
}
REPO = Path(__file__).resolve().parent.parent


def test_defaults() -> None:
    settings = load_settings(GOOD)
    assert settings.command_prefix == "!icc"
    assert settings.timezone == ZoneInfo("Europe/Brussels")
    assert settings.ack_timeout == timedelta(minutes=15)
    assert settings.max_command_age == timedelta(minutes=10)
    assert settings.database_url == "sqlite:///data/icc.db"
    assert settings.e2ee is True
    assert settings.health_addr == ("127.0.0.1", 9108)
    assert settings.exercise_marker == "EXERCISE EXERCISE EXERCISE"


def test_every_problem_reported_at_once() -> None:
    bad = {
        "ICC_HOMESERVER": "matrix.example",
        "ICC_USER_ID": "iccbot",
        "ICC_PASSWORD": "changeme",
        "ICC_TIMEZONE": "Europe/Bruxelles",
        "ICC_ACK_TIMEOUT": "15 minutes",
        "ICC_E2EE": "maybe",
        "ICC_DATABASE_URL": "mysql://x",
        "ICC_HEALTH_ADDR": "9108",
        "ICC_DG_ROOM": "dg-room",
    }
    with pytest.raises(SettingsError) as caught:
        load_settings(bad)
    named = [line.split(":")[0] for line in caught.value.problems]
    assert named == [
        "ICC_HOMESERVER",
        "ICC_USER_ID",
        "ICC_PASSWORD",
        "ICC_DATABASE_URL",
        "ICC_E2EE",
        "ICC_DG_ROOM",
        "ICC_TIMEZONE",
        "ICC_ACK_TIMEOUT",
        "ICC_HEALTH_ADDR",
    ]


def test_store_key_required_with_encryption() -> None:
    env = {k: v for k, v in GOOD.items() if k != "ICC_STORE_KEY"}
    with pytest.raises(SettingsError, match="ICC_STORE_KEY: required"):
        load_settings(env)
    assert load_settings(env | {"ICC_E2EE": "false"}).store_key is None


def test_login_needs_password_or_token() -> None:
    env = {k: v for k, v in GOOD.items() if k != "ICC_PASSWORD"}
    with pytest.raises(SettingsError, match="ICC_PASSWORD or ICC_ACCESS_TOKEN"):
        load_settings(env)
    assert load_settings(env | {"ICC_ACCESS_TOKEN": "syt_abcdef"}).access_token == "syt_abcdef"


def test_dotenv_in_config_dir_and_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("ICC_COMMAND_PREFIX=!crisis\nICC_TIMEZONE=Europe/Paris\n")
    settings = load_settings(GOOD | {"ICC_CONFIG_DIR": str(tmp_path), "ICC_TIMEZONE": "UTC"})
    assert settings.command_prefix == "!crisis"
    assert settings.timezone == ZoneInfo("UTC")


def test_redacted_settings_hide_secrets() -> None:
    shown = load_settings(GOOD).redacted()
    assert shown["password"] == "***"
    assert "a-real-secret-value" not in str(shown)


def test_log_filter_redacts_secrets() -> None:
    record = logging.LogRecord(
        "x", logging.INFO, "f", 1, "url ?access_token=%s", ("syt_secret",), None
    )
    RedactSecrets(["syt_secret"]).filter(record)
    assert record.getMessage() == "url ?access_token=***"


def test_sample_directory_is_valid() -> None:
    directory = load_directory(REPO / "config" / "directory.yaml")
    assert directory.role_of("@amertens:crisis.example") is Role.LEAD
    assert directory.role_of("@nobody:crisis.example") is Role.STRANGER
    assert {c.role for c in directory.contacts.values()} == {
        Role.LEAD,
        Role.MEMBER,
        Role.PARTNER,
        Role.DG,
    }


def test_directory_problems_name_file_entry_and_field(tmp_path: Path) -> None:
    raw = {
        "organisations": [{"key": "nccn", "name": "NCCN", "kind": "national"}],
        "contacts": [
            {"handle": "a", "organisation": "nccn", "matrix_id": "@a:x.example", "backup": "b"},
            {"handle": "b", "organisation": "nope", "matrix_id": "@a:x.example", "backup": "a"},
            {
                "handle": "c",
                "organisation": "nccn",
                "matrix_id": "c@x",
                "role": "boss",
                "languages": ["es"],
                "timezone": "Mars/Olympus",
                "groups": ["ghost"],
                "backup": "z",
            },
        ],
    }
    path = tmp_path / "directory.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(DirectoryError) as caught:
        load_directory(path)
    problems = caught.value.problems
    assert all(line.startswith(f"{path}: ") for line in problems)
    text = "\n".join(problems)
    for expected in [
        "contacts[1] b: matrix_id: `@a:x.example` is also used by `a`",
        "contacts[1] b: organisation: unknown organisation `nope`",
        "contacts[2] c: matrix_id: `c@x` is not a Matrix ID",
        "contacts[2] c: role: `boss` is not a role",
        "contacts[2] c: languages: `es` is not supported",
        "contacts[2] c: timezone: `Mars/Olympus` is not an IANA time zone",
        "contacts[2] c: groups: group `ghost` is not declared",
        "contacts c: backup: unknown contact `z`",
        "contacts a: backup: backup cycle a → b → a",
    ]:
        assert expected in text


def test_local_and_utc_across_daylight_saving() -> None:
    brussels = ZoneInfo("Europe/Brussels")
    summer = datetime(2026, 10, 24, 12, 28, tzinfo=UTC)  # the day before clocks go back
    winter = datetime(2026, 10, 25, 13, 28, tzinfo=UTC)
    assert format_local_utc(summer, brussels) == "14:28 Brussels (12:28Z)"
    assert format_local_utc(winter, brussels) == "14:28 Brussels (13:28Z)"
    assert (
        format_local_utc(winter, brussels, with_date=True) == "Sun 25 Oct 14:28 Brussels (13:28Z)"
    )
    with pytest.raises(ValueError, match="naive"):
        format_local_utc(datetime(2026, 1, 1), brussels)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(45, "45s"), (192, "3m12s"), (180, "3m"), (7500, "2h05m"), (97200, "1d3h")],
)
def test_format_duration(seconds: int, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text


def test_cli_check_reports_every_problem(tmp_path: Path) -> None:
    result = run_cli({"ICC_USER_ID": "bot", "ICC_CONFIG_DIR": str(tmp_path)}, "check")
    assert result.returncode == 2
    assert "ICC_HOMESERVER: required" in result.stderr
    assert "ICC_USER_ID: `bot` is not a Matrix user ID" in result.stderr


def test_cli_check_validates_the_directory(tmp_path: Path) -> None:
    (tmp_path / "directory.yaml").write_text("contacts: [{handle: x, matrix_id: nope}]\n")
    env = GOOD | {"ICC_CONFIG_DIR": str(tmp_path)}
    result = run_cli(env, "check")
    assert result.returncode == 2
    assert "contacts[0] x: matrix_id: `nope` is not a Matrix ID" in result.stderr
    good = run_cli(GOOD | {"ICC_CONFIG_DIR": str(REPO / "config")}, "check")
    assert good.returncode == 0, good.stderr
    assert "directory OK" in good.stdout


def test_rate_limit_setting() -> None:
    assert load_settings(GOOD).rate_limit == (30, timedelta(minutes=1))
    assert load_settings(GOOD | {"ICC_RATE_LIMIT": "5/10s"}).rate_limit == (
        5,
        timedelta(seconds=10),
    )
    with pytest.raises(SettingsError, match="ICC_RATE_LIMIT: `lots` is not a rate"):
        load_settings(GOOD | {"ICC_RATE_LIMIT": "lots"})


SMS = {
    "ICC_SMS_URL": "https://sms.example/v1/messages",
    "ICC_SMS_TOKEN": "gw-token-0123456789",
    "ICC_SMS_SECRET": "inbound-signing-secret-0123",
    "ICC_PUBLIC_URL": "https://icc.example",
}


def test_sms_settings_and_their_secrets() -> None:
    settings = load_settings(GOOD | SMS)
    assert settings.sms_url == "https://sms.example/v1/messages"
    assert settings.sms_replies
    shown = settings.redacted()
    assert (shown["sms_token"], shown["sms_secret"]) == ("***", "***")
    assert "gw-token" not in str(shown)
    assert "inbound-signing" not in str(shown)
    assert {"gw-token-0123456789", "inbound-signing-secret-0123"} <= set(settings.secrets())
    smtp = load_settings(
        GOOD
        | {"ICC_SMTP_URL": "smtp://icc:mail-pass-99@mx.example:587"}
        | {"ICC_MAIL_FROM": "icc@crisis.example"}
    )
    assert "mail-pass-99" in smtp.secrets()  # alone, as an SMTP error may quote it
    assert not load_settings(GOOD).sms_replies


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"ICC_SMS_URL": "sms.example"}, "ICC_SMS_URL: `sms.example` is not an http(s) URL"),
        ({"ICC_SMS_TOKEN": None}, "ICC_SMS_TOKEN: required with ICC_SMS_URL"),
        ({"ICC_SMS_TOKEN": "changeme"}, "ICC_SMS_TOKEN: a placeholder value"),
        ({"ICC_SMS_SECRET": "short"}, "ICC_SMS_SECRET: too easy to guess"),
        ({"ICC_SMS_SECRET": "secret"}, "ICC_SMS_SECRET: too easy to guess"),
        ({"ICC_PUBLIC_URL": None}, "ICC_PUBLIC_URL: required with ICC_SMS_SECRET"),
    ],
)
def test_sms_settings_that_would_fail_at_the_first_page_are_refused(
    change: dict[str, str | None], problem: str
) -> None:
    env = {k: v for k, v in (SMS | change).items() if v is not None}
    with pytest.raises(SettingsError) as caught:
        load_settings(GOOD | env)
    assert [line for line in caught.value.problems if line.startswith(problem)]


def test_sms_settings_that_leave_sms_off_or_unread_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.settings"):
        off = load_settings(GOOD | {"ICC_SMS_TOKEN": "gw-token-0123456789"})
        unread = load_settings(GOOD | {k: SMS[k] for k in ("ICC_SMS_URL", "ICC_SMS_TOKEN")})
        load_settings(GOOD | SMS | {"ICC_SMS_URL": "http://sms.example/send"})
    assert off.sms_url is None
    assert not unread.sms_replies
    said = caplog.text
    assert "ICC_SMS_URL is not: SMS is off" in said
    assert "SMS replies are not read" in said
    assert "plain http" in said


def test_cli_check_shows_a_sample_sms_request_and_refuses_a_broken_template(
    tmp_path: Path,
) -> None:
    directory = yaml.safe_load((REPO / "config" / "directory.yaml").read_text())
    directory["contacts"][0].update(phone="+32475123456", channels=["matrix", "sms"])
    (tmp_path / "directory.yaml").write_text(yaml.safe_dump(directory, allow_unicode=True))
    env = GOOD | {"ICC_CONFIG_DIR": str(tmp_path)}
    off = run_cli(env, "check")
    assert off.returncode == 0, off.stderr
    assert "2 contacts are to be reached by sms (amertens, emb-de)" in off.stderr
    assert "ICC_SMS_URL is not set" in off.stderr
    sms = env | {k: SMS[k] for k in ("ICC_SMS_URL", "ICC_SMS_TOKEN")}
    good = run_cli(sms, "check")
    assert good.returncode == 0, good.stderr
    assert 'POST https://sms.example/v1/messages (application/json) {"to": "+32475123456"' in (
        good.stdout
    )
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "sms_request.txt.j2").write_text('{"to": {{ to }}}')  # no tojson
    broken = run_cli(sms, "check")
    assert broken.returncode == 2
    assert "sms_request template does not make JSON" in broken.stderr

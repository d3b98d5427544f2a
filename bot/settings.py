"""Configuration: `ICC_*` variables from the environment or `.env`, validated once, frozen.

Every problem is collected and reported in one pass (one line per variable), so an operator fixes a
bad deployment in one go rather than one restart per mistake. The object is passed to whoever needs
it; nothing reads the environment after start-up.

Every secret variable has a `_FILE` form (`ICC_PASSWORD_FILE=/run/secrets/icc_password`) for
Docker secrets and systemd credentials: the file's content, one trailing newline stripped, is the
value. Setting both forms, or naming a file that cannot be read, is a configuration problem.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

from dotenv import dotenv_values

from bot.chat.classification import DEFAULT_MARKINGS
from bot.errors import ProblemList
from bot.rounds.recurrence import to_cron
from bot.timeutil import load_zone, parse_duration

MATRIX_USER_ID = re.compile(r"^@[a-z0-9._=\-/+]+:[A-Za-z0-9.\-]+(:\d{1,5})?$")
# An address as people write it (one @, a dotted domain): what a directory or a setting holds is
# checked for its form, not whether a mailbox is behind it.
# The local part as RFC 5322's dot-atom (letters of any script for SMTPUTF8): no `:`, `,` or
# quotes, which mail libraries read as address syntax (`a:b@x` went to b@x).
EMAIL = re.compile(r"^[\w!#$%&'*+/=?^`{|}~.\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+$")
# E.164: a plus, the country code and the number, 8 to 15 digits in all, no spaces.
PHONE = re.compile(r"^\+[1-9]\d{7,14}$")
PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "password", "default_key", "xxx"}
MIN_SIGNING_SECRET = 16  # characters of ICC_SMS_SECRET: whoever guesses it can forge an ack
DEMO_STORE_KEY = "demo"
# The variables that hold secrets; each may also be given as a file, `<name>_FILE`.
SECRET_VARIABLES = (
    "ICC_PASSWORD",
    "ICC_ACCESS_TOKEN",
    "ICC_STORE_KEY",
    "ICC_DATABASE_URL",  # postgresql://icc:<password>@…
    "ICC_SMTP_URL",
    "ICC_IMAP_URL",
    "ICC_SMS_TOKEN",
    "ICC_SMS_SECRET",
)
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_HEALTH_ADDR = "127.0.0.1:9108"  # the Docker image listens on 0.0.0.0 instead
DEFAULT_WEB_ADDR = "127.0.0.1:8080"

log = logging.getLogger(__name__)


class SettingsError(ProblemList):
    """The configuration does not validate."""


@dataclass(frozen=True)
class Settings:
    homeserver: str
    user_id: str
    password: str | None
    access_token: str | None
    database_url: str
    data_dir: Path
    config_dir: Path
    dg_room: str | None
    command_prefix: str
    timezone: ZoneInfo
    ack_timeout: timedelta
    max_command_age: timedelta
    exercise_marker: str
    e2ee: bool
    store_key: str | None
    health_addr: tuple[str, int]
    device_name: str = "ICC liaison bot"
    classified_markings: tuple[str, ...] = DEFAULT_MARKINGS
    dg_digest: str | None = "daily 08:00"  # a schedule in ICC_TIMEZONE, or None for none
    rate_limit: tuple[int, timedelta] = (30, timedelta(minutes=1))  # commands per sender
    # Answers to people outside the directory and undecryptable-event notices, per room.
    stranger_budget: tuple[int, timedelta] = (5, timedelta(minutes=10))
    # Reaching people outside Matrix (e-mail), and the web endpoint acknowledgement links use.
    smtp_url: str | None = None  # smtp[s]://user:pass@host:port; None: e-mail off
    imap_url: str | None = None  # imap[s]://user:pass@host:port/folder; None: replies not read
    mail_from: str | None = None
    fallback_after: timedelta = timedelta(minutes=5)  # no ack on one channel: the next one
    public_url: str | None = None  # how people reach the web endpoint; None: links off
    web_addr: tuple[str, int] = ("127.0.0.1", 8080)
    # SMS through a gateway's HTTP API; inbound SMS (acknowledgements) signed with the secret.
    sms_url: str | None = None  # None: SMS off
    sms_token: str | None = None  # sent as `Authorization: Bearer …`
    sms_secret: str | None = None  # HMAC key of inbound SMS; None: replies by SMS not read
    # The recovery key of the bot's cross-signing identity, to restore it without its data dir
    # (bot.matrix.identity); None: only the recovery key files in the data dir are tried.
    recovery_key_file: Path | None = None
    log_format: str = "text"  # or "json": one JSON object a line
    log_level: str = "INFO"

    SECRETS: ClassVar[tuple[str, ...]] = (
        "password",
        "access_token",
        "store_key",
        "smtp_url",
        "imap_url",
        "sms_token",
        "sms_secret",
    )

    @property
    def directory_path(self) -> Path:
        return self.config_dir / "directory.yaml"

    @property
    def template_dir(self) -> Path:
        return self.config_dir / "templates"

    @property
    def sms_replies(self) -> bool:
        """Whether SMS replies are read (`POST /sms/inbound`): a secret to check them with, and
        the web endpoint the gateway delivers them to."""
        return bool(self.sms_secret and self.public_url)

    def redacted(self) -> dict[str, str]:
        """Settings for the start-up log line: secrets shown only as set or unset, the database
        URL without its password."""
        shown = {}
        for field in fields(self):
            value = getattr(self, field.name)
            shown[field.name] = (
                ("***" if value else "unset") if field.name in self.SECRETS else str(value)
            )
        shown["database_url"] = _without_password(self.database_url)
        return shown

    def secrets(self) -> list[str]:
        """The secret values, for the log filter that keeps them out of every line (the SMTP
        and database passwords as well as the URLs that carry them)."""
        values = [getattr(self, name) for name in self.SECRETS]
        for url in (self.smtp_url, self.imap_url, self.database_url):
            password = urlsplit(url).password if url else None
            if password:
                values += [unquote(password), password]
                if url == self.database_url:
                    values.append(url)
        return [value for value in values if value]


# Every ICC_* variable the bot reads; any other is logged as unknown (a typo?).
KNOWN_VARIABLES = {
    "ICC_HOMESERVER",
    "ICC_USER_ID",
    "ICC_PASSWORD",
    "ICC_ACCESS_TOKEN",
    "ICC_DATABASE_URL",
    "ICC_DATA_DIR",
    "ICC_CONFIG_DIR",
    "ICC_DG_ROOM",
    "ICC_COMMAND_PREFIX",
    "ICC_TIMEZONE",
    "ICC_ACK_TIMEOUT",
    "ICC_MAX_COMMAND_AGE",
    "ICC_EXERCISE_MARKER",
    "ICC_E2EE",
    "ICC_STORE_KEY",
    "ICC_HEALTH_ADDR",
    "ICC_DEVICE_NAME",
    "ICC_CLASSIFIED_MARKINGS",
    "ICC_DG_DIGEST",
    "ICC_RATE_LIMIT",
    "ICC_STRANGER_BUDGET",
    "ICC_SMTP_URL",
    "ICC_IMAP_URL",
    "ICC_MAIL_FROM",
    "ICC_FALLBACK_AFTER",
    "ICC_PUBLIC_URL",
    "ICC_WEB_ADDR",
    "ICC_SMS_URL",
    "ICC_SMS_TOKEN",
    "ICC_SMS_SECRET",
    "ICC_RECOVERY_KEY_FILE",
    "ICC_LOG_FORMAT",
    "ICC_LOG_LEVEL",
    *(f"{name}_FILE" for name in SECRET_VARIABLES),
}


def gather_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment over `.env` (in the working directory, then in ICC_CONFIG_DIR).

    Real environment variables win, as operators expect from containers.
    """
    environ = dict(os.environ if environ is None else environ)
    merged: dict[str, str] = {}
    config_dir = Path(environ.get("ICC_CONFIG_DIR", "config"))
    for dotenv in (config_dir / ".env", Path(".env")):
        if dotenv.is_file():
            merged.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
    merged.update(environ)
    return merged


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from `environ` (default: the environment + `.env`); raise SettingsError."""
    env = gather_environment(environ)
    problems: list[str] = []
    unreadable = _read_secret_files(env, problems)

    def get(name: str, default: str | None = None) -> str | None:
        value = env.get(name)
        return value.strip() if value is not None and value.strip() != "" else default

    def parsed(name: str, default: str, parse: Callable[[str], Any]) -> Any:
        """The parsed value, or None with the problem noted (checked before Settings is made)."""
        raw = get(name, default) or default
        try:
            return parse(raw)
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
            return None

    homeserver = get("ICC_HOMESERVER")
    if not homeserver:
        problems.append("ICC_HOMESERVER: required, the homeserver URL (https://matrix.example)")
    elif not re.match(r"^https?://[^\s/]+", homeserver):
        problems.append(f"ICC_HOMESERVER: `{homeserver}` is not an http(s) URL")

    user_id = get("ICC_USER_ID")
    if not user_id:
        problems.append("ICC_USER_ID: required, the bot's Matrix ID (@iccbot:crisis.example)")
    elif not MATRIX_USER_ID.match(user_id):
        problems.append(f"ICC_USER_ID: `{user_id}` is not a Matrix user ID (@name:server)")

    password, access_token = get("ICC_PASSWORD"), get("ICC_ACCESS_TOKEN")
    if not password and not access_token and not {"ICC_PASSWORD", "ICC_ACCESS_TOKEN"} & unreadable:
        problems.append("ICC_PASSWORD or ICC_ACCESS_TOKEN: one of them is required to log in")
    for name, value in (("ICC_PASSWORD", password), ("ICC_ACCESS_TOKEN", access_token)):
        if value and value.lower() in PLACEHOLDER_SECRETS:
            problems.append(f"{name}: a placeholder value; set the real secret")

    database_url = get("ICC_DATABASE_URL", "sqlite:///data/icc.db") or ""
    if "ICC_DATABASE_URL" not in unreadable and not re.match(
        r"^(sqlite|postgresql)(\+\w+)?://", database_url
    ):
        problems.append(
            "ICC_DATABASE_URL: use sqlite:///path/to/icc.db or postgresql://user@host/db"
        )

    e2ee = parsed("ICC_E2EE", "true", _parse_bool)
    store_key = get("ICC_STORE_KEY")
    if e2ee and not store_key and "ICC_STORE_KEY" not in unreadable:
        problems.append("ICC_STORE_KEY: required while ICC_E2EE is on (it encrypts the key store)")
    elif store_key and store_key.lower() in PLACEHOLDER_SECRETS:
        problems.append("ICC_STORE_KEY: a placeholder value; use a long random string")

    prefix = get("ICC_COMMAND_PREFIX", "!icc") or "!icc"
    if " " in prefix:
        problems.append(f"ICC_COMMAND_PREFIX: `{prefix}` must be one word")

    dg_room = get("ICC_DG_ROOM")
    # Room IDs carry no server name from room version 12 on (`!opaque`); aliases always do.
    if dg_room and not re.match(r"^(![^\s]+|#[^:\s]+:\S+)$", dg_room):
        problems.append(
            f"ICC_DG_ROOM: `{dg_room}` is neither a room ID (!id) nor an alias (#a:server)"
        )

    dg_digest: str | None = get("ICC_DG_DIGEST", "daily 08:00") or "daily 08:00"
    if dg_digest is None or dg_digest.lower() == "off":
        dg_digest = None
    else:
        try:
            to_cron(dg_digest)
        except ValueError as exc:
            problems.append(f"ICC_DG_DIGEST: {exc} (or `off`)")

    smtp_url, mail_from = get("ICC_SMTP_URL"), get("ICC_MAIL_FROM")
    if smtp_url and not re.match(r"^smtps?://[^\s/]+$", smtp_url.rstrip("/")):
        problems.append("ICC_SMTP_URL: use smtp://user:password@host:587 or smtps://…:465")
    if smtp_url and not (mail_from and EMAIL.match(mail_from)):
        problems.append("ICC_MAIL_FROM: required with ICC_SMTP_URL, the sender's address")
    imap_url = get("ICC_IMAP_URL")
    if imap_url and not re.match(r"^imaps?://[^\s/]+(/\S*)?$", imap_url):
        problems.append("ICC_IMAP_URL: use imaps://user:password@host:993/INBOX")
    public_url = get("ICC_PUBLIC_URL")
    if public_url and not re.match(r"^https?://[^\s/]+", public_url):
        problems.append(f"ICC_PUBLIC_URL: `{public_url}` is not an http(s) URL")
    sms_url, sms_token, sms_secret = get("ICC_SMS_URL"), get("ICC_SMS_TOKEN"), get("ICC_SMS_SECRET")
    problems.extend(_sms_problems(sms_url, sms_token, sms_secret, public_url))

    recovery_key_file = get("ICC_RECOVERY_KEY_FILE")
    if recovery_key_file and not Path(recovery_key_file).is_file():
        problems.append(f"ICC_RECOVERY_KEY_FILE: no file {recovery_key_file}")

    log_format, log_level = log_options(env, problems)

    unknown = sorted(k for k in env if k.startswith("ICC_") and k not in KNOWN_VARIABLES)
    for name in unknown:
        log.warning("unknown setting %s ignored (typo?)", name)

    settings_values = {
        "timezone": parsed("ICC_TIMEZONE", "Europe/Brussels", load_zone),
        "ack_timeout": parsed("ICC_ACK_TIMEOUT", "15m", parse_duration),
        "max_command_age": parsed("ICC_MAX_COMMAND_AGE", "10m", parse_duration),
        "health_addr": parsed("ICC_HEALTH_ADDR", DEFAULT_HEALTH_ADDR, parse_addr),
        "rate_limit": parsed("ICC_RATE_LIMIT", "30/1m", _parse_rate),
        "stranger_budget": parsed("ICC_STRANGER_BUDGET", "5/10m", _parse_rate),
        "fallback_after": parsed("ICC_FALLBACK_AFTER", "5m", parse_duration),
        "web_addr": parsed("ICC_WEB_ADDR", DEFAULT_WEB_ADDR, parse_addr),
    }
    if problems:
        raise SettingsError(problems)
    return Settings(
        homeserver=(homeserver or "").rstrip("/"),
        user_id=user_id or "",
        password=password,
        access_token=access_token,
        database_url=database_url,
        data_dir=Path(get("ICC_DATA_DIR", "data") or "data"),
        config_dir=Path(get("ICC_CONFIG_DIR", "config") or "config"),
        dg_room=dg_room,
        command_prefix=prefix,
        exercise_marker=get("ICC_EXERCISE_MARKER", "EXERCISE EXERCISE EXERCISE") or "",
        e2ee=bool(e2ee),
        store_key=store_key,
        device_name=get("ICC_DEVICE_NAME", "ICC liaison bot") or "ICC liaison bot",
        dg_digest=dg_digest,
        classified_markings=_markings(get("ICC_CLASSIFIED_MARKINGS")),
        smtp_url=smtp_url,
        imap_url=imap_url,
        mail_from=mail_from,
        public_url=public_url.rstrip("/") if public_url else None,
        sms_url=sms_url,
        sms_token=sms_token,
        sms_secret=sms_secret,
        recovery_key_file=Path(recovery_key_file) if recovery_key_file else None,
        log_format=log_format,
        log_level=log_level,
        **settings_values,
    )


def _read_secret_files(env: dict[str, str], problems: list[str]) -> set[str]:
    """Put the content of each secret's `_FILE` in `env` under the secret's name; returns the
    names whose file was not used (the problem noted), so that no second problem is reported
    for them ("required")."""
    unreadable = set()
    for name in SECRET_VARIABLES:
        file_variable = f"{name}_FILE"
        path = env.get(file_variable, "").strip()
        if not path:
            continue
        if env.get(name, "").strip():
            problems.append(f"{name} and {file_variable}: both are set; set only one of them")
            unreadable.add(name)
            continue
        try:
            content = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            problems.append(f"{file_variable}: cannot read {path}: {why}")
            unreadable.add(name)
            continue
        value = content.removesuffix("\n").removesuffix("\r")
        if not value.strip():
            problems.append(f"{file_variable}: {path} is empty")
            unreadable.add(name)
            continue
        env[name] = value
    return unreadable


def log_options(
    environ: Mapping[str, str] | None = None, problems: list[str] | None = None
) -> tuple[str, str]:
    """(format, level) of the logs from ICC_LOG_FORMAT and ICC_LOG_LEVEL (default: the
    environment and `.env`); a bad value is noted in `problems` and the default used."""
    env = gather_environment(environ) if environ is None else environ
    problems = [] if problems is None else problems
    log_format = (env.get("ICC_LOG_FORMAT") or "text").strip().lower() or "text"
    if log_format not in LOG_FORMATS:
        problems.append(f"ICC_LOG_FORMAT: `{log_format}` is not text or json")
        log_format = "text"
    log_level = (env.get("ICC_LOG_LEVEL") or "INFO").strip().upper() or "INFO"
    if log_level not in LOG_LEVELS:
        problems.append(f"ICC_LOG_LEVEL: `{log_level}` is not one of {', '.join(LOG_LEVELS)}")
        log_level = "INFO"
    return log_format, log_level


def _without_password(url: str) -> str:
    """A URL as it may be logged: its password, if any, replaced by `***`."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    user = f"{parts.username}:***@" if parts.username else "***@"
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=user + host).geturl()


def _sms_problems(
    url: str | None, token: str | None, secret: str | None, public_url: str | None
) -> list[str]:
    """What stops SMS from working as configured. A half-configuration that would fail at the
    first page (a gateway without its token, inbound SMS nobody can deliver) is refused at start;
    one that only leaves SMS off, or unread, is logged."""
    problems = []
    if url and not re.match(r"^https?://[^\s/]+", url):
        problems.append(f"ICC_SMS_URL: `{url}` is not an http(s) URL")
    if url and not token:
        problems.append("ICC_SMS_TOKEN: required with ICC_SMS_URL, the gateway's API token")
    if token and token.lower() in PLACEHOLDER_SECRETS:
        problems.append("ICC_SMS_TOKEN: a placeholder value; set the gateway's real token")
    if secret and (secret.lower() in PLACEHOLDER_SECRETS or len(secret) < MIN_SIGNING_SECRET):
        problems.append(
            f"ICC_SMS_SECRET: too easy to guess for signing inbound SMS; use a random string of "
            f"{MIN_SIGNING_SECRET} characters or more"
        )
    if secret and not public_url:
        problems.append(
            "ICC_PUBLIC_URL: required with ICC_SMS_SECRET; the gateway delivers inbound SMS to "
            "ICC_PUBLIC_URL/sms/inbound"
        )
    if token and not url:
        log.warning("ICC_SMS_TOKEN is set but ICC_SMS_URL is not: SMS is off")
    if url and not secret:
        log.warning("ICC_SMS_SECRET is not set: SMS replies are not read, an SMS asks for none")
    host = urlsplit(url).hostname if url else None
    if url and url.startswith("http://") and host not in ("localhost", "127.0.0.1", "::1"):
        log.warning("ICC_SMS_URL is plain http: the gateway's token crosses the network in clear")
    return problems


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"`{text}` is not true or false")


def parse_addr(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"`{text}` is not host:port (e.g. 127.0.0.1:9108)")
    return host.strip("[]"), int(port)


def _markings(text: str | None) -> tuple[str, ...]:
    """`ICC_CLASSIFIED_MARKINGS`, comma-separated, replaces the built-in list when set."""
    if text is None:
        return DEFAULT_MARKINGS
    return tuple(m.strip() for m in text.split(",") if m.strip())


def _parse_rate(text: str) -> tuple[int, timedelta]:
    count, sep, per = text.partition("/")
    if not sep or not count.strip().isdigit() or int(count) < 1:
        raise ValueError(f"`{text}` is not a rate such as 30/1m (commands per sender per period)")
    return int(count), parse_duration(per)

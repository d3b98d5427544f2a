"""Logging: UTC timestamps, one line per event, and no secret ever written out.

Two formats (`ICC_LOG_FORMAT`): `text`, a line a person reads
(`2026-03-12T13:07:01Z INFO bot.app: ready`), and `json`, one object a line for a log
collector: `time`, `level`, `logger`, `message`, and where the line is about one — `event`,
`room`, `command`, `outcome`, `sender`, `ms` (passed as `extra=` by the code that logs them),
`exception` with the traceback. Either way every configured secret (and the access token learnt
at login) is replaced by `***` in everything written: the message, the fields, the traceback.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

QUIET = ("nio", "aiohttp", "apscheduler", "sqlalchemy.engine", "peewee", "weasyprint", "fontTools")
# Fields a line may carry beside its message, in the order a JSON line shows them.
FIELDS = ("event", "room", "command", "outcome", "sender", "ms")
MIN_SECRET = 6  # shorter values would blank out ordinary words


class Redactor:
    """Replaces known secrets in text; learns more as the bot runs (the token from login)."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: list[str] = []
        self.learn(secrets)

    def learn(self, secrets: Iterable[str | None]) -> None:
        fresh = {s for s in secrets if s and len(s) >= MIN_SECRET} - set(self._secrets)
        # The longest first: a URL is replaced whole before the password inside it.
        self._secrets = sorted([*self._secrets, *fresh], key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text


class RedactSecrets(logging.Filter):
    """Replaces any configured secret that slips into a log record's message (a token in a URL,
    say), for handlers that are not ours (a test's capture); ours redact the whole line."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        self._redact = Redactor(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class TextFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)sZ %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
        self.converter = time.gmtime
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, tz=UTC)
        entry: dict[str, Any] = {
            "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        redacted = {
            key: self._redact(value) if isinstance(value, str) else value
            for key, value in entry.items()
        }
        return json.dumps(redacted, ensure_ascii=False, default=str)


class BotHandler(logging.StreamHandler[TextIO]):
    """Standard error, in the configured format, every line redacted."""

    def __init__(self, log_format: str, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact
        self.setFormatter(JsonFormatter(redact) if log_format == "json" else TextFormatter(redact))


def setup_logging(
    level: str = "INFO", secrets: Iterable[str | None] = (), log_format: str = "text"
) -> None:
    root = logging.getLogger()
    root.handlers[:] = [BotHandler(log_format, Redactor(secrets))]
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def add_secrets(secrets: Iterable[str | None]) -> None:
    """Teach every handler a secret learnt after start-up (an access token from login)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, BotHandler):
            handler.redact.learn(secrets)
        else:
            handler.addFilter(RedactSecrets(secrets))

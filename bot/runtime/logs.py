"""Logging: UTC timestamps, one line per event, and no secret ever written out."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

QUIET = ("nio", "aiohttp", "apscheduler", "sqlalchemy.engine", "peewee")


class RedactSecrets(logging.Filter):
    """Replaces any configured secret that slips into a log line (a token in a URL, say)."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s and len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in self._secrets:
            redacted = redacted.replace(secret, "***")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def setup_logging(level: str = "INFO", secrets: Iterable[str | None] = ()) -> None:
    handler = logging.StreamHandler()
    formatter = logging.Formatter(
        "%(asctime)sZ %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def add_secrets(secrets: Iterable[str | None]) -> None:
    """Teach every handler a secret learnt after start-up (an access token from login)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactSecrets(secrets))

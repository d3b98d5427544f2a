"""Helpers for the operators' side: the bot's `/livez`, `/readyz` and `/metrics` asked over
HTTP, a metric's value read from a registry, and the deployment files read as the tools that
use them read them (a systemd unit, the Dockerfile's environment)."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

from bot.runtime.logs import BotHandler, Redactor
from bot.runtime.metrics import Metrics

REPO = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    """A loopback port nothing listens on now (for a process told its port in advance)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def get(port: int, path: str) -> tuple[int, Any]:
    """GET http://127.0.0.1:<port><path>: (status, the JSON body, or the text if not JSON);
    (0, the error) when nothing answers."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
            http.get(f"http://127.0.0.1:{port}{path}") as answer,
        ):
            if answer.content_type == "application/json":
                return answer.status, await answer.json()
            return answer.status, await answer.text()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return 0, exc


async def answers(port: int, path: str, status: int, timeout: float = 20) -> Any:
    """Wait until `path` answers `status`; the body it answered with."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got, body = await get(port, path)
        if got == status:
            return body
        if loop.time() > deadline:
            raise AssertionError(f"{path} on {port}: {got} {body!r}, not {status}")
        await asyncio.sleep(0.2)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    """The value of one sample (`icc_commands_total`, with its labels), 0 when not there yet."""
    return metrics.registry.get_sample_value(name, labels) or 0.0


@contextmanager
def logging_into(
    buffer: io.StringIO, log_format: str, secrets: Iterable[str] = ()
) -> Iterator[BotHandler]:
    """The bot's own log handler (as `setup_logging` makes it) on the root logger, writing
    into `buffer`, for the length of the block."""
    root = logging.getLogger()
    handler = BotHandler(log_format, Redactor(secrets))
    handler.setStream(buffer)
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def unit_entries(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit file: each section's `Key=value` lines in order (keys repeat in units)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"{path}: `{line}` outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"{path}: `{line}` is not Key=value"
        current.append((key.strip(), value.strip()))
    return sections


def unit_environment(entries: list[tuple[str, str]]) -> dict[str, str]:
    """The variables a unit's `Environment=` lines set (one `NAME=value` each here)."""
    return dict(value.split("=", 1) for key, value in entries if key == "Environment")


def dockerfile_environment(path: Path) -> dict[str, str]:
    """The variables the Dockerfile's final stage sets with `ENV`."""
    text = path.read_text().replace("\\\n", " ")
    final = text.rsplit("\nFROM ", 1)[-1]
    found: dict[str, str] = {}
    for line in final.splitlines():
        if line.startswith("ENV "):
            found.update(re.findall(r"(\w+)=(\S+)", line))
    return found

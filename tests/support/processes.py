"""The bot as a real process: `python -m bot …` run to its end (`run_cli`), `icc-bot run` started
(`start_process`, `start_ready`) with its output in a log file that a test waits on
(`wait_for_log`), in a clean environment (`process_env`)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path


def run_cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `python -m bot …` in a clean environment plus `env`."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=process_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def process_env(env: dict[str, str]) -> dict[str, str]:
    """This environment without any ICC_ setting of the developer's, plus `env`."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ICC_")} | env


def start_process(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """`icc-bot run` as a real process, its output appended to log_path."""
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        env=process_env(env),
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def start_ready(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """`icc-bot run`, once it logged that it is ready (killed if it never does)."""
    process = start_process(env, log_path)
    try:
        await wait_for_log(log_path, "INFO bot.app: ready")
    except BaseException:
        process.kill()
        process.wait(10)
        raise
    return process


async def wait_for_log(log_path: Path, text: str, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while text not in log_path.read_text(errors="replace"):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"`{text}` not logged:\n{log_path.read_text()[-3000:]}")
        await asyncio.sleep(0.1)

"""The bot as a real process: `python -m bot …` run to its end (`run_cli`), `icc-bot run` started
(`start_process`, `start_ready`) with its output in a log file that a test waits on
(`wait_for_log`), in a clean environment (`process_env`); and `BotProcess`, one `icc-bot run`
killed and started again on the same data and database."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

READY = "INFO bot.app: ready"


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
        await wait_for_log(log_path, READY)
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


class BotProcess:
    """`icc-bot run` on `env` (its data dir, its database), its output appended to `log_path`:
    started, killed with SIGKILL and started again where it left off, stopped with SIGTERM."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env, self.log_path = env, log_path
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def launch(self) -> None:
        """Started, not waited for: the test waits for what the bot does next."""
        self.process = start_process(self.env, self.log_path)
        self.starts += 1

    async def start(self, timeout: float = 60) -> None:
        """Started, once this start (not an earlier one) logged that it is ready; killed if it
        exits or is not ready in time."""
        self.launch()
        assert self.process is not None
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            while self.log_path.read_text(errors="replace").count(READY) < self.starts:
                assert self.process.poll() is None, f"the bot exited: {self.log()}"
                assert asyncio.get_running_loop().time() < deadline, (
                    f"the bot was not ready in {timeout:g} s: {self.log()}"
                )
                await asyncio.sleep(0.05)
        except BaseException:
            self.process.kill()
            self.process.wait(10)
            raise

    def kill(self) -> None:
        """SIGKILL: the process dies where it stands, nothing flushed or drained."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, as an operator's stop (nothing if it has exited); its exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

"""The real bot in the test's own event loop: `RunningBot` (started, stopped, started again),
`bot_running` around a block, the quick `FAST` tuning, the environment of a bot run
(`make_bot_env`), and `CrashPoint`, where a test makes it die."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.app import App, Tuning
from bot.chat.registry import CommandFamily
from bot.commands import all_families
from bot.devserver import DevServer
from bot.settings import Settings, load_settings
from tests.support.cast import Cast


def make_bot_env(
    directory: Path, synapse: DevServer, cast: Cast, database_url: str
) -> dict[str, str]:
    """The environment of a bot run under `directory`: its own data dir, config dir (with the
    cast's directory.yaml) and database."""
    config_dir = directory / "config"
    config_dir.mkdir()
    (config_dir / "directory.yaml").write_text(yaml.safe_dump(cast.directory()))
    return {
        "ICC_HOMESERVER": synapse.base_url,
        "ICC_USER_ID": cast.bot.user_id,
        "ICC_PASSWORD": cast.bot.password,
        "ICC_DATABASE_URL": database_url,
        "ICC_DATA_DIR": str(directory / "data"),
        "ICC_CONFIG_DIR": str(config_dir),
        "ICC_E2EE": "false",
        "ICC_HEALTH_ADDR": "127.0.0.1:0",
    }


FAST = Tuning(
    sync_timeout_ms=1_000, backoff=(0.2, 1.0), drain_seconds=3.0, key_wait=timedelta(seconds=3)
)


class RunningBot:
    """The real App, run in this event loop; `restart` is a stop and a fresh start."""

    def __init__(
        self, settings: Settings, families: list[Any] | None = None, tuning: Tuning = FAST
    ) -> None:
        self.settings = settings
        self.families = families
        self.tuning = tuning
        self.app: App | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> App:
        self.app = App(self.settings, self.tuning, families=self.families)
        self._task = asyncio.create_task(self.app.run())
        ready = asyncio.create_task(self.app.ready.wait())
        done, _ = await asyncio.wait({self._task, ready}, timeout=30, return_when="FIRST_COMPLETED")
        if self._task in done:
            ready.cancel()
            self._task.result()  # raises the start-up failure
        if ready not in done:
            raise TimeoutError("the bot did not become ready within 30 s")
        return self.app

    async def stop(self) -> None:
        if self.app is not None and self._task is not None:
            self.app.stop()
            await asyncio.wait_for(self._task, 20)
            self.app, self._task = None, None


@asynccontextmanager
async def bot_running(
    env: dict[str, str], *extra_families: CommandFamily, tuning: Tuning = FAST
) -> AsyncIterator[RunningBot]:
    """The bot with `env`, plus command families only a test declares, started and stopped."""
    families = [*all_families(), *extra_families] if extra_families else None
    running = RunningBot(load_settings(env), families=families, tuning=tuning)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


class CrashPoint:
    """`owner.name` hangs, as if the process died right there, the first time `when(*args,
    **kwargs)` holds; `reached` is set at that moment, `restore()` puts the real one back (for
    the restart). The stop that follows cancels the hung call, which is what a kill leaves."""

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        owner: Any,
        name: str,
        when: Callable[..., bool] = lambda *args, **kwargs: True,
    ) -> None:
        self._monkeypatch, self._owner, self._name = monkeypatch, owner, name
        self._real = getattr(owner, name)
        self.reached = asyncio.Event()

        async def hang_or_run(*args: Any, **kwargs: Any) -> Any:
            if when(*args, **kwargs):
                self.reached.set()
                await asyncio.Event().wait()
            return await self._real(*args, **kwargs)

        monkeypatch.setattr(owner, name, hang_or_run)

    async def wait(self, timeout: float = 15) -> None:
        await asyncio.wait_for(self.reached.wait(), timeout)

    def restore(self) -> None:
        self._monkeypatch.setattr(self._owner, self._name, self._real)

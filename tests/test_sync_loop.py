"""The sync loop's back-off, with the one thing a real homeserver cannot be made to do on cue:
fail at an exact moment. Everything else about the loop is tested against Synapse."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from nio import SyncError

from bot.matrix import sync as sync_module
from bot.matrix.sync import SyncLoop
from bot.storage.db import Database


class FailingClient:
    """Answers sync with the given failures, then ends the test by cancelling."""

    user_id = "@bot:test"
    olm = None

    def __init__(self, failures: list[Any]) -> None:
        self.failures = failures
        self.calls = 0

    async def upload_filter(self, **_: Any) -> Any:
        return SimpleNamespace(filter_id="f1")

    async def sync(self, **_: Any) -> Any:
        self.calls += 1
        if not self.failures:
            raise asyncio.CancelledError
        failure = self.failures.pop(0)
        if isinstance(failure, BaseException):
            raise failure
        return failure


async def test_sync_failures_back_off_exponentially(
    monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    db = Database(database_url)
    await db.upgrade()
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(sync_module.asyncio, "sleep", fake_sleep)
    client = FailingClient(
        [SyncError("bad gateway", status_code="502")] * 3
        + [ConnectionResetError("reset by peer"), TimeoutError()]
        + [SyncError("bad gateway", status_code="502")] * 5
    )
    loop = SyncLoop(
        client,
        db,
        wants=lambda *_: True,
        dispatch=lambda _: None,  # type: ignore[arg-type]
        on_invite=lambda *_: asyncio.sleep(0),
        on_ready=lambda: asyncio.sleep(0),
        backoff=(5.0, 60.0),
    )
    with pytest.raises(asyncio.CancelledError):
        await loop.run()
    await db.dispose()
    assert slept == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0, 60.0, 60.0, 60.0, 60.0]
    assert client.calls == 11

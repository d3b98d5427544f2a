"""A bot world on an event loop of its own, for property tests.

Hypothesis calls each example as a plain function, and pytest-asyncio gives each test its own
event loop; a bot (a desk, or a real App on the test homeserver) that serves every example of a
module runs instead on a background thread's loop, and examples call into it with `call`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any


class BackgroundLoop:
    """An asyncio loop running on a daemon thread until `close`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 300) -> Any:
        """Run `coro` on the loop and wait for its result (or its exception)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class OnBackground:
    """A world whose coroutines run on the background loop `serving` gave it (`background`)."""

    background: BackgroundLoop | None = None
    timeout: float = 300

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        assert self.background is not None, "not served yet"
        return self.background.call(coro, timeout or self.timeout)


@contextmanager
def serving(
    start: Callable[[], Coroutine[Any, Any, Any]],
    stop: Callable[[], Coroutine[Any, Any, Any]],
    *,
    stop_timeout: float = 60,
) -> Iterator[BackgroundLoop]:
    """A background loop on which `start()` ran; `stop()` runs there at the end, even when the
    start failed half-way, before the loop ends."""
    background = BackgroundLoop()
    background.start()
    try:
        try:
            background.call(start())
            yield background
        finally:
            background.call(stop(), timeout=stop_timeout)
    finally:
        background.close()


class ErrorLog(logging.Handler):
    """Every ERROR the bot logs, with its traceback: `since(mark)` is what came after `mark`
    (a `len(records)` taken earlier)."""

    def __init__(self, logger: str = "bot") -> None:
        super().__init__(logging.ERROR)
        self.logger = logger
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        trace = logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        self.records.append(f"{record.name}: {record.getMessage()[:500]}\n{trace}")

    def since(self, mark: int) -> list[str]:
        return self.records[mark:]

    def attach(self) -> None:
        logging.getLogger(self.logger).addHandler(self)

    def detach(self) -> None:
        logging.getLogger(self.logger).removeHandler(self)

"""A real SMTP server (aiosmtpd) in a process of its own, keeping every message it is given with
the moment it arrived.

A process, not a thread of the bench's: a thread would share the GIL with whatever client is
being timed, so the server's own work (reading the lines, the DATA, its event loop) would compete
for the same interpreter as the bot or the bare client, and unevenly — the busier client would
also slow the server's answers. An operator's SMTP server is another process too. Arrival times
are `time.monotonic()` in the server process: CLOCK_MONOTONIC on Linux, the same clock in every
process, so they compare with the bench's own `time.monotonic()`.

    sink = SmtpSink(); sink.start()
    … send to sink.url …
    received = await sink.take(300)      # waits for 300 messages, hands them over, forgets them
    sink.stop()
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bot.devserver import free_port


@dataclass(frozen=True)
class Received:
    """One message as the server got it: the envelope, the bytes of DATA, when DATA ended."""

    arrived: float  # time.monotonic() in the server process
    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes


@dataclass(frozen=True)
class Taken:
    """What `take` hands over: the messages, and the most SMTP connections open at once since
    the last take."""

    messages: list[Received]
    peak_connections: int


class SmtpSink:
    """The parent's handle on the server process."""

    def __init__(self) -> None:
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._process is not None, "not started"
        return self._process.pid

    def start(self, timeout: float = 30) -> None:
        """`python -m bench.smtp_sink` (not multiprocessing, whose spawn re-imports the
        parent's main module), talking over a socket pair."""
        ours, theirs = socket.socketpair()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.smtp_sink", str(self.port), str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            cwd=Path(__file__).resolve().parent.parent,
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self._conn = Connection(ours.detach())
        if not self._conn.poll(timeout):
            raise TimeoutError(f"the SMTP sink did not start within {timeout}s")
        assert self._conn.recv() == "ready"

    async def take(self, count: int, timeout: float = 120) -> Taken:
        """Wait until the server holds `count` messages; hand them over and forget them."""
        return await asyncio.to_thread(self._ask, ("take", count, timeout), timeout + 10)

    def _ask(self, request: tuple[Any, ...], timeout: float) -> Any:
        assert self._conn is not None, "not started"
        self._conn.send(request)
        if not self._conn.poll(timeout):
            raise TimeoutError(f"the SMTP sink did not answer {request[0]!r} in {timeout}s")
        answer = self._conn.recv()
        if isinstance(answer, Exception):
            raise answer
        return answer

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            try:
                self._ask(("stop",), 10)
                self._process.wait(10)
            except (OSError, EOFError, TimeoutError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        assert self._conn is not None
        self._conn.close()


# -- in the server process -----------------------------------------------------------------------


class _Store:
    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.changed = threading.Condition()
        self.open = 0
        self.peak = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        arrived = time.monotonic()
        with self.changed:
            self.messages.append(
                Received(
                    arrived, envelope.mail_from, tuple(envelope.rcpt_tos), bytes(envelope.content)
                )
            )
            self.changed.notify_all()
        return "250 Message accepted"

    def take(self, count: int, timeout: float) -> Taken | Exception:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.messages) >= count, timeout):
                return TimeoutError(f"{len(self.messages)} of {count} messages in {timeout}s")
            taken = Taken(self.messages, self.peak)
            self.messages, self.peak = [], self.open
        return taken


def serve(conn: Connection, port: int) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP

    store = _Store()

    class CountingSMTP(SMTP):
        """aiosmtpd's server, counting the connections open at once."""

        def connection_made(self, transport: Any) -> None:
            store.open += 1
            store.peak = max(store.peak, store.open)
            super().connection_made(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            store.open -= 1
            super().connection_lost(exc)

    class CountingController(Controller):
        def factory(self) -> SMTP:
            return CountingSMTP(self.handler, **self.SMTP_kwargs)

    # server_hostname: else every connection asks socket.getfqdn() for the greeting.
    controller = CountingController(
        store, hostname="127.0.0.1", port=port, server_hostname="sink.bench.test"
    )
    controller.start()
    store.take(0, 0)  # forget the controller's own readiness probe in the count
    conn.send("ready")
    try:
        while True:
            request = conn.recv()
            if request[0] == "stop":
                conn.send("stopped")
                return
            if request[0] == "take":
                conn.send(store.take(request[1], request[2]))
    except EOFError:
        pass  # the bench went away
    finally:
        controller.stop()


if __name__ == "__main__":
    # As bench.smtp_sink, not __main__: what it sends back unpickles in the bench.
    from bench.smtp_sink import serve as run

    run(Connection(int(sys.argv[2])), int(sys.argv[1]))

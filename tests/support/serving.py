"""A test server (SMTP sink, Dovecot, …) started for the length of a `with` block."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar


class Startable(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


S = TypeVar("S", bound=Startable)


@contextmanager
def serving(server: S) -> Iterator[S]:
    """`server` started, and stopped at the end of the block however it ends."""
    server.start()
    try:
        yield server
    finally:
        server.stop()

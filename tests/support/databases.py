"""The databases the tests run on: a fresh SQLite file, or a throwaway schema on the PostgreSQL
server (`fresh_database`); `BACKENDS`, the two a test is parametrised over."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

PG_DSN = os.environ.get("ICC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgresql"]


def _pg_schema_url(schema: str) -> str:
    return f"{PG_DSN}?options=-csearch_path%3D{schema}"


@contextmanager
def fresh_database(backend: str, directory: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file in `directory`, or a throwaway schema on the
    PostgreSQL server, dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'icc.db'}"
        return
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield _pg_schema_url(schema)
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")

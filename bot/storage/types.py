"""Column types that keep the bot's invariants at the database edge."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# Integer columns (ids, sequence numbers) are 32-bit on PostgreSQL. A number someone typed
# (`PG-99999999999999999999`) is looked up only if a row could have it; sent to the database it
# would overflow there (SQLite: OverflowError; PostgreSQL: an error that looks like an outage).
MAX_INT = 2**31 - 1


def could_be_id(number: int) -> bool:
    """Whether a row's id (or sequence number, from 1) can be `number`."""
    return 0 < number <= MAX_INT


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend.

    SQLite stores datetimes without their zone; this type refuses naive values on the way in and
    re-attaches UTC on the way out, so `a < b` never compares naive with aware after a round trip.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; the bot stores UTC-aware times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

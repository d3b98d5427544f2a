"""Many rows in one statement, for the fan-outs: a page to 300 people, their 300 timers.

The ORM's unit of work inserts and updates such rows one statement at a time, and building 300
table objects costs as much again. Measured on SQLite (bench/README.md): adding 300 page targets
took 200–300 ms, their 300 timers as much again, and marking them delivered one by one 400–700
ms; one executemany does each in about 20 ms. That time stood between a page command and its
first message, and between the last message and the board.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Row, insert, inspect, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.db import dialect_of


async def insert_rows(
    session: AsyncSession, model: type[SQLModel], values: Sequence[dict[str, Any]], *returning: Any
) -> list[Row[Any]]:
    """Insert one row per dict of column values, batched; returns the `returning` columns of the
    new rows in no particular order (name a key among them to tell the rows apart).

    Not `sort_by_parameter_order`: SQLite cannot batch with it and sends one INSERT per row.
    """
    if not values:
        return []
    statement = insert(model)
    if returning:
        statement = statement.returning(*returning)
    result = await session.exec(statement, params=list(values))
    return list(result.all()) if returning else []


async def update_by_id(
    session: AsyncSession, model: type[SQLModel], updates: Mapping[Any, Mapping[str, object]]
) -> None:
    """Set each row's fields, `{primary key: {field: value}}` (an `id`, or an organisation's
    `key`): one statement per distinct set of fields."""
    (key,) = (column.name for column in inspect(model).primary_key)
    batches: dict[tuple[str, ...], list[dict[str, object]]] = defaultdict(list)
    for row_key, fields in updates.items():
        batches[tuple(sorted(fields))].append({key: row_key, **fields})
    for params in batches.values():
        # A list of parameter sets: an UPDATE … WHERE id = :id per set. (A single dict instead of
        # a list would update every row of the table.)
        await session.exec(update(model), params=list(params))


async def insert_missing(
    session: AsyncSession, model: type[SQLModel], values: Sequence[dict[str, Any]], key: str
) -> set[Any]:
    """Insert the rows whose `key` is not in the table yet, in one statement; returns the keys
    of those inserted (a look-up first, then an insert, is one more round trip in the way of
    every command: the sync loop records each one before it runs)."""
    if not values:
        return set()
    statement = _insert(session, model).on_conflict_do_nothing(index_elements=[key])
    result = await session.exec(statement.returning(getattr(model, key)), params=list(values))
    return {row[0] for row in result.all()}


async def upsert(
    session: AsyncSession, model: type[SQLModel], values: dict[str, Any], key: str
) -> None:
    """Insert the row, or update it where `key` exists already: one statement."""
    statement = _insert(session, model).values(**values)
    changes = {name: value for name, value in values.items() if name != key}
    await session.exec(statement.on_conflict_do_update(index_elements=[key], set_=changes))


def _insert(session: AsyncSession, model: type[SQLModel]) -> Any:
    """The dialect's own INSERT, which knows ON CONFLICT (both dialects the bot runs on do)."""
    return {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[dialect_of(session)](model)

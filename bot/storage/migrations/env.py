"""Alembic environment: the bot hands in a live connection (see bot.storage.db.Database.upgrade).

Run from the `alembic` command line, it reads ICC_DATABASE_URL instead.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from bot.storage import models  # noqa: F401  (registers the tables on the metadata)
from bot.storage.models import metadata

config = context.config


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_url() -> None:
    import os

    from bot.storage.db import async_url

    engine = create_async_engine(
        async_url(os.environ.get("ICC_DATABASE_URL", "sqlite:///data/icc.db"))
    )
    async with engine.begin() as conn:
        await conn.run_sync(_configure_and_run)
    await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    _configure_and_run(connection)
else:
    asyncio.run(_run_from_url())

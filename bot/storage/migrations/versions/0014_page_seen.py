"""page seen: when a paged person's read receipt showed they had read their page

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.storage.types

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("page_target", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("seen_at", bot.storage.types.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("page_target", schema=None) as batch_op:
        batch_op.drop_column("seen_at")

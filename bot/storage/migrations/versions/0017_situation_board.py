"""situation board: the epoch of an activation's board links, moved on by `board revoke`

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import bot.storage.types

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "situation_board",
        sa.Column("activation_id", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("revoked_at", bot.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["activation_id"],
            ["activation.id"],
            name=op.f("fk_situation_board_activation_id_activation"),
        ),
        sa.PrimaryKeyConstraint("activation_id", name=op.f("pk_situation_board")),
    )


def downgrade() -> None:
    op.drop_table("situation_board")

"""actions: A-n, what someone must do in an activation, by when

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import bot.storage.types

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = bot.storage.types.UTCDateTime(timezone=True)
    op.create_table(
        "action",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("activation_id", sa.Integer(), nullable=False),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("owners", sa.JSON(), nullable=False),
        sa.Column("due_at", when, nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.Column("opened_by_event", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("reminded_at", when, nullable=True),
        sa.Column("chased_at", when, nullable=True),
        sa.Column("done_at", when, nullable=True),
        sa.Column("done_by", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("done_note", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.ForeignKeyConstraint(
            ["activation_id"], ["activation.id"], name=op.f("fk_action_activation_id_activation")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action")),
        sa.UniqueConstraint("opened_by_event", name=op.f("uq_action_opened_by_event")),
    )
    with op.batch_alter_table("action", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_action_activation_id"), ["activation_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("action", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_action_activation_id"))
    op.drop_table("action")

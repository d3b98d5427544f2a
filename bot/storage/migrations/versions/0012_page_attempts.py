"""page attempts: each try to reach a person through a channel other than Matrix (e-mail)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import bot.storage.types

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "page_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("tried_at", bot.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", bot.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("message_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["target_id"], ["page_target.id"], name=op.f("fk_page_attempt_target_id_page_target")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_page_attempt")),
    )
    with op.batch_alter_table("page_attempt", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_page_attempt_target_id"), ["target_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("page_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_page_attempt_target_id"))
    op.drop_table("page_attempt")

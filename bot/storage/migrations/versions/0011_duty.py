"""duty rotas: overrides (`oncall override`), and the team a page target was paged as on duty for

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import bot.storage.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "duty_override",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("handle", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("until", bot.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("set_by", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("opened_by_event", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("created_at", bot.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_duty_override")),
        sa.UniqueConstraint("opened_by_event", name=op.f("uq_duty_override_opened_by_event")),
    )
    with op.batch_alter_table("duty_override", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_duty_override_team"), ["team"], unique=False)
    with op.batch_alter_table("page_target", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("duty_team", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("page_target", schema=None) as batch_op:
        batch_op.drop_column("duty_team")
    with op.batch_alter_table("duty_override", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_duty_override_team"))
    op.drop_table("duty_override")

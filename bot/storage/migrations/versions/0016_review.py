"""review: after-action feedback, the review's versions, improvement actions

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import bot.storage.types

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = bot.storage.types.UTCDateTime(timezone=True)
    text = sqlmodel.sql.sqltypes.AutoString
    with op.batch_alter_table("action", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("improvement", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("activation_id", sa.Integer(), nullable=False),
        sa.Column("matrix_id", text(length=255), nullable=False),
        sa.Column("handle", text(length=64), nullable=True),
        sa.Column("name", text(length=255), nullable=False),
        sa.Column("asked_at", when, nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("text", text(), nullable=True),
        sa.Column("signed", sa.Boolean(), nullable=False),
        sa.Column("given_at", when, nullable=True),
        sa.Column("versions", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["activation_id"], ["activation.id"], name=op.f("fk_feedback_activation_id_activation")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint("activation_id", "matrix_id", name="uq_feedback_person"),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_feedback_activation_id"), ["activation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_feedback_matrix_id"), ["matrix_id"], unique=False)
    op.create_table(
        "review",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("activation_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("reason", text(length=16), nullable=False),
        sa.Column("posted_by", text(length=255), nullable=False),
        sa.Column("posted_at", when, nullable=False),
        sa.Column("feedback_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["activation_id"], ["activation.id"], name=op.f("fk_review_activation_id_activation")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review")),
        sa.UniqueConstraint("activation_id", "version", name="uq_review_version"),
    )
    with op.batch_alter_table("review", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_review_activation_id"), ["activation_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("review", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_activation_id"))
    op.drop_table("review")
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_matrix_id"))
        batch_op.drop_index(batch_op.f("ix_feedback_activation_id"))
    op.drop_table("feedback")
    with op.batch_alter_table("action", schema=None) as batch_op:
        batch_op.drop_column("improvement")

"""contacts without a Matrix ID: reached by e-mail or SMS only

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.alter_column("matrix_id", existing_type=sa.String(length=255), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE contact SET matrix_id = '~' || handle WHERE matrix_id IS NULL")
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.alter_column("matrix_id", existing_type=sa.String(length=255), nullable=False)

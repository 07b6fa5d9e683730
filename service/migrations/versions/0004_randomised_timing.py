"""randomised reminder timing: a category's opt-in and a campaign's assignment

Revision ID: 0004_randomised_timing
Revises: 0003_source_coverage

Plain ``ADD COLUMN`` (no batch table rebuild: on SQLite a rebuild of ``categories`` would
trip the foreign keys of existing campaigns and records).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_randomised_timing"
down_revision = "0003_source_coverage"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("categories", sa.Column("randomised_timing", sa.JSON(), nullable=False,
                                          server_default=sa.text("'{}'")))
    op.add_column("campaigns", sa.Column("timing", sa.JSON(), nullable=False,
                                         server_default=sa.text("'{}'")))


def downgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("timing")
    with op.batch_alter_table("categories", schema=None) as batch_op:
        batch_op.drop_column("randomised_timing")

"""import outcomes: file fingerprint, warnings, progress, owner and heartbeat of a batch

Revision ID: 0005_import_outcomes
Revises: 0004_randomised_timing
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_import_outcomes"
down_revision = "0004_randomised_timing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("import_batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("file_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("warnings", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("progress", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("owner", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.create_index("ix_import_batches_file_sha256", ["file_sha256"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("import_batches", schema=None) as batch_op:
        batch_op.drop_index("ix_import_batches_file_sha256")
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("owner")
        batch_op.drop_column("progress")
        batch_op.drop_column("warnings")
        batch_op.drop_column("file_sha256")

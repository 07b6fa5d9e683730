"""forecast run owner and heartbeat: a run left queued or running by a process that died
(kill -9, a crash, a restart mid-run) is marked failed (interrupted) at the next start
instead of showing ``running`` until it goes stale

Revision ID: 0010_forecast_run_owner
Revises: 0009_recompute_evaluation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_forecast_run_owner"
down_revision = "0009_recompute_evaluation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("forecast_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("forecast_runs", schema=None) as batch_op:
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("owner")

"""decision thresholds learned per category (issue 11): category rules, the run's decisions,
campaign windows on peaks and campaigns, stored decision backtests

Revision ID: 0006_decision_thresholds
Revises: 0005_import_outcomes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_decision_thresholds"
down_revision = "0005_import_outcomes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN (no batch rebuild): SQLite enforces the foreign keys of the rows that
    # already reference these tables, so they may not be recreated
    for column in (sa.Column("beta", sa.Float(), nullable=False, server_default=sa.text("1")),
                   sa.Column("reminder_cost", sa.Float(), nullable=True),
                   sa.Column("miss_cost", sa.Float(), nullable=True),
                   sa.Column("max_campaign_weeks", sa.Integer(), nullable=False,
                             server_default=sa.text("6"))):
        op.add_column("categories", column)
    op.add_column("forecast_runs", sa.Column("decisions", sa.JSON(), nullable=False,
                                             server_default=sa.text("'{}'")))
    for name, kind in (("onset", sa.Date()), ("p_min", sa.Float()), ("window_start", sa.Date()),
                       ("window_end", sa.Date()), ("part", sa.Integer()),
                       ("parts", sa.Integer())):
        op.add_column("peaks", sa.Column(name, kind, nullable=True))
    for name, kind in (("onset", sa.Date()), ("decision_threshold", sa.Float()),
                       ("part", sa.Integer()), ("parts", sa.Integer())):
        op.add_column("campaigns", sa.Column(name, kind, nullable=True))
    op.create_table(
        "decision_backtests",
        sa.Column("series_id", sa.String(length=200), nullable=False),
        sa.Column("origin", sa.Date(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("weeks", sa.JSON(), nullable=False),
        sa.Column("windows", sa.JSON(), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("series_id", "origin", "fingerprint",
                                name=op.f("pk_decision_backtests")),
    )


def downgrade() -> None:
    op.drop_table("decision_backtests")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        for name in ("parts", "part", "decision_threshold", "onset"):
            batch_op.drop_column(name)
    with op.batch_alter_table("peaks", schema=None) as batch_op:
        for name in ("parts", "part", "window_end", "window_start", "p_min", "onset"):
            batch_op.drop_column(name)
    with op.batch_alter_table("forecast_runs", schema=None) as batch_op:
        batch_op.drop_column("decisions")
    with op.batch_alter_table("categories", schema=None) as batch_op:
        for name in ("max_campaign_weeks", "miss_cost", "reminder_cost", "beta"):
            batch_op.drop_column(name)

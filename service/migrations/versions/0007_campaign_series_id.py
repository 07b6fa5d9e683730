"""the series id on campaigns (issue 15): signal|category|region, complaints for a campaign
made by hand, backfilled from the campaign's own columns

Revision ID: 0007_campaign_series_id
Revises: 0006_decision_thresholds
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_campaign_series_id"
down_revision = "0006_decision_thresholds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # added nullable, backfilled, then made NOT NULL (a batch rebuild on SQLite: no row
    # references campaigns through a foreign key that the copy would break)
    op.add_column("campaigns", sa.Column("series_id", sa.String(length=200), nullable=True))
    campaigns = sa.table("campaigns", sa.column("series_id", sa.String()),
                         sa.column("signal", sa.String()), sa.column("category", sa.String()),
                         sa.column("region", sa.String()))
    op.execute(campaigns.update().values(series_id=(
        sa.func.coalesce(campaigns.c.signal, "complaints") + "|" + campaigns.c.category
        + "|" + campaigns.c.region)))
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.alter_column("series_id", existing_type=sa.String(length=200), nullable=False)
        batch_op.create_index(batch_op.f("ix_campaigns_series_id"), ["series_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaigns_series_id"))
        batch_op.drop_column("series_id")

"""materialised evaluation (issue 13): the evaluation's input generation and the computed
scorecards and campaign effects the API serves; outbox ``claims`` (``attempts`` now counts
sends) and ``claimed_by`` (the scheduler holding a claim)

Revision ID: 0008_materialised_evaluation
Revises: 0007_campaign_series_id
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_materialised_evaluation"
down_revision = "0007_campaign_series_id"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluation_state",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("week", sa.Date(), nullable=True),
        sa.Column("worker", sa.String(length=100), nullable=True),
        sa.Column("worker_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluation_state")),
    )
    op.create_table(
        "evaluation_results",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", "key", name=op.f("pk_evaluation_results")),
    )


    # plain ADD COLUMN (no batch rebuild), as in 0006
    op.add_column("outbox", sa.Column("claims", sa.Integer(), nullable=False,
                                      server_default=sa.text("0")))
    op.add_column("outbox", sa.Column("claimed_by", sa.String(length=100), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "claimed_by")
    op.drop_column("outbox", "claims")
    op.drop_table("evaluation_results")
    op.drop_table("evaluation_state")

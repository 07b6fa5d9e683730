"""source coverage and the series summary

Adds ``source_coverage`` (days each source covers, one row per import batch and source) and
``series_sources`` (per series and source: first/last record day and count), and backfills
both tables from the records already stored: each (batch, source) covers its first to last
record day (no import declared a coverage before this revision).

Revision ID: 0003_source_coverage
Revises: 0002_recipient_webhook_secrets
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0003_source_coverage"
down_revision = "0002_recipient_webhook_secrets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "series_sources",
        sa.Column("series_id", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("signal", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("series_id", "source", name=op.f("pk_series_sources")),
    )
    op.create_index("ix_series_sources_signal_source", "series_sources", ["signal", "source"])
    op.create_table(
        "source_coverage",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("signal", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("day_from", sa.Date(), nullable=False),
        sa.Column("day_to", sa.Date(), nullable=False),
        sa.Column("declared", sa.Boolean(), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_coverage")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_source_coverage_signal_source", "source_coverage",
                    ["signal", "source"])
    _backfill()


def _backfill() -> None:
    conn = op.get_bind()
    cols = ("source", "category", "region", "day", "batch_id")
    complaints = sa.table("complaints", *(sa.column(c) for c in cols))
    actions = sa.table("enforcement_actions", *(sa.column(c) for c in cols),
                       sa.column("violation_found", sa.Boolean()))
    summary = sa.table("series_sources", *(sa.column(c) for c in (
        "series_id", "source", "signal", "category", "region", "first_day", "last_day",
        "total")))
    coverage = sa.table("source_coverage", *(sa.column(c) for c in (
        "signal", "source", "day_from", "day_to", "declared", "batch_id")),
        sa.column("created_at", sa.DateTime(timezone=True)))
    now = dt.datetime.now(dt.UTC)
    for signal, t, cond in (("complaints", complaints, None),
                            ("violations", actions, actions.c.violation_found.is_(sa.true()))):
        c = t.c
        cover = (sa.select(sa.literal(signal), c.source, sa.func.min(c.day), sa.func.max(c.day),
                           sa.false(), c.batch_id, sa.literal(now, sa.DateTime(timezone=True)))
                 .group_by(c.batch_id, c.source))
        conn.execute(coverage.insert().from_select(
            ["signal", "source", "day_from", "day_to", "declared", "batch_id", "created_at"],
            cover))
        sid = sa.literal(signal + "|") + c.category + sa.literal("|") + c.region
        rows = (sa.select(sid, c.source, sa.literal(signal), c.category, c.region,
                          sa.func.min(c.day), sa.func.max(c.day), sa.func.count())
                .group_by(c.category, c.region, c.source))
        if cond is not None:
            rows = rows.where(cond)
        conn.execute(summary.insert().from_select(
            ["series_id", "source", "signal", "category", "region", "first_day", "last_day",
             "total"], rows))


def downgrade() -> None:
    op.drop_index("ix_source_coverage_signal_source", table_name="source_coverage")
    op.drop_table("source_coverage")
    op.drop_index("ix_series_sources_signal_source", table_name="series_sources")
    op.drop_table("series_sources")

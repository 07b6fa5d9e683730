"""recompute the materialised evaluation: answers stored by earlier code (campaign effects
before the Student-t interval of the difference-in-differences, issue 14) are marked stale,
so the worker recomputes them with the code being installed; no schema change

Revision ID: 0009_recompute_evaluation
Revises: 0008_materialised_evaluation
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0009_recompute_evaluation"
down_revision = "0008_materialised_evaluation"
branch_labels = None
depends_on = None

_STATE_ID = "evaluation"  # service.store.freshness.STATE_ID, frozen at this revision
_REASON = "upgrade 0009: answers of earlier code are recomputed"
_state = sa.table("evaluation_state", sa.column("id", sa.String()),
                  sa.column("generation", sa.Integer()),
                  sa.column("changed_at", sa.DateTime(timezone=True)),
                  sa.column("reason", sa.String()))


def upgrade() -> None:
    """One step of the input generation (as ``mark_stale`` does); the row is created at
    generation 2 when nothing was ever marked (stored answers then sit at generation 1)."""
    bind = op.get_bind()
    now = dt.datetime.now(dt.UTC)
    if bind.dialect.name == "sqlite":  # SQLite keeps timestamps as naive UTC text
        now = now.replace(tzinfo=None)
    done = bind.execute(sa.update(_state).where(_state.c.id == _STATE_ID).values(
        generation=_state.c.generation + 1, changed_at=now, reason=_REASON))
    if done.rowcount == 0:
        bind.execute(sa.insert(_state).values(id=_STATE_ID, generation=2, changed_at=now,
                                              reason=_REASON))


def downgrade() -> None:
    """Nothing to undo: stale answers are recomputed by any version."""

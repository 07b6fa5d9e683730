"""Freshness of the materialised evaluation: one row that counts changes of its inputs.

Every stage that changes what the evaluation reads (an import, a forecast run, a campaign's
status, a dispatch) calls :func:`mark_stale` in its own transaction; the evaluation worker
(:mod:`service.evaluation.worker`) compares the generation with that of its stored answers.
It lives here, below every stage, so that marking needs no import of the evaluation.

``evaluation_state`` — one row (``id = 'evaluation'``): ``generation`` counts the changes;
``changed_at`` / ``reason`` the latest; ``week`` the ISO week (Monday) the stored figures were
computed in (a new week closes window weeks: stale); ``worker`` / ``worker_until`` the
recompute in progress (one at a time across processes).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, Date, DateTime, Integer, String, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from service.store.base import Base, utcnow

__all__ = ["STATE_ID", "EvaluationState", "LOCAL_MARKS", "connection_of", "mark_stale"]

STATE_ID = "evaluation"
#: Marks made by this process (the API's cache of served answers looks again at once).
LOCAL_MARKS = [0]


class EvaluationState(Base):
    __tablename__ = "evaluation_state"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    changed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reason: Mapped[str | None] = mapped_column(String(200))
    week: Mapped[dt.date | None] = mapped_column(Date)
    worker: Mapped[str | None] = mapped_column(String(100))
    worker_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


def connection_of(bind: Session | Connection) -> Connection:
    """The connection of a session (its transaction) or the connection itself."""
    return bind.connection() if isinstance(bind, Session) else bind


def mark_stale(bind: Session | Connection, reason: str) -> None:
    """The evaluation's inputs changed: every stored answer is to be recomputed.

    One ``UPDATE`` in the caller's transaction (the caller commits), so the mark and the
    change are one unit of work."""
    LOCAL_MARKS[0] += 1
    conn = connection_of(bind)
    now = utcnow()
    done = conn.execute(update(EvaluationState).where(EvaluationState.id == STATE_ID).values(
        generation=EvaluationState.generation + 1, changed_at=now, reason=reason[:200]))
    if done.rowcount == 0:
        try:
            with conn.begin_nested():
                conn.execute(insert(EvaluationState).values(
                    id=STATE_ID, generation=2, changed_at=now, reason=reason[:200]))
        except IntegrityError:  # another writer inserted it first
            conn.execute(update(EvaluationState).where(EvaluationState.id == STATE_ID).values(
                generation=EvaluationState.generation + 1, changed_at=now,
                reason=reason[:200]))

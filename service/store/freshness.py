"""Freshness of the materialised evaluation: one row that counts changes of its inputs.

Every stage that changes what the evaluation reads (an import, a forecast run, a campaign's
status, a dispatch) calls :func:`mark_stale` in its own transaction; the evaluation worker
(:mod:`service.evaluation.worker`) compares the generation with that of its stored answers.
It lives here, below every stage, so that marking needs no import of the evaluation; so does
the table of stored answers (``evaluation_results``, see :mod:`service.evaluation.tables`),
which a mark scoped to some campaigns (``only_effects_of``) carries forward.

``evaluation_state`` — one row (``id = 'evaluation'``): ``generation`` counts the changes;
``changed_at`` / ``reason`` the latest; ``week`` the ISO week (Monday) the stored figures were
computed in (a new week closes window weeks: stale); ``worker`` / ``worker_until`` the
recompute in progress (one at a time across processes).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from sqlalchemy import JSON, Connection, Date, Integer, String, Text, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from service.store.base import Base, UtcDateTime, utcnow

__all__ = ["STATE_ID", "EvaluationState", "EvaluationResult", "LOCAL_MARKS", "connection_of",
           "mark_stale"]

STATE_ID = "evaluation"
#: Marks made by this process (the API's cache of served answers looks again at once).
LOCAL_MARKS = [0]


class EvaluationState(Base):
    __tablename__ = "evaluation_state"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    changed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    reason: Mapped[str | None] = mapped_column(String(200))
    week: Mapped[dt.date | None] = mapped_column(Date)
    worker: Mapped[str | None] = mapped_column(String(100))
    worker_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class EvaluationResult(Base):
    __tablename__ = "evaluation_results"
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    body: Mapped[str | None] = mapped_column(Text)  # the response's JSON, ready to send
    error: Mapped[str | None] = mapped_column(Text)
    computed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    requested_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


def connection_of(bind: Session | Connection) -> Connection:
    """The connection of a session (its transaction) or the connection itself."""
    return bind.connection() if isinstance(bind, Session) else bind


def mark_stale(bind: Session | Connection, reason: str, *,
               only_effects_of: Collection[str] | None = None) -> None:
    """The evaluation's inputs changed: stored answers are to be recomputed.

    One ``UPDATE`` of the generation in the caller's transaction (the caller commits), so the
    mark and the change are one unit of work. By default every stored answer is stale.

    ``only_effects_of``: the change can alter the scorecards and the effects of these
    campaigns only (a dispatch tick's deliveries and its campaigns' status moves among
    committed statuses: see :func:`service.campaigns.scope.evaluation_scope`). Every other
    effect that was current stays current: it is carried to the new generation in the same
    transaction (its body and ``computed_at`` untouched), so the worker recomputes only what
    changed while every cache keyed by the generation still sees the change."""
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
    if only_effects_of is not None:
        _carry_forward(conn, set(only_effects_of))


def _carry_forward(conn: Connection, changed: set[str]) -> None:
    """Effects current before this transaction's mark, of campaigns not in ``changed``: current
    after it (the mark's row lock — SQLite's write lock — keeps other marks out until
    commit, so the generation before it is the one read now minus one)."""
    new = conn.execute(select(EvaluationState.generation)
                       .where(EvaluationState.id == STATE_ID)).scalar_one()
    r = EvaluationResult
    rows = conn.execute(select(r.key, r.params).where(r.kind == "effect",
                                                      r.generation == new - 1)).all()
    keep = [key for key, params in rows if (params or {}).get("campaign_id") not in changed]
    for i in range(0, len(keep), 500):
        chunk = keep[i:i + 500]
        conn.execute(update(r).where(r.kind == "effect", r.generation == new - 1,
                                     r.key.in_(chunk)).values(generation=new))

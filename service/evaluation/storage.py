"""The materialised evaluation: input generations, stored answers, what the API reads.

Every change of the evaluation's inputs calls :func:`mark_stale` (one ``UPDATE`` in the
caller's transaction: a finished forecast run, a dispatch that delivered or dead-lettered
rows, a campaign's status, an import). The worker (:mod:`service.evaluation.worker`) computes
every stored answer whose ``generation`` is older, off the request path; the API only reads
(:func:`read`) and registers a query it has never seen (:func:`request`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.evaluation.tables import STATE_ID, EvaluationResult, EvaluationState
from service.store.freshness import LOCAL_MARKS, connection_of, mark_stale
from service.store.tables import utcnow

__all__ = ["Stored", "State", "LOCAL_MARKS", "mark_stale", "state", "read", "request",
           "scorecard_key", "effect_key", "REQUEST_REFRESH"]

#: A served query's ``requested_at`` is refreshed at most this often (one write per hour).
REQUEST_REFRESH = dt.timedelta(hours=1)


@dataclass(frozen=True)
class State:
    generation: int
    changed_at: dt.datetime | None
    reason: str | None
    week: dt.date | None


@dataclass(frozen=True)
class Stored:
    """A stored answer and whether it is current."""

    body: str | None  # JSON text
    error: str | None
    computed_at: dt.datetime | None
    generation: int
    state: State

    @property
    def pending(self) -> bool:
        """The inputs changed after it was computed (or it never was)."""
        return (self.body is None and self.error is None) or self.generation < self.state.generation

    def meta(self) -> dict[str, Any]:
        """The ``materialised`` block of a response."""
        return {"computed_at": self.computed_at, "inputs_changed_at": self.state.changed_at,
                "recompute_pending": self.pending, "reason": self.state.reason}


def state(bind: Session | Connection) -> State:
    """The current input generation (1 before anything was ever marked)."""
    row = connection_of(bind).execute(select(
        EvaluationState.generation, EvaluationState.changed_at, EvaluationState.reason,
        EvaluationState.week).where(EvaluationState.id == STATE_ID)).first()
    if row is None:
        return State(1, None, None, None)
    return State(int(row.generation), row.changed_at, row.reason, row.week)


def read(bind: Session | Connection, kind: str, key: str) -> Stored | None:
    """The stored answer for (kind, key), None when it was never requested."""
    row = connection_of(bind).execute(
        select(EvaluationResult.body, EvaluationResult.error, EvaluationResult.computed_at,
               EvaluationResult.generation, EvaluationState.generation.label("current"),
               EvaluationState.changed_at, EvaluationState.reason, EvaluationState.week)
        .select_from(EvaluationResult)
        .outerjoin(EvaluationState, EvaluationState.id == STATE_ID)  # one read, not two
        .where(EvaluationResult.kind == kind, EvaluationResult.key == key)).first()
    if row is None:
        return None
    st = (State(int(row.current), row.changed_at, row.reason, row.week)
          if row.current is not None else State(1, None, None, None))
    return Stored(row.body, row.error, row.computed_at, int(row.generation), st)


def request(bind: Session | Connection, kind: str, key: str,
            params: Mapping[str, Any] | None = None) -> None:
    """Register a query for the worker (idempotent; the caller commits): ``params`` are the
    arguments the worker computes it with."""
    conn = connection_of(bind)
    now = utcnow()
    got = conn.execute(select(EvaluationResult.requested_at).where(
        EvaluationResult.kind == kind, EvaluationResult.key == key)).first()
    if got is None:
        try:
            with conn.begin_nested():
                conn.execute(insert(EvaluationResult).values(
                    kind=kind, key=key, generation=0, requested_at=now,
                    params=dict(params or {})))
        except IntegrityError:
            pass  # another request registered it first
        return
    last = got.requested_at
    if last is None or now - last > REQUEST_REFRESH:
        conn.execute(update(EvaluationResult).where(
            EvaluationResult.kind == kind, EvaluationResult.key == key).values(
            requested_at=now))


def scorecard_key(*, group_by: str, date_from: dt.date | None, date_to: dt.date | None,
                  signal: str, pooled_by: str) -> str:
    """The canonical key of a scorecard query (its signal already resolved)."""
    return (f"group_by={group_by}&from={date_from or ''}&to={date_to or ''}"
            f"&signal={signal}&pooled_by={pooled_by}")


def effect_key(campaign_id: str, signal: str | None) -> str:
    return f"{campaign_id}|{signal or ''}"

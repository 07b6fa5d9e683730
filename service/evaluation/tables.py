"""Tables of the materialised evaluation (migration ``0008_materialised_evaluation``; the
freshness row ``evaluation_state`` lives in :mod:`service.store.freshness`).

- ``evaluation_state`` — one row (``id = 'evaluation'``): ``generation`` counts the changes of
  the evaluation's inputs (a refit, a dispatch, a campaign's status, an import, a week that
  closed); ``changed_at`` / ``reason`` the latest; ``week`` the ISO week (Monday) the stored
  figures were computed in (a new week closes window weeks: stale); ``worker`` /
  ``worker_until`` the recompute in progress (one at a time across processes).
- ``evaluation_results`` — one computed answer per (``kind``, ``key``): ``kind`` is
  ``scorecard`` (``key`` = its canonical query) or ``effect`` (``key`` = campaign id and
  signal); ``params`` the query's arguments; ``body`` the JSON text the API sends
  (rendered and rounded once, by the worker),
  ``generation`` the input generation it was computed from (older than
  ``evaluation_state.generation``: a recompute is pending),
  ``computed_at``, ``requested_at`` (an API request asked for it; kept up to date).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.store.freshness import STATE_ID, EvaluationState
from service.store.tables import Base, utcnow

__all__ = ["EvaluationState", "EvaluationResult", "STATE_ID"]

class EvaluationResult(Base):
    __tablename__ = "evaluation_results"
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    body: Mapped[str | None] = mapped_column(Text)  # the response's JSON, ready to send
    error: Mapped[str | None] = mapped_column(Text)
    computed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    requested_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

"""Tables of the materialised evaluation (migration ``0008_materialised_evaluation``; both
are defined in :mod:`service.store.freshness`, below every stage that marks them stale).

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

from service.store.freshness import STATE_ID, EvaluationResult, EvaluationState

__all__ = ["EvaluationState", "EvaluationResult", "STATE_ID"]

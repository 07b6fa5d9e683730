"""Two-level alarm (hysteresis) for predicted windows: open high, continue low.

A predicted window is a run of weeks with ``P(spike) >= p_min``; with an *open factor*
``k >= 1`` it is kept only when its highest weekly ``P(spike)`` reaches the *open
probability*, the probability whose odds are ``k`` times the odds of ``p_min``::

    odds(p) = p / (1 - p),   open_probability(p_min, k) = k·odds(p_min) / (1 + k·odds(p_min))

(``k = 1``: every run is a window, the plain rule; ``p_min = 0.10, k = 2`` opens at 0.18;
``p_min = 0.5, k = 2`` at 0.67: always below 1). A run that never gets there, a week or two
of P hovering just above ``p_min``, makes no window, while a window that did open keeps all
its weeks down to ``p_min``: a season's long window keeps its early and late weeks. Why: on
the real sets most false campaigns are such short, weak runs (their precision is 0.1-0.3 per
campaign against 0.5-0.9 for the rest, docs/benchmarks.md "Open high, continue low"), and
raising ``p_min`` instead would also cut the edges of the true windows. The factor is
learned with the thresholds (:func:`models.decision.learn_thresholds`), never fixed here.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["DEFAULT_OPEN_FACTOR", "DEFAULT_OPEN_FACTORS", "open_probability", "opened_windows"]

DEFAULT_OPEN_FACTOR = 1.0
#: Candidate factors of the threshold learner (1 = no hysteresis).
DEFAULT_OPEN_FACTORS = (1.0, 1.5, 2.0, 3.0)


def open_probability(p_min: float | np.ndarray, open_factor: float | np.ndarray
                     ) -> np.ndarray:
    """The probability whose odds are ``open_factor`` times those of ``p_min`` (elementwise;
    ``p_min`` itself when the factor is 1; 1 when ``p_min`` is 1)."""
    p = np.clip(np.asarray(p_min, dtype=float), 0.0, 1.0)
    k = np.asarray(open_factor, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = k * p / (1.0 - p)
        out = np.where(p >= 1.0, 1.0, odds / (1.0 + odds))
    return np.where(k == 1.0, p, out)


def opened_windows(windows: pd.DataFrame,
                   open_factor: float | Mapping[str, float] | pd.Series = DEFAULT_OPEN_FACTOR
                   ) -> pd.DataFrame:
    """The campaign windows (rows of :func:`models.peaks.peak_windows`) of the predicted
    windows that open: whose highest weekly ``P(spike)`` over all their parts reaches
    :func:`open_probability` of their ``p_min``; ``open_factor`` is one value or one per
    ``unique_id`` (series without one keep factor 1). Every part of a window is kept or
    dropped together; the order of the rows is kept."""
    if windows.empty:
        return windows
    if isinstance(open_factor, (int, float, np.floating, np.integer)):
        if float(open_factor) == 1.0:
            return windows
        k = np.full(len(windows), float(open_factor))
    else:
        table = pd.Series(open_factor, dtype=float)
        k = table.reindex(windows["unique_id"].to_numpy()).fillna(1.0).to_numpy(dtype=float)
        if (k == 1.0).all():
            return windows
    keys = [c for c in ("cutoff", "unique_id", "p_min", "window_start") if c in windows]
    peak = windows.groupby(keys, sort=False, dropna=False)["max_probability"].transform("max")
    need = open_probability(windows["p_min"].to_numpy(dtype=float), k)
    keep = peak.to_numpy(dtype=float) >= need - 1e-12
    return windows[keep]

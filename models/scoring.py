"""One scorer for spike warnings (DESIGN.md "Spikes, peaks, decisions and campaigns").

Every place that judges warnings — ``forewarn backtest``, the threshold learner
(:mod:`models.decision`), ``bench/accuracy.py``, ``bench/campaigns.py`` and the notebooks —
calls these functions, so a figure means the same thing wherever it is printed.

Event scores (:func:`event_scores`)
    An actual spike window is *caught* when a campaign window of the same series overlapping
    it (± ``tolerance_days``) was available at least ``lead_days`` before the actual window
    starts; it is caught *in time* when, in addition, that campaign's expected onset is not
    after the actual start, so its reminder (sent ``lead_days`` before the onset) arrives
    ``lead_days`` ahead. Precision is counted per campaign window (a predicted window longer
    than ``max_campaign_weeks`` is several campaigns, :func:`models.peaks.peak_windows`), so
    flagging every week is not free. Only *eligible* actual windows (those that start at
    least ``lead_days`` after the forecast was made) count in recall; every actual window can
    make a campaign a true positive.

Threshold-free skill (:func:`ranking_scores`)
    Average precision, ROC AUC and (for probabilities) the Brier score of a weekly score
    against the outcome "count > T", over the complete weeks with a known count. They cannot
    be won by flagging every week, so they compare forecasters independently of their
    decision thresholds.

Seasonal naive's graded score (:func:`seasonal_naive_score`)
    Last year's count for the same ISO week (52 weeks earlier) divided by ``T``: the
    reference every forecaster has to beat, threshold-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from models.hysteresis import DEFAULT_OPEN_FACTOR
from models.metrics import overlapping_pairs
from models.peaks import DEFAULT_MAX_CAMPAIGN_WEEKS, peak_windows

__all__ = [
    "EVENT_SCORES",
    "RANKING_SCORES",
    "f_beta",
    "event_scores",
    "event_scores_by",
    "ranking_scores",
    "seasonal_naive_score",
    "campaign_windows",
    "score_warnings",
]

EVENT_SCORES = ["recall", "precision", "f1", "f_beta", "in_time", "median_lead_days",
                "n_actual", "n_caught", "n_in_time", "n_predicted", "n_true_positive"]
RANKING_SCORES = ["average_precision", "auc", "brier", "base_rate", "n_weeks", "n_spikes"]


def f_beta(recall: float, precision: float, beta: float = 1.0) -> float:
    """``(1 + b²) P R / (b² P + R)``; 0 when both are 0, NaN when either is undefined."""
    if not (np.isfinite(recall) and np.isfinite(precision)):
        return float("nan")
    b2 = float(beta) ** 2
    den = b2 * precision + recall
    return float((1 + b2) * precision * recall / den) if den > 0 else 0.0


def event_scores(
    predicted: pd.DataFrame,
    actual: pd.DataFrame,
    *,
    lead_days: int = 14,
    tolerance_days: int = 7,
    beta: float = 1.0,
) -> dict[str, float]:
    """Campaign-level event scores of one set of forecasts.

    Parameters
    ----------
    predicted : campaign windows ``unique_id, start, end, available_at`` and optionally
        ``onset`` (Monday of the expected onset week; ``start`` when absent) and ``cutoff``
        (forecast origin; windows are matched with the actual windows of the same cutoff).
    actual : actual spike windows ``unique_id, start, end`` with optional ``eligible`` (bool,
        default True) and ``cutoff``.
    lead_days, tolerance_days : the event rule (module docstring).
    beta : weight of recall in ``f_beta``.

    Returns
    -------
    dict with :data:`EVENT_SCORES`: ``in_time`` is the share of eligible actual windows caught
    in time; counts are floats.
    """
    ev = _Events(predicted, actual, lead_days=lead_days, tolerance_days=tolerance_days)
    return ev.scores(None, None, beta)


def event_scores_by(
    predicted: pd.DataFrame,
    actual: pd.DataFrame,
    *,
    groups: Mapping[str, str] | pd.Series,
    lead_days: int = 14,
    tolerance_days: int = 7,
    beta: float = 1.0,
) -> dict[str | None, dict[str, float]]:
    """:func:`event_scores` of all windows (key ``None``) and of each group of series
    (``groups``: ``unique_id -> group``, e.g. the category), matching the windows once:
    the same figures as calling :func:`event_scores` on each group's rows."""
    ev = _Events(predicted, actual, lead_days=lead_days, tolerance_days=tolerance_days)
    table = pd.Series(groups, dtype=object)
    p_group = ev.pred["unique_id"].map(table).to_numpy(dtype=object)
    a_group = ev.act["unique_id"].map(table).to_numpy(dtype=object)
    out: dict[str | None, dict[str, float]] = {None: ev.scores(None, None, beta)}
    for g in sorted(set(table.dropna())):
        out[str(g)] = ev.scores(p_group == g, a_group == g, beta)
    return out


class _Events:
    """The matched windows of one set of forecasts, scored for any subset of series."""

    def __init__(self, predicted: pd.DataFrame, actual: pd.DataFrame, *, lead_days: int,
                 tolerance_days: int) -> None:
        pred = self.pred = predicted.reset_index(drop=True)
        act = self.act = actual.reset_index(drop=True)
        keys = (["unique_id", "cutoff"] if "cutoff" in pred and "cutoff" in act
                else ["unique_id"])
        pairs = overlapping_pairs(pred, act, tolerance_days=tolerance_days, keys=keys)
        self.p_idx, self.a_idx = pairs["pred"].to_numpy(), pairs["act"].to_numpy()
        a_start = pd.to_datetime(act["start"]).to_numpy()
        self.lead = ((a_start[self.a_idx]
                      - pd.to_datetime(pred["available_at"]).to_numpy()[self.p_idx])
                     / np.timedelta64(1, "D"))
        onset = pd.to_datetime(pred["onset"] if "onset" in pred else pred["start"]).to_numpy()
        self.ahead = self.lead >= lead_days
        self.in_time = self.ahead & (onset[self.p_idx] <= a_start[self.a_idx])
        self.eligible = (act["eligible"].astype(bool).to_numpy() if "eligible" in act
                         else np.ones(len(act), dtype=bool))

    def scores(self, pred_mask: np.ndarray[Any, Any] | None,
               act_mask: np.ndarray[Any, Any] | None, beta: float) -> dict[str, float]:
        n_p, n_a = len(self.pred), len(self.act)
        pm = np.ones(n_p, dtype=bool) if pred_mask is None else pred_mask.astype(bool)
        am = np.ones(n_a, dtype=bool) if act_mask is None else act_mask.astype(bool)
        keep = pm[self.p_idx] & am[self.a_idx]
        p_idx, a_idx = self.p_idx[keep], self.a_idx[keep]
        ahead, in_time, lead = self.ahead[keep], self.in_time[keep], self.lead[keep]
        eligible = self.eligible & am
        caught = np.zeros(n_a, dtype=bool)
        caught[a_idx[ahead]] = True
        timely = np.zeros(n_a, dtype=bool)
        timely[a_idx[in_time]] = True
        best_lead = pd.Series(lead[ahead]).groupby(a_idx[ahead]).max()
        leads = [float(v) for k, v in zip(best_lead.index.to_numpy(), best_lead.to_numpy(),
                                          strict=True) if eligible[k]]
        n_act = int(eligible.sum())
        n_caught = int((caught & eligible).sum())
        n_in_time = int((timely & eligible).sum())
        n_pred = int(pm.sum())
        n_tp = int(len(np.unique(p_idx)))
        recall = n_caught / n_act if n_act else float("nan")
        precision = n_tp / n_pred if n_pred else float("nan")
        return {
            "recall": recall,
            "precision": precision,
            "f1": f_beta(recall, precision, 1.0),
            "f_beta": f_beta(recall, precision, beta),
            "in_time": n_in_time / n_act if n_act else float("nan"),
            "median_lead_days": float(np.median(leads)) if leads else float("nan"),
            "n_actual": float(n_act), "n_caught": float(n_caught),
            "n_in_time": float(n_in_time), "n_predicted": float(n_pred),
            "n_true_positive": float(n_tp),
        }


def ranking_scores(weekly: pd.DataFrame, *, score: str = "p_spike") -> dict[str, float]:
    """Threshold-free skill of a weekly score.

    Parameters
    ----------
    weekly : ``spike`` (bool outcome; rows with NaN ``y`` or ``spike`` are not scored) and the
        ``score`` column.

    Returns
    -------
    dict with :data:`RANKING_SCORES`; ``brier`` is NaN when the score is not a probability,
        the rest NaN when the weeks hold only one outcome.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    done = weekly.dropna(subset=[c for c in ("y", "spike") if c in weekly])
    y = done["spike"].astype(bool).to_numpy()
    s = np.nan_to_num(done[score].to_numpy(dtype=float), nan=0.0)
    both = bool(y.any() and not y.all())
    prob = bool(s.size and s.min() >= 0 and s.max() <= 1)
    return {
        "average_precision": float(average_precision_score(y, s)) if both else float("nan"),
        "auc": float(roc_auc_score(y, s)) if both else float("nan"),
        "brier": float(np.mean((s - y) ** 2)) if prob and s.size else float("nan"),
        "base_rate": float(y.mean()) if y.size else float("nan"),
        "n_weeks": float(y.size),
        "n_spikes": float(y.sum()),
    }


def seasonal_naive_score(weekly: pd.DataFrame, history: pd.DataFrame) -> np.ndarray[Any, Any]:
    """Seasonal naive's graded score: last year's count for each week ÷ its threshold.

    Parameters
    ----------
    weekly : ``unique_id, week, threshold``.
    history : weekly counts ``unique_id, week, y`` (:func:`models.series.to_weekly`) covering
        the weeks 52 weeks before those of ``weekly``.

    Returns
    -------
    array aligned with ``weekly`` (NaN where last year's week is unknown).
    """
    counts = history.set_index(["unique_id", "week"])["y"]
    counts = counts[~counts.index.duplicated()]
    key = pd.MultiIndex.from_arrays([weekly["unique_id"].to_numpy(),
                                     pd.to_datetime(weekly["week"]) - pd.Timedelta(weeks=52)])
    last_year = counts.reindex(key).to_numpy(dtype=float)
    return np.asarray(last_year / weekly["threshold"].to_numpy(dtype=float), dtype=float)


def campaign_windows(
    weekly: pd.DataFrame,
    *,
    p_min: float | Mapping[str, float] | pd.Series,
    max_weeks: int | Mapping[str, int] | pd.Series = DEFAULT_MAX_CAMPAIGN_WEEKS,
    score: str = "p_spike",
    open_factor: float | Mapping[str, float] | pd.Series = DEFAULT_OPEN_FACTOR,
) -> pd.DataFrame:
    """Campaign windows of every (cutoff, series) in a backtest's weekly frame.

    Parameters
    ----------
    weekly : ``cutoff, unique_id, week, expected, threshold`` and the ``score`` column
        (:attr:`models.backtest.BacktestResult.weekly` of one model).
    p_min, max_weeks, open_factor : see :func:`models.peaks.peak_windows`.

    Returns
    -------
    DataFrame as :func:`models.peaks.peak_windows` plus ``cutoff`` and ``available_at``
    (= ``cutoff``); ``onset = start`` (the weekly frame holds no sample paths).
    """
    parts: list[pd.DataFrame] = []
    for cutoff, probs in weekly.groupby("cutoff", sort=True):
        frame = probs if score == "p_spike" else probs.assign(p_spike=probs[score])
        win = peak_windows(frame, p_min=p_min, max_weeks=max_weeks, open_factor=open_factor)
        parts.append(win.assign(cutoff=cutoff, available_at=cutoff))
    if not parts:
        return pd.DataFrame(columns=[*peak_windows(weekly.head(0)).columns, "cutoff",
                                     "available_at"])
    return pd.concat(parts, ignore_index=True)


def score_warnings(
    weekly: pd.DataFrame,
    actual: pd.DataFrame,
    *,
    p_min: float | Mapping[str, float] | pd.Series,
    max_weeks: int | Mapping[str, int] | pd.Series = DEFAULT_MAX_CAMPAIGN_WEEKS,
    lead_days: int = 14,
    tolerance_days: int = 7,
    beta: float = 1.0,
    score: str = "p_spike",
    predicted: pd.DataFrame | None = None,
    open_factor: float | Mapping[str, float] | pd.Series = DEFAULT_OPEN_FACTOR,
) -> dict[str, float]:
    """Event scores at a decision threshold and threshold-free skill of one forecaster.

    Parameters
    ----------
    weekly : one model's weekly frame ``cutoff, unique_id, week, expected, threshold, y,
        spike`` and the ``score`` column.
    actual : the actual windows of the same cutoffs ``cutoff, unique_id, start, end,
        eligible``.
    predicted : campaign windows already built (with ``onset`` from sample paths); default:
        rebuilt from ``weekly`` at ``p_min`` and ``open_factor`` (:func:`campaign_windows`).

    Returns
    -------
    dict with :data:`EVENT_SCORES` and :data:`RANKING_SCORES`.
    """
    if predicted is None:
        predicted = campaign_windows(weekly, p_min=p_min, max_weeks=max_weeks, score=score,
                                     open_factor=open_factor)
    act = actual[actual["unique_id"].isin(set(weekly["unique_id"]))]
    out = event_scores(predicted, act, lead_days=lead_days, tolerance_days=tolerance_days,
                       beta=beta)
    out.update(ranking_scores(weekly, score=score))
    return out

"""Forecast accuracy and spike-event scores (DESIGN.md "Spikes, peaks and campaigns").

Point and interval metrics work on arrays; the frame helpers return *long* frames, one row per
(``unique_id``, ``metric``) like utilsforecast's ``evaluate``.

- :func:`mase` scales the forecast MAE by the in-sample MAE of the seasonal naive forecast.
  On daily data the season is 364 days (same weekday, same ISO week last year); on weekly data
  pass ``season=52``. With less in-sample data than one season plus one point, the weekly
  naive (lag 7 days / 1 week) is used instead; a zero scale gives NaN.
- :func:`brier` is the mean squared difference between the weekly ``P(spike)`` and the
  outcome ``actual weekly count > T``.
- :func:`match_windows` / :func:`event_scores`: an actual spike window is *caught* when a
  predicted window overlapping it, with ``tolerance_days`` (7, i.e. ±1 week) of slack, was
  available at least ``lead_days`` before the actual window starts; its lead time is
  ``actual start - available_at`` of the earliest such prediction. A predicted window is a
  *true positive* when it overlaps an actual window with the same slack (no lead condition).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "mae",
    "rmse",
    "mase",
    "seasonal_naive_scale",
    "coverage",
    "brier",
    "match_windows",
    "overlapping_pairs",
    "event_scores",
    "summarize_events",
    "point_scores",
    "EVENT_METRICS",
]

ArrayLike = pd.Series | np.ndarray[Any, Any] | list[float]

EVENT_METRICS = ["recall", "precision", "f1", "median_lead_days", "n_actual", "n_caught",
                 "n_predicted", "n_true_positive"]


def _arr(x: ArrayLike) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.asarray(x, dtype=float)


def mae(y: ArrayLike, yhat: ArrayLike) -> float:
    """Mean absolute error (NaN when empty)."""
    e = np.abs(_arr(y) - _arr(yhat))
    return float(e.mean()) if e.size else float("nan")


def rmse(y: ArrayLike, yhat: ArrayLike) -> float:
    """Root mean squared error (NaN when empty)."""
    e = (_arr(y) - _arr(yhat)) ** 2
    return float(np.sqrt(e.mean())) if e.size else float("nan")


def seasonal_naive_scale(y_train: ArrayLike, *, season: int = 364, fallback: int = 7) -> float:
    """In-sample MAE of the seasonal naive forecast ``y[t] = y[t - season]``.

    Uses ``fallback`` as the lag when ``y_train`` is not longer than ``season``; NaN when even
    that is impossible.
    """
    y = _arr(y_train)
    lag = season if len(y) > season else fallback
    if len(y) <= lag:
        return float("nan")
    return float(np.mean(np.abs(y[lag:] - y[:-lag])))


def mase(y: ArrayLike, yhat: ArrayLike, y_train: ArrayLike, *, season: int = 364,
         fallback: int = 7) -> float:
    """Mean absolute scaled error: ``MAE(y, yhat) / seasonal_naive_scale(y_train)``.

    ``season=364`` for daily data (lag 364 days), ``season=52, fallback=1`` for weekly data.
    NaN when the scale is zero or undefined.
    """
    scale = seasonal_naive_scale(y_train, season=season, fallback=fallback)
    if not np.isfinite(scale) or scale == 0:
        return float("nan")
    return mae(y, yhat) / scale


def coverage(y: ArrayLike, lower: ArrayLike, upper: ArrayLike) -> float:
    """Share of ``y`` inside ``[lower, upper]`` (bounds included)."""
    y_ = _arr(y)
    if not y_.size:
        return float("nan")
    return float(np.mean((y_ >= _arr(lower)) & (y_ <= _arr(upper))))


def brier(p: ArrayLike, outcome: ArrayLike) -> float:
    """Brier score ``mean((p - outcome)^2)`` with ``outcome`` in {0, 1}."""
    d = (_arr(p) - _arr(outcome)) ** 2
    return float(d.mean()) if d.size else float("nan")


def point_scores(
    forecast: pd.DataFrame, actual: pd.DataFrame, history: pd.DataFrame, *, season: int = 364,
) -> pd.DataFrame:
    """MAE, RMSE, MASE and 80 % coverage per series.

    Parameters
    ----------
    forecast : ``unique_id, ds, yhat, yhat_lower, yhat_upper``.
    actual : ``unique_id, ds, y`` (days without an actual value are not scored).
    history : ``unique_id, ds, y`` in-sample data for the MASE scale (daily, zero-filled).

    Returns
    -------
    DataFrame ``unique_id, metric, value`` with metrics ``mae, rmse, mase, coverage, n_days``.
    """
    merged = forecast.merge(actual[["unique_id", "ds", "y"]], on=["unique_id", "ds"])
    hist = dict(tuple(history.sort_values("ds").groupby("unique_id", sort=True)))
    rows: list[dict[str, Any]] = []
    for uid, g in merged.groupby("unique_id", sort=True):
        y_train = hist[uid]["y"] if uid in hist else pd.Series(dtype=float)
        values = {
            "mae": mae(g["y"], g["yhat"]),
            "rmse": rmse(g["y"], g["yhat"]),
            "mase": mase(g["y"], g["yhat"], y_train, season=season),
            "coverage": coverage(g["y"], g["yhat_lower"], g["yhat_upper"]),
            "n_days": float(len(g)),
        }
        rows.extend({"unique_id": uid, "metric": k, "value": v} for k, v in values.items())
    return pd.DataFrame(rows, columns=["unique_id", "metric", "value"])


def match_windows(
    predicted: pd.DataFrame, actual: pd.DataFrame, *, lead_days: int = 14,
    tolerance_days: int = 7, available_col: str = "available_at",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Match predicted and actual spike windows of the same series.

    Parameters
    ----------
    predicted : ``unique_id, start, end, <available_col>`` (one row per predicted window; the
        time the prediction was available, e.g. the backtest cutoff).
    actual : ``unique_id, start, end``.
    lead_days : minimum days between availability and the actual window's start.
    tolerance_days : slack on each side when testing overlap (7 = ±1 week).

    Returns
    -------
    (predicted, actual) copies with added columns: predicted ``true_positive`` (bool);
    actual ``caught`` (bool) and ``lead_days`` (float days, NaN when not caught).
    """
    pred = predicted.reset_index(drop=True).copy()
    act = actual.reset_index(drop=True).copy()
    pairs = overlapping_pairs(pred, act, tolerance_days=tolerance_days, keys=["unique_id"])
    pred["true_positive"] = np.zeros(len(pred), dtype=bool)
    pred.loc[pairs["pred"].unique(), "true_positive"] = True
    leads = ((pd.to_datetime(act["start"]).to_numpy()[pairs["act"].to_numpy()]
              - pd.to_datetime(pred[available_col]).to_numpy()[pairs["pred"].to_numpy()])
             / np.timedelta64(1, "D"))
    pairs = pairs.assign(lead=leads)
    best = pairs[pairs["lead"] >= lead_days].groupby("act")["lead"].max()
    act["caught"] = np.zeros(len(act), dtype=bool)
    act["lead_days"] = np.full(len(act), np.nan)
    act.loc[best.index, "caught"] = True
    act.loc[best.index, "lead_days"] = best.to_numpy(dtype=float)
    return pred, act


def overlapping_pairs(predicted: pd.DataFrame, actual: pd.DataFrame, *, tolerance_days: int = 7,
                      keys: list[str] | None = None) -> pd.DataFrame:
    """Positional index pairs ``pred, act`` of windows with equal ``keys`` (default
    ``unique_id``) that overlap with ``tolerance_days`` of slack on each side (vectorised:
    one merge on the keys, then the interval test)."""
    keys = keys or ["unique_id"]

    def key_frame(f: pd.DataFrame) -> pd.DataFrame:
        out = f[keys].copy()
        for k in keys:
            if k != "unique_id":  # a date key (the forecast's cutoff): one dtype on both sides
                out[k] = pd.to_datetime(out[k])
        return out

    left = key_frame(predicted).assign(pred=np.arange(len(predicted)),
                                  p_start=pd.to_datetime(predicted["start"]).to_numpy(),
                                  p_end=pd.to_datetime(predicted["end"]).to_numpy())
    right = key_frame(actual).assign(act=np.arange(len(actual)),
                                a_start=pd.to_datetime(actual["start"]).to_numpy(),
                                a_end=pd.to_datetime(actual["end"]).to_numpy())
    m = left.merge(right, on=keys, how="inner")
    slack = pd.Timedelta(days=tolerance_days)
    hit = (m["p_start"] <= m["a_end"] + slack) & (m["p_end"] >= m["a_start"] - slack)
    return m.loc[hit, ["pred", "act"]].reset_index(drop=True)


def event_scores(
    predicted: pd.DataFrame, actual: pd.DataFrame, *, lead_days: int = 14,
    tolerance_days: int = 7, available_col: str = "available_at",
) -> pd.DataFrame:
    """Event-level recall, precision, F1 and median lead time.

    Parameters
    ----------
    predicted, actual : see :func:`match_windows`.

    Returns
    -------
    DataFrame ``metric, value`` with the metrics of :data:`EVENT_METRICS`: recall = caught /
    actual windows, precision = true-positive / predicted windows, F1 their harmonic mean,
    median lead over the caught windows (days); NaN where undefined.
    """
    pred, act = match_windows(predicted, actual, lead_days=lead_days,
                              tolerance_days=tolerance_days, available_col=available_col)
    return summarize_events(
        n_actual=len(act), n_caught=int(act["caught"].sum()), n_predicted=len(pred),
        n_true_positive=int(pred["true_positive"].sum()),
        leads=act.loc[act["caught"], "lead_days"].to_numpy(dtype=float),
    )


def summarize_events(*, n_actual: int, n_caught: int, n_predicted: int, n_true_positive: int,
                     leads: np.ndarray[Any, Any]) -> pd.DataFrame:
    """Long ``metric, value`` frame from event counts (see :func:`event_scores`)."""
    recall = n_caught / n_actual if n_actual else float("nan")
    precision = n_true_positive / n_predicted if n_predicted else float("nan")
    if np.isfinite(recall) and np.isfinite(precision) and recall + precision > 0:
        f1 = 2 * recall * precision / (recall + precision)
    elif np.isfinite(recall) and np.isfinite(precision):
        f1 = 0.0
    else:
        f1 = float("nan")
    values = [recall, precision, f1, float(np.median(leads)) if len(leads) else float("nan"),
              float(n_actual), float(n_caught), float(n_predicted), float(n_true_positive)]
    return pd.DataFrame({"metric": EVENT_METRICS, "value": values})

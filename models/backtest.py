"""Rolling-origin backtests with point, calibration and spike-event scores.

For every cutoff (the last day of training data) and every model:

1. fit a fresh copy of the forecaster (``sklearn.base.clone`` of an instance, or a call of a
   factory) on the data up to and including the cutoff;
2. predict the rest of the cutoff's ISO week plus ``horizon_weeks`` full weeks;
3. thresholds from history only (:func:`models.peaks.thresholds` with ``until`` = the day
   after the cutoff), ``P(spike)`` from the weekly sample paths, predicted peak windows;
4. actual weekly counts in the horizon, actual spike weeks (count > the same threshold) and
   their runs as actual windows;
5. score: MAE / RMSE / MASE / 80 % coverage on days, Brier on weeks, and the DESIGN.md
   event rule: a predicted window from cutoff ``o`` is available at ``o``; an actual window
   is caught if a predicted window overlaps it (±``tolerance_days``) and
   ``actual start - o >= lead_days``.

Only actual windows that start at least ``lead_days`` after the cutoff count in recall
(``eligible``; the earlier ones are the previous origin's job and are reported as
``n_actual_too_soon``); all actual windows in the horizon can make a predicted window a true
positive. Every series is zero-filled from its first record to its data end: ``ends[uid]``
when given (its own sources' coverage, DESIGN.md "Sources and coverage"), else the last day of
the whole frame (one source covering every series).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
from sklearn.base import clone

from models.metrics import match_windows, point_scores
from models.peaks import (
    DEFAULT_LOOKBACK_WEEKS,
    DEFAULT_MAX_CAMPAIGN_WEEKS,
    DEFAULT_MIN_SPIKE_COUNT,
    DEFAULT_P_MIN,
    PEAK_WINDOW_COLUMNS,
    peak_windows,
    runs_to_windows,
    spike_probabilities,
    thresholds,
)
from models.scoring import campaign_windows, event_scores, ranking_scores
from models.series import horizon_days, sunday_on_or_before, to_weekly
from models.types import Forecaster

__all__ = ["BacktestResult", "backtest", "make_origins", "horizon_days", "p_min_curve",
           "predicted_windows", "WINDOW_COLUMNS", "CURVE_COLUMNS"]

ForecasterSpec = Forecaster | Callable[[], Forecaster]

WINDOW_COLUMNS = [
    "model", "cutoff", "unique_id", "kind", "start", "end", "onset", "peak_week", "threshold",
    "expected_count", "expected_excess", "max_probability", "peak_count",
    "true_positive", "eligible", "caught", "lead_days",
]
WEEKLY_COLUMNS = ["model", "cutoff", "unique_id", "week", "expected", "p_spike", "threshold",
                  "y", "spike"]
CURVE_COLUMNS = ["model", "p_min", "recall", "precision", "f1", "in_time", "median_lead_days",
                 "n_actual", "n_caught", "n_in_time", "n_predicted", "n_true_positive"]


@dataclass
class BacktestResult:
    """Backtest output (all frames long).

    Attributes
    ----------
    per_origin : ``model, cutoff, unique_id, metric, value`` with metrics ``mae, rmse, mase,
        coverage, n_days, brier, n_weeks, n_actual, n_actual_too_soon, n_caught,
        n_predicted, n_true_positive``.
    summary : ``model, metric, value``: mean ``mae, rmse, mase`` over (cutoff, series) with
        a finite value, pooled ``coverage`` and ``brier``, pooled event ``recall, precision,
        f1, median_lead_days`` and counts, ``n_series``, ``n_failures``.
    windows : one row per window, ``kind`` = ``predicted`` (with ``expected_count,
        expected_excess, max_probability, true_positive``) or ``actual`` (with
        ``peak_count, eligible, caught, lead_days``); columns :data:`WINDOW_COLUMNS`.
    weekly : ``model, cutoff, unique_id, week, expected, p_spike, threshold, y, spike``
        (``y`` and ``spike`` NaN where the week is not complete in the data).
    failures : ``model, cutoff, unique_id, error``.
    """

    per_origin: pd.DataFrame
    summary: pd.DataFrame
    windows: pd.DataFrame
    weekly: pd.DataFrame
    failures: pd.DataFrame


def make_origins(last_day: pd.Timestamp, n: int, *, horizon_weeks: int,
                 step_weeks: int | None = None) -> list[pd.Timestamp]:
    """``n`` Sunday cutoffs, ``step_weeks`` apart, the last one leaving a full horizon
    before ``last_day``."""
    step = horizon_weeks if step_weeks is None else step_weeks
    latest = sunday_on_or_before(pd.Timestamp(last_day).normalize()
                                 - pd.Timedelta(days=7 * horizon_weeks))
    return [latest - pd.Timedelta(days=7 * step * k) for k in reversed(range(n))]


def _new(spec: Any) -> Any:
    """A fresh, unfitted forecaster from an instance (cloned) or a factory (called)."""
    if not isinstance(spec, type) and hasattr(spec, "fit") and hasattr(spec, "predict"):
        if hasattr(spec, "get_params"):
            return clone(spec)
        return copy.deepcopy(spec)
    if callable(spec):
        return spec()
    raise TypeError(f"not a forecaster or factory: {spec!r}")


def _model_name(spec: Any) -> str:
    name = getattr(spec, "model_name", None)
    if isinstance(name, str):
        return name
    return spec.__name__ if isinstance(spec, type) else type(spec).__name__


def _zero_fill(df: pd.DataFrame, ends: Mapping[str, pd.Timestamp] | None = None
               ) -> pd.DataFrame:
    """Each series zero-filled from its first day to ``ends[uid]`` (default: the frame's last
    day), so a series whose sources end earlier than another's is not extended with zeros."""
    f = df[["unique_id", "ds", "y"]].copy()
    f["ds"] = pd.to_datetime(f["ds"]).dt.normalize()
    f["y"] = f["y"].astype(float)
    f = f.groupby(["unique_id", "ds"], sort=True, as_index=False).agg(y=("y", "sum"))
    frame_end = f["ds"].max()
    parts = []
    for uid, g in f.groupby("unique_id", sort=True):
        end = pd.Timestamp(ends[str(uid)]).normalize() if ends and str(uid) in ends else frame_end
        idx = pd.date_range(g["ds"].iloc[0], max(end, g["ds"].iloc[-1]), freq="D")
        y = g.set_index("ds")["y"].reindex(idx, fill_value=0.0)
        parts.append(pd.DataFrame({"unique_id": uid, "ds": idx, "y": y.to_numpy()}))
    return pd.concat(parts, ignore_index=True)


def _actual_windows(weekly: pd.DataFrame) -> pd.DataFrame:
    """Runs of weeks with ``spike`` in ``unique_id, week, y, threshold, spike``."""
    rows = []
    for uid, g in weekly.sort_values("week").groupby("unique_id", sort=True):
        g = g.reset_index(drop=True)
        for first, last in runs_to_windows(g["week"], g["spike"].astype(bool)):
            w = g[(g["week"] >= first) & (g["week"] <= last)]
            peak = int(np.argmax(w["y"].to_numpy()))
            rows.append({"unique_id": uid, "start": first, "end": last + pd.Timedelta(days=6),
                         "peak_week": w["week"].iloc[peak], "peak_count": float(w["y"].max()),
                         "threshold": float(w["threshold"].iloc[0])})
    return pd.DataFrame(rows, columns=["unique_id", "start", "end", "peak_week", "peak_count",
                                       "threshold"])


def _long(model: str, cutoff: pd.Timestamp, uid: object, values: Mapping[str, float]
          ) -> list[dict[str, Any]]:
    return [{"model": model, "cutoff": cutoff, "unique_id": uid, "metric": k, "value": v}
            for k, v in values.items()]


def backtest(
    df: pd.DataFrame,
    forecasters: Mapping[str, ForecasterSpec] | ForecasterSpec,
    *,
    origins: Sequence[pd.Timestamp | str] | int,
    horizon_weeks: int = 13,
    step_weeks: int | None = None,
    lead_days: int = 14,
    p_min: float = DEFAULT_P_MIN,
    min_spike_count: float = DEFAULT_MIN_SPIKE_COUNT,
    lookback_weeks: int = DEFAULT_LOOKBACK_WEEKS,
    tolerance_days: int = 7,
    max_campaign_weeks: int = DEFAULT_MAX_CAMPAIGN_WEEKS,
    ends: Mapping[str, pd.Timestamp] | None = None,
    on_progress: Callable[[str, pd.Timestamp], None] | None = None,
) -> BacktestResult:
    """Rolling-origin backtest of one or more forecasters.

    Parameters
    ----------
    df : long daily frame ``unique_id, ds, y``.
    forecasters : a forecaster instance (cloned for each cutoff), a factory (called for each
        cutoff, e.g. a class), or a mapping ``name -> either``. Anything with
        ``fit(df) -> self`` and ``predict(horizon) -> ForecastOutput`` works.
    origins : cutoffs (last training day, inclusive) or a number of Sunday cutoffs
        ``step_weeks`` apart (default ``horizon_weeks``) ending one horizon before the data
        end (:func:`make_origins`).
    horizon_weeks : full ISO weeks forecast after the cutoff's week.
    lead_days, tolerance_days : event rule (see :func:`models.metrics.match_windows`).
    p_min, min_spike_count, lookback_weeks : peak-window and threshold definitions.
    max_campaign_weeks : predicted windows longer than this become consecutive campaign
        windows (:func:`models.peaks.peak_windows`); precision is counted per campaign.
    ends : each series' data end (its sources' coverage); a series not named, or all of them
        when omitted, is covered to the frame's last day.
    on_progress : called with ``(model, cutoff)`` before each fit.

    Returns
    -------
    BacktestResult
    """
    specs: dict[str, Any] = (dict(forecasters) if isinstance(forecasters, Mapping)
                             else {_model_name(forecasters): forecasters})
    full = _zero_fill(df, ends)
    data_end = full["ds"].max()
    weekly_full = to_weekly(full)
    if isinstance(origins, int):
        cutoffs = make_origins(data_end, origins, horizon_weeks=horizon_weeks,
                               step_weeks=step_weeks)
    else:
        cutoffs = [pd.Timestamp(o).normalize() for o in origins]

    metric_rows: list[dict[str, Any]] = []
    window_parts: list[pd.DataFrame] = []
    weekly_parts: list[pd.DataFrame] = []
    failure_rows: list[dict[str, Any]] = []
    for cutoff in cutoffs:
        hist = full[full["ds"] <= cutoff]
        if hist.empty:
            continue
        h_days = horizon_days(cutoff, horizon_weeks)
        horizon_end = cutoff + pd.Timedelta(days=h_days)
        thr = thresholds(to_weekly(hist), until=cutoff + pd.Timedelta(days=1),
                         min_spike_count=min_spike_count, lookback_weeks=lookback_weeks)
        actual_weekly, act_all = _actual_at(weekly_full, thr, cutoff, horizon_end, lead_days)
        actual_daily = full[(full["ds"] > cutoff) & (full["ds"] <= horizon_end)]

        for name, spec in specs.items():
            if on_progress is not None:
                on_progress(name, cutoff)
            probs, daily, samples, errors = _forecast_at(spec, hist, cutoff, h_days, thr)
            failure_rows.extend({"model": name, "cutoff": cutoff, "unique_id": u,
                                 "error": e} for u, e in errors)
            pred = peak_windows(probs, p_min=p_min, max_weeks=max_campaign_weeks,
                                weekly_samples=samples).assign(available_at=cutoff)
            pred_m, act_m = match_windows(pred, act_all, lead_days=lead_days,
                                          tolerance_days=tolerance_days)

            wk = probs.merge(actual_weekly[["unique_id", "week", "y", "spike"]],
                             on=["unique_id", "week"], how="left")
            weekly_parts.append(wk.assign(model=name, cutoff=cutoff)[WEEKLY_COLUMNS])
            per_series = _series_metrics(point_scores(daily, actual_daily, hist), wk,
                                         thr.index, pred_m, act_m, {u for u, _ in errors})
            for key, values in per_series.items():
                metric_rows.extend(_long(name, cutoff, key, values))

            pred_m = pred_m.assign(onset=pred["onset"].to_numpy()).drop(
                columns="available_at").assign(kind="predicted")
            act_m = act_m.assign(kind="actual")
            act_m.loc[~act_m["eligible"], ["caught", "lead_days"]] = [False, np.nan]
            window_parts.extend(part.assign(model=name, cutoff=cutoff)
                                for part in (pred_m, act_m) if not part.empty)

    return _result(metric_rows, window_parts, weekly_parts, failure_rows, list(specs),
                   lead_days=lead_days, tolerance_days=tolerance_days)


def _result(metric_rows: list[dict[str, Any]], window_parts: list[pd.DataFrame],
            weekly_parts: list[pd.DataFrame], failure_rows: list[dict[str, Any]],
            models: list[str], *, lead_days: int, tolerance_days: int) -> BacktestResult:
    """The backtest's frames from the rows and parts of every (origin, model), summarised."""
    per_origin = pd.DataFrame(metric_rows,
                              columns=["model", "cutoff", "unique_id", "metric", "value"])
    windows = (pd.concat(window_parts, ignore_index=True).reindex(columns=WINDOW_COLUMNS)
               if window_parts else pd.DataFrame(columns=WINDOW_COLUMNS))
    weekly = (pd.concat(weekly_parts, ignore_index=True) if weekly_parts
              else pd.DataFrame(columns=WEEKLY_COLUMNS))
    failures = pd.DataFrame(failure_rows, columns=["model", "cutoff", "unique_id", "error"])
    summary = _summarize(per_origin, windows, weekly, failures, models,
                         lead_days=lead_days, tolerance_days=tolerance_days)
    return BacktestResult(per_origin=per_origin, summary=summary, windows=windows,
                          weekly=weekly, failures=failures)


def _actual_at(weekly_full: pd.DataFrame, thr: pd.Series, cutoff: pd.Timestamp,
               horizon_end: pd.Timestamp, lead_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The actual weeks of one origin's horizon (``threshold`` and ``spike`` added) and their
    spike windows (``eligible``: starting at least ``lead_days`` after the cutoff)."""
    last_day = weekly_full["week"] + pd.Timedelta(days=6)
    in_h = weekly_full[(last_day > cutoff) & (last_day <= horizon_end)
                       & weekly_full["unique_id"].isin(thr.index)]
    actual_weekly = in_h.assign(threshold=thr.reindex(in_h["unique_id"]).to_numpy())
    actual_weekly["spike"] = actual_weekly["y"] > actual_weekly["threshold"]
    act_all = _actual_windows(actual_weekly)
    act_all["eligible"] = act_all["start"] >= cutoff + pd.Timedelta(days=lead_days)
    return actual_weekly, act_all


def _forecast_at(spec: Any, hist: pd.DataFrame, cutoff: pd.Timestamp, h_days: int,
                 thr: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None,
                            list[tuple[object, str]]]:
    """A fresh forecaster of ``spec`` fitted on ``hist``, forecasting ``h_days`` days: its
    weekly P(spike) over the complete weeks of the horizon, its daily forecast, its weekly
    sample paths, and the series that failed with their errors (every series when the whole
    model failed; then no P, no forecast and no paths)."""
    horizon_end = cutoff + pd.Timedelta(days=h_days)
    try:
        out = _new(spec).fit(hist).predict(h_days)
    except Exception as exc:  # the whole model failed at this cutoff
        return (spike_probabilities(pd.DataFrame(), thr),
                pd.DataFrame(columns=["unique_id", "ds", "yhat", "yhat_lower", "yhat_upper"]),
                None, [(u, f"{type(exc).__name__}: {exc}") for u in thr.index])
    probs = spike_probabilities(out.weekly_samples, thr)
    probs = probs[(probs["week"] + pd.Timedelta(days=6) <= horizon_end)]
    return (probs, out.daily[out.daily["ds"] <= horizon_end], out.weekly_samples,
            [(r.unique_id, r.error) for r in out.failures.itertuples(index=False)])


def _series_metrics(points: pd.DataFrame, wk: pd.DataFrame, series: pd.Index,
                    pred_m: pd.DataFrame, act_m: pd.DataFrame, failed: set[object]
                    ) -> dict[object, dict[str, float]]:
    """One origin's metrics per series: the point scores, the Brier score of the weekly P on
    the observed weeks, and the event counts of the matched windows (for every series with
    a score, a window or a failure)."""
    per_series: dict[object, dict[str, float]] = {}
    for uid, metric, value in zip(points["unique_id"], points["metric"], points["value"],
                                  strict=True):
        per_series.setdefault(uid, {})[str(metric)] = float(value)
    scored = wk.dropna(subset=["y"])
    for uid, g in scored.groupby("unique_id", sort=True):
        d = per_series.setdefault(uid, {})
        d["brier"] = float(np.mean((g["p_spike"] - g["spike"].astype(float)) ** 2))
        d["n_weeks"] = float(len(g))
    for uid in series:
        a = act_m[act_m["unique_id"] == uid]
        p = pred_m[pred_m["unique_id"] == uid]
        if uid not in per_series and a.empty and p.empty and uid not in failed:
            continue
        d = per_series.setdefault(uid, {})
        d["n_actual"] = float(a["eligible"].sum())
        d["n_actual_too_soon"] = float((~a["eligible"]).sum())
        d["n_caught"] = float((a["caught"] & a["eligible"]).sum())
        d["n_predicted"] = float(len(p))
        d["n_true_positive"] = float(p["true_positive"].sum())
    return per_series


def _summarize(per_origin: pd.DataFrame, windows: pd.DataFrame, weekly: pd.DataFrame,
               failures: pd.DataFrame, models: list[str], *, lead_days: int,
               tolerance_days: int) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for model in models:
        po = per_origin[per_origin["model"] == model]
        wide = po.pivot_table(index=["cutoff", "unique_id"], columns="metric", values="value",
                              aggfunc="first")

        def col(name: str, frame: pd.DataFrame = wide) -> pd.Series:
            return frame[name] if name in frame else pd.Series(dtype=float)

        values: dict[str, float] = {}
        for m in ("mae", "rmse", "mase"):
            v = col(m).replace([np.inf, -np.inf], np.nan).dropna()
            values[m] = float(v.mean()) if len(v) else float("nan")
        for m, w in (("coverage", "n_days"), ("brier", "n_weeks")):
            v, n = col(m), col(w)
            ok = v.notna() & n.notna()
            values[m] = (float(np.average(v[ok], weights=n[ok]))
                         if ok.any() and n[ok].sum() > 0 else float("nan"))
        win = windows[windows["model"] == model]
        pred = win[win["kind"] == "predicted"].assign(available_at=lambda f: f["cutoff"])
        act = win[win["kind"] == "actual"]
        values.update(event_scores(pred, act, lead_days=lead_days,
                                   tolerance_days=tolerance_days))
        values.pop("f_beta", None)
        ranks = ranking_scores(weekly[weekly["model"] == model])
        values["average_precision"], values["auc"] = ranks["average_precision"], ranks["auc"]
        values["n_actual_too_soon"] = float(col("n_actual_too_soon").sum())
        values["n_series"] = float(po["unique_id"].nunique())
        values["n_failures"] = float((failures["model"] == model).sum())
        rows.extend({"model": model, "metric": k, "value": v} for k, v in values.items())
    return pd.DataFrame(rows, columns=["model", "metric", "value"])


def predicted_windows(result: BacktestResult, p_min: float, *,
                      max_campaign_weeks: int = DEFAULT_MAX_CAMPAIGN_WEEKS) -> pd.DataFrame:
    """The predicted peak windows a finished backtest would have had at another ``p_min``.

    Rebuilt (:func:`models.peaks.peak_windows`) from ``result.weekly`` per model and cutoff,
    without refitting; columns as ``peak_windows`` plus ``model``, ``cutoff``, ``kind =
    "predicted"`` and ``available_at`` (= the cutoff).
    """
    parts: list[pd.DataFrame] = []
    for key, probs in result.weekly.groupby(["model", "cutoff"], sort=True):
        model, cutoff = cast(tuple[str, pd.Timestamp], key)
        win = peak_windows(probs, p_min=float(p_min), max_weeks=max_campaign_weeks)
        win["model"], win["cutoff"] = model, cutoff
        parts.append(win)
    out = (pd.concat(parts, ignore_index=True) if parts
           else pd.DataFrame(columns=[*PEAK_WINDOW_COLUMNS, "model", "cutoff"]))
    out["kind"] = "predicted"
    out["available_at"] = out["cutoff"]
    return out


def p_min_curve(
    result: BacktestResult,
    p_grid: Sequence[float],
    *,
    lead_days: int = 14,
    tolerance_days: int = 7,
    max_campaign_weeks: int = DEFAULT_MAX_CAMPAIGN_WEEKS,
) -> pd.DataFrame:
    """Event scores of a finished backtest for other ``p_min`` values, without refitting.

    The weekly P(spike) of every (model, cutoff, series) is in ``result.weekly`` and the actual
    windows (with ``eligible``) in ``result.windows``; only the campaign windows depend on
    ``p_min``, so they are rebuilt (:func:`models.scoring.campaign_windows`) and scored again
    (:func:`models.scoring.event_scores`) for each value of ``p_grid``. Pass the
    ``lead_days``, ``tolerance_days`` and ``max_campaign_weeks`` the backtest ran with. The
    rebuilt windows carry no sample paths, so their onset is their first week (``in_time`` is
    a lower bound here).

    Use it to compare forecasters independently of the decision threshold; to choose a
    threshold from history, see :func:`models.decision.learn_thresholds`.

    Returns
    -------
    DataFrame with columns :data:`CURVE_COLUMNS`, one row per (model, p_min), pooled over
    cutoffs and series like ``result.summary``.
    """
    rows: list[dict[str, Any]] = []
    actual = result.windows[result.windows["kind"] == "actual"]
    models = pd.unique(pd.concat([result.weekly["model"], actual["model"]]))
    for model in models:
        weekly = result.weekly[result.weekly["model"] == model]
        act = actual[actual["model"] == model]
        for p_min in p_grid:
            pred = campaign_windows(weekly, p_min=float(p_min), max_weeks=max_campaign_weeks)
            ev = event_scores(pred, act, lead_days=lead_days, tolerance_days=tolerance_days)
            rows.append({"model": model, "p_min": float(p_min), **ev})
    curve = pd.DataFrame(rows).reindex(columns=CURVE_COLUMNS)
    return curve.sort_values(["model", "p_min"], kind="stable").reset_index(drop=True)

"""Scores of ``bench/accuracy.py``: the one scorer of :mod:`models.scoring`, learned thresholds.

For one set, one model and one scoring (``year``: one origin, 52 weeks; ``quarterly``: four
origins, 13 weeks each), pooled over the scoring's origins:

- threshold-free: :func:`models.scoring.ranking_scores` of the weekly ``P(spike)`` (average
  precision, ROC AUC, Brier); seasonal naive is ranked by its *graded* score
  (:func:`models.scoring.seasonal_naive_score`, last year's count ÷ T; its Brier is that of
  its own P), and every model's AP is also divided by that graded score's AP on the same
  weeks (``ap_vs_sn``, with a 90 % bootstrap interval over series, :func:`ratio_interval`);
- at the learned threshold: for every scored origin, :func:`models.decision.learn_thresholds`
  on the same model's forecasts from the origin's decision origins (all before it, see
  :class:`bench._accuracy_data.Plan`), then the campaign windows of those thresholds (with
  their onsets from the sample paths, :mod:`bench._accuracy_fit`) scored by
  :func:`models.scoring.event_scores` against the actual spike windows (recall, precision per
  campaign window of at most 6 weeks, F1, in time, median lead);
- on the samples, also against the generator's planted windows (``truth_spikes.csv``):
  recall over the planted windows that start at least ``LEAD_DAYS`` after an origin and
  inside its horizon (``planted``; ``seasonal`` leaves out the one-off surges), precision
  = campaigns meeting any truth window (±1 week).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bench._accuracy_data import DataSet
from bench._accuracy_fit import LEAD_DAYS, cached_forecast
from models.backtest import horizon_days
from models.decision import DEFAULT_GRID, learn_thresholds, series_open_factors, series_thresholds
from models.hysteresis import DEFAULT_OPEN_FACTORS, opened_windows
from models.scoring import event_scores, event_scores_by, ranking_scores, seasonal_naive_score
from models.series import to_weekly

__all__ = ["Score", "score_model", "truth_windows", "at_thresholds", "ratio_interval",
           "paired_ap_ratio", "paired_f1_difference", "every_origin_ap_ratio",
           "history_scores"]

_COUNTS = ("n_actual", "n_caught", "n_predicted", "n_true_positive")


@dataclass
class Score:
    """One (set, scoring, model)'s figures; ``missing`` names forecasts not computed yet."""

    model: str
    values: dict[str, float] = field(default_factory=dict)
    truth: dict[str, dict[str, float]] = field(default_factory=dict)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    weekly: pd.DataFrame | None = None  # the scored weeks (for paired comparisons)
    per_series: pd.DataFrame | None = None  # event counts per series (paired F1 interval)


def at_thresholds(windows: pd.DataFrame, thresholds: pd.Series,
                  open_factors: pd.Series | None = None) -> pd.DataFrame:
    """The campaign windows (computed at every grid threshold, column ``p_min``) of each
    series at its own threshold ``thresholds[unique_id]``, and of those the windows that open
    with the series' open factor (:func:`models.hysteresis.opened_windows`). The onsets were
    computed without the open rule, so a window right after one that does not open may look
    back less far than the service would let it (its "in time" can only be understated)."""
    want = thresholds.reindex(windows["unique_id"]).to_numpy(dtype=float)
    keep = np.isclose(windows["p_min"].to_numpy(dtype=float), want)
    out: pd.DataFrame = windows[keep].reset_index(drop=True)
    if open_factors is not None:
        out = opened_windows(out, open_factors).reset_index(drop=True)
    return out


def truth_windows(truth: pd.DataFrame, cutoff: pd.Timestamp, horizon_weeks: int
                  ) -> pd.DataFrame:
    """The generator's windows that meet one origin's horizon, as ``actual`` windows:
    ``eligible`` = planted and starting between ``LEAD_DAYS`` after the origin and the
    horizon's end; every one of them can make a campaign a true positive."""
    end = cutoff + pd.Timedelta(days=horizon_days(cutoff, horizon_weeks))
    t = truth[(truth["start"] <= end) & (truth["end"] > cutoff)].copy()
    reachable = (t["start"] >= cutoff + pd.Timedelta(days=LEAD_DAYS)) & (t["start"] <= end)
    t["eligible"] = reachable & t["planted"].astype(bool)
    t["eligible_seasonal"] = t["eligible"] & ~t["one_off"].astype(bool)
    return t.assign(cutoff=cutoff)[["cutoff", "unique_id", "start", "end", "eligible",
                                    "eligible_seasonal"]]


def ratio_interval(weekly: pd.DataFrame, score: str, *, n_boot: int = 200, level: float = 0.9,
                   seed: int = 0, baseline: str = "sn_graded") -> tuple[float, float]:
    """Bootstrap interval (over series, resampled with replacement) of the AP of ``score``
    divided by the AP of ``baseline`` (default seasonal naive's graded score) on the same
    weeks."""
    done = weekly.dropna(subset=["y", "spike"]).reset_index(drop=True)
    groups = [np.asarray(ix) for ix in done.groupby("unique_id", sort=True).indices.values()]
    rng = np.random.default_rng(seed)
    ratios = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(groups), size=len(groups))
        sample = done.iloc[np.concatenate([groups[i] for i in pick])]
        a = ranking_scores(sample, score=score)["average_precision"]
        b = ranking_scores(sample, score=baseline)["average_precision"]
        if np.isfinite(a) and np.isfinite(b) and b > 0:
            ratios.append(a / b)
    if not ratios:
        return float("nan"), float("nan")
    lo, hi = np.quantile(ratios, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def _learned(ds: DataSet, key: str, origin: pd.Timestamp, hw: int,
             grid: Sequence[float] = DEFAULT_GRID,
             open_factors: Sequence[float] = DEFAULT_OPEN_FACTORS
             ) -> tuple[pd.Series, pd.Series, pd.DataFrame] | str:
    """Thresholds per series learned on the model's own decision backtests (or what is
    missing)."""
    dh = ds.plan.decision_weeks(hw)
    weekly, actual = [], []
    for d in ds.plan.decision_for(origin, hw):
        f = cached_forecast(ds, key, d, dh, compute=False)
        if f is None:
            return f"{d.date()}/{dh}w"
        weekly.append(f["weekly"])
        actual.append(f["actual"])
    w = pd.concat(weekly, ignore_index=True) if weekly else pd.DataFrame(
        columns=["cutoff", "unique_id", "week", "expected", "p_spike", "threshold", "y",
                 "spike"])
    a = pd.concat(actual, ignore_index=True) if actual else pd.DataFrame(
        columns=["cutoff", "unique_id", "start", "end", "eligible"])
    dec = learn_thresholds(w, a, categories=ds.categories, lead_days=LEAD_DAYS, grid=grid,
                           open_factors=open_factors)
    return series_thresholds(dec, ds.categories), series_open_factors(dec, ds.categories), dec


def score_model(ds: DataSet, key: str, scoring: str, history: pd.DataFrame | None = None,
                grid: Sequence[float] = DEFAULT_GRID,
                open_factors: Sequence[float] = DEFAULT_OPEN_FACTORS) -> Score:
    """Figures of model ``key`` on ``ds`` for ``scoring`` (module docstring); thresholds
    learned over ``grid`` (a subset of the cached forecasts' :data:`DEFAULT_GRID`) with the
    open factor learned among ``open_factors`` (``(1.0,)``: no hysteresis)."""
    origins, hw = ds.plan.scorings()[scoring]
    out = Score(key)
    weekly, pred, actual, truth = [], [], [], []
    for o in origins:
        f = cached_forecast(ds, key, o, hw, compute=False)
        learned = _learned(ds, key, o, hw, grid, open_factors)
        if f is None:
            out.missing.append(f"{o.date()}/{hw}w")
        if isinstance(learned, str):
            out.missing.append(learned)
        if f is None or isinstance(learned, str):
            continue
        thr, opens, dec = learned
        out.decisions.extend({**{str(k): v for k, v in r.items()},
                              "scored_origin": str(o.date())}
                             for r in dec.to_dict(orient="records"))
        weekly.append(f["weekly"])
        actual.append(f["actual"])
        pred.append(at_thresholds(f["windows"], thr, opens))
        if ds.truth is not None:
            truth.append(truth_windows(ds.truth, o, hw))
    if out.missing:
        return out
    w = pd.concat(weekly, ignore_index=True)
    p = pd.concat(pred, ignore_index=True)
    a = pd.concat(actual, ignore_index=True)
    hist = to_weekly(ds.daily) if history is None else history
    w["sn_graded"] = seasonal_naive_score(w, hist)
    own = ranking_scores(w)
    graded = ranking_scores(w, score="sn_graded")
    values = dict(own)
    if key == "sn":  # ranked by its graded score; its Brier is its own P's
        values.update({k: graded[k] for k in ("average_precision", "auc")})
        values["ap_own_p"] = own["average_precision"]
    values["sn_graded_ap"] = graded["average_precision"]
    values["ap_vs_sn"] = values["average_precision"] / graded["average_precision"]
    values["ap_vs_sn_lo"], values["ap_vs_sn_hi"] = (
        (1.0, 1.0) if key == "sn" else ratio_interval(w, "p_spike"))
    values.update(event_scores(p, a, lead_days=LEAD_DAYS))
    ids = pd.unique(w["unique_id"])
    by = event_scores_by(p, a, groups=pd.Series(ids, index=ids), lead_days=LEAD_DAYS)
    out.per_series = pd.DataFrame({k: v for k, v in by.items() if k is not None}).T[
        list(_COUNTS)]
    thr_values = [r["threshold"] for r in out.decisions]
    values["p_min_median"] = float(np.median(thr_values)) if thr_values else float("nan")
    values["p_min_lo"] = float(np.min(thr_values)) if thr_values else float("nan")
    factors = [float(r.get("open_factor", 1.0)) for r in out.decisions]
    values["open_lo"] = min(factors) if factors else float("nan")
    values["open_hi"] = max(factors) if factors else float("nan")
    values["p_min_hi"] = float(np.max(thr_values)) if thr_values else float("nan")
    out.values = values
    out.weekly = w
    if truth:
        t = pd.concat(truth, ignore_index=True)
        out.truth["planted"] = event_scores(p, t, lead_days=LEAD_DAYS)
        out.truth["seasonal"] = event_scores(
            p, t.assign(eligible=t["eligible_seasonal"]), lead_days=LEAD_DAYS)
    return out


def paired_ap_ratio(a: Score, b: Score) -> tuple[float, float, float]:
    """AP of model ``a`` ÷ AP of model ``b`` on the same scored weeks, with a 90 % bootstrap
    interval over series (NaN when either is missing)."""
    if a.weekly is None or b.weekly is None:
        return float("nan"), float("nan"), float("nan")
    return _ap_ratio([(a.weekly, b.weekly)])


_KEY = ["cutoff", "unique_id", "week"]


def _ap_ratio(pairs: Sequence[tuple[pd.DataFrame, pd.DataFrame]]) -> tuple[float, float, float]:
    """AP of the first frames' ``p_spike`` ÷ AP of the second frames' on the weeks both hold
    (pooled over ``pairs``), with the 90 % bootstrap interval over series."""
    both = pd.concat([x.merge(y[_KEY + ["p_spike"]].rename(columns={"p_spike": "other"}),
                              on=_KEY) for x, y in pairs], ignore_index=True)
    ratio = (ranking_scores(both)["average_precision"]
             / ranking_scores(both, score="other")["average_precision"])
    lo, hi = ratio_interval(both, "p_spike", baseline="other")
    return float(ratio), lo, hi


def _f1_of(counts: np.ndarray) -> np.ndarray:
    """Event F1 from summed ``_COUNTS`` (last axis): recall = caught / actual, precision =
    true-positive campaigns / campaigns."""
    n_act, n_caught, n_pred, n_tp = np.moveaxis(counts, -1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r, pr = n_caught / n_act, n_tp / n_pred
        return np.where(r + pr > 0, 2 * pr * r / (pr + r), 0.0)


def paired_f1_difference(a: Score, b: Score, *, n_boot: int = 1000, level: float = 0.9,
                         seed: int = 0) -> tuple[float, float, float]:
    """Event F1 of model ``a`` minus that of ``b``, each at its own learned thresholds, with a
    ``level`` bootstrap interval over series (the same resampled series for both): how much
    of the gap the particular series and year could explain (NaN when either is missing)."""
    if a.per_series is None or b.per_series is None:
        return float("nan"), float("nan"), float("nan")
    ids = a.per_series.index.union(b.per_series.index)
    ca = a.per_series.reindex(ids, fill_value=0.0).to_numpy(dtype=float)
    cb = b.per_series.reindex(ids, fill_value=0.0).to_numpy(dtype=float)
    diff = float(_f1_of(ca.sum(axis=0)) - _f1_of(cb.sum(axis=0)))
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(ids), np.full(len(ids), 1 / len(ids)), size=n_boot)
    boot = _f1_of(weights @ ca) - _f1_of(weights @ cb)
    lo, hi = np.nanquantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return diff, float(lo), float(hi)


def every_origin_ap_ratio(ds: DataSet, a: str, b: str) -> tuple[float, float, float, int]:
    """AP of model ``a`` ÷ AP of model ``b`` over the weeks of *every* origin the bench
    forecasts for ``ds`` (scored and decision origins alike: each forecast is fitted only on
    the days before its origin, so every one is out of sample), with a 90 % bootstrap
    interval over series, and the number of origins. Threshold-free, so no threshold is
    learned on any of these weeks; three times the origins of one scoring, for the question
    one year cannot settle: does one model rank spike weeks better than the other? NaN when a
    forecast is missing from the cache."""
    pairs = []
    tasks = ds.plan.tasks()
    for o, hw in tasks:
        fa = cached_forecast(ds, a, o, hw, compute=False)
        fb = cached_forecast(ds, b, o, hw, compute=False)
        if fa is None or fb is None:
            return float("nan"), float("nan"), float("nan"), len(tasks)
        pairs.append((fa["weekly"], fb["weekly"]))
    return (*_ap_ratio(pairs), len(tasks))


def history_scores(ds: DataSet, key: str,
                   open_factors: Sequence[float] = DEFAULT_OPEN_FACTORS) -> dict[str, float]:
    """Where a knob may be chosen: model ``key``'s forecasts at the origins whose horizons end
    before the first scored origin of ``ds`` (the longest of an origin's), pooled: AP and
    Brier of the weekly P, and event F1 at thresholds (and open factor) learned on those same
    origins (in-sample, the same for every model: a comparison, not an estimate of skill).
    NaN when a forecast is missing."""
    first = min(min(o) for o, _ in ds.plan.scorings().values())
    longest: dict[pd.Timestamp, int] = {}  # one forecast per origin (weeks counted once)
    for o, hw in ds.plan.tasks():
        if o + pd.Timedelta(days=horizon_days(o, hw)) <= first:
            longest[o] = max(hw, longest.get(o, 0))
    tasks = sorted(longest.items())
    fs = [cached_forecast(ds, key, o, hw, compute=False) for o, hw in tasks]
    if not fs or any(f is None for f in fs):
        return {"origins": float(len(tasks)), "average_precision": float("nan"),
                "brier": float("nan"), "f1": float("nan")}
    got = [f for f in fs if f is not None]
    w = pd.concat([f["weekly"] for f in got], ignore_index=True)
    a = pd.concat([f["actual"] for f in got], ignore_index=True)
    dec = learn_thresholds(w, a, categories=ds.categories, lead_days=LEAD_DAYS,
                           open_factors=open_factors)
    win = at_thresholds(pd.concat([f["windows"] for f in got], ignore_index=True),
                        series_thresholds(dec, ds.categories),
                        series_open_factors(dec, ds.categories))
    r = ranking_scores(w)
    return {"origins": float(len(tasks)), "average_precision": r["average_precision"],
            "brier": r["brier"], "f1": event_scores(win, a, lead_days=LEAD_DAYS)["f1"]}

"""Forecasts of ``bench/accuracy.py``: one (set, model, origin, horizon) at a time, cached.

A forecast at origin ``o`` (last training day) fits a fresh model on the data up to ``o`` and
keeps, for the complete weeks of the horizon (:func:`models.backtest.horizon_days`):

- ``weekly``: ``cutoff, unique_id, week, expected, p_spike, threshold, y, spike``, the spike
  threshold ``T`` from history only (:func:`models.peaks.thresholds`), as the backtest does;
- ``actual``: the actual spike windows ``cutoff, unique_id, start, end, eligible`` (eligible =
  starts at least ``lead_days`` after the origin);
- ``windows``: the campaign windows (:func:`models.peaks.peak_windows` *with* the sample
  paths, so each has its expected ``onset``) at every threshold of
  :data:`models.decision.DEFAULT_GRID`, column ``p_min``: the windows at a threshold learned
  later are the rows of that threshold, exactly as the service would plan them.

Each result is pickled under ``var/bench-cache/<set>/<model>/`` (gitignored; a bench cache,
not a model artefact) with a key from the model's parameters and the data, so a rerun only
pays for what changed.
"""

from __future__ import annotations

import hashlib
import pickle
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from bench._accuracy_data import ROOT, DataSet
from models.backtest import horizon_days
from models.decision import DEFAULT_GRID
from models.peaks import (
    DEFAULT_ONSET_LOOKBACK_WEEKS,
    _onset,  # the onset rule of peak_windows, applied to windows found without paths
    peak_windows,
    runs_to_windows,
    spike_probabilities,
    thresholds,
)
from models.series import to_weekly

CACHE = ROOT / "var" / "bench-cache"
LEAD_DAYS = 14
N_SAMPLES = 1000
MODELS = ("forewarn", "forewarn_gauss", "forewarn_sharp", "sn", "hgb", "plain", "oracle",
          "seasonal_oracle", "climate_oracle")
SAMPLES_ONLY = ("oracle", "seasonal_oracle", "climate_oracle")
LABELS = {"forewarn": "forewarn", "forewarn_gauss": "forewarn, Gaussian paths",
          "forewarn_sharp": "forewarn, no noise inflation",
          "sn": "seasonal naive", "hgb": "HGB", "plain": "plain Prophet",
          "oracle": "oracle", "seasonal_oracle": "seasonal oracle",
          "climate_oracle": "climatological oracle"}

__all__ = ["CACHE", "LEAD_DAYS", "MODELS", "LABELS", "model_spec", "forecast_origin",
           "cached_forecast", "run_tasks"]

_EXPECTED: dict[str, pd.DataFrame] = {}


def _expected(key: str) -> pd.DataFrame:
    """The generator's expected counts behind oracle ``key`` (bench/_oracle.py)."""
    if key not in _EXPECTED:
        from bench._oracle import climatological_expected
        from service.samples.generator import expected_counts

        _EXPECTED[key] = (climatological_expected() if key == "climate_oracle"
                          else expected_counts(surprises=key == "oracle"))
    return _EXPECTED[key]


def model_spec(key: str, ds: DataSet) -> Any:
    """An unfitted forecaster for model ``key`` on set ``ds`` (1,000 sample paths each)."""
    if key == "forewarn":
        from models.forecast import ProphetForecaster

        return ProphetForecaster(n_samples=N_SAMPLES, calendar=ds.prophet_calendar,
                                 local_events=ds.prophet_calendar == "cn")
    if key == "forewarn_gauss":  # the same fits, Gaussian path noise (research variant)
        from models.forecast import ProphetForecaster

        return ProphetForecaster(n_samples=N_SAMPLES, calendar=ds.prophet_calendar,
                                 local_events=ds.prophet_calendar == "cn", noise="gaussian")
    if key == "forewarn_sharp":  # the same fits, in-sample week-shock variance (research)
        from models.forecast import ProphetForecaster

        return ProphetForecaster(n_samples=N_SAMPLES, calendar=ds.prophet_calendar,
                                 local_events=ds.prophet_calendar == "cn", noise_inflation=1.0)
    if key == "sn":
        from models.baselines import SeasonalNaive

        return SeasonalNaive(n_samples=N_SAMPLES)
    if key == "hgb":
        from models.baselines import GlobalHistGradientBoosting

        return GlobalHistGradientBoosting(country=ds.country, n_samples=N_SAMPLES)
    if key == "plain":
        from models.baselines import PlainProphet

        return PlainProphet(n_samples=N_SAMPLES)
    if key in SAMPLES_ONLY:
        from bench._oracle import GeneratorOracle

        return GeneratorOracle(_expected(key), n_samples=N_SAMPLES)
    raise SystemExit(f"unknown model {key!r} (choose from {', '.join(MODELS)})")


def _weekly_actual(full: pd.DataFrame, weekly_full: pd.DataFrame, cutoff: pd.Timestamp,
                   horizon_weeks: int) -> tuple[pd.Series, pd.DataFrame, pd.DataFrame]:
    """Thresholds from history, actual weekly counts and spike windows of one origin."""
    end = cutoff + pd.Timedelta(days=horizon_days(cutoff, horizon_weeks))
    hist = full[full["ds"] <= cutoff]
    thr = thresholds(to_weekly(hist), until=cutoff + pd.Timedelta(days=1))
    last_day = weekly_full["week"] + pd.Timedelta(days=6)
    in_h = weekly_full[(last_day > cutoff) & (last_day <= end)
                       & weekly_full["unique_id"].isin(thr.index)]
    aw = in_h.assign(threshold=thr.reindex(in_h["unique_id"]).to_numpy())
    aw["spike"] = aw["y"] > aw["threshold"]
    rows = []
    for uid, g in aw.sort_values("week").groupby("unique_id", sort=True):
        for first, last in runs_to_windows(g["week"], g["spike"].astype(bool)):
            rows.append({"unique_id": uid, "start": first, "end": last + pd.Timedelta(days=6)})
    act = pd.DataFrame(rows, columns=["unique_id", "start", "end"])
    act["eligible"] = act["start"] >= cutoff + pd.Timedelta(days=LEAD_DAYS)
    return thr, aw, act.assign(cutoff=cutoff)


def grid_windows(probs: pd.DataFrame, samples: pd.DataFrame, grid: Sequence[float]
                 ) -> pd.DataFrame:
    """:func:`models.peaks.peak_windows` with the sample paths at every threshold of ``grid``:
    the same rows as calling it for each threshold, faster. The windows are found without
    paths (vectorised), then the onset of each window's first part is computed from the
    paths with the same rule (``models.peaks._onset``: the week by which a share ``p_min`` of
    the paths has crossed T, looking back up to 4 weeks, not past the previous window)."""
    values = samples.to_numpy(dtype=float)
    level0 = np.asarray(samples.index.get_level_values(0))
    weeks_all = pd.DatetimeIndex(pd.to_datetime(samples.index.get_level_values(1)))
    rows: dict[object, np.ndarray] = {
        uid: np.flatnonzero(level0 == uid) for uid in pd.unique(level0)}
    parts = []
    for p in grid:
        win = peak_windows(probs, p_min=float(p)).sort_values(["unique_id", "start"])
        win = win.reset_index(drop=True)
        first = win["part"] == 1
        heads = win[first]
        previous = (heads.groupby("unique_id")["window_end"].shift(1)
                    - pd.Timedelta(days=6))
        onset = win["start"].copy()
        for i, uid, start, thr, prev in zip(heads.index, heads["unique_id"], heads["start"],
                                            heads["threshold"], previous, strict=True):
            r = rows.get(uid)
            if r is None or not len(r):
                continue
            onset.at[i] = _onset(values[r], weeks_all[r], float(thr), start, float(p),
                                 DEFAULT_ONSET_LOOKBACK_WEEKS,
                                 None if pd.isna(prev) else pd.Timestamp(prev))
        parts.append(win.assign(onset=onset))
    return pd.concat(parts, ignore_index=True)


def forecast_origin(ds: DataSet, key: str, cutoff: pd.Timestamp, horizon_weeks: int,
                    grid: Sequence[float] = DEFAULT_GRID) -> dict[str, Any]:
    """Fit model ``key`` on ``ds`` up to ``cutoff`` and forecast ``horizon_weeks`` weeks."""
    full = ds.daily
    weekly_full = to_weekly(full)
    thr, aw, act = _weekly_actual(full, weekly_full, cutoff, horizon_weeks)
    end = cutoff + pd.Timedelta(days=horizon_days(cutoff, horizon_weeks))
    t0 = time.perf_counter()
    out = clone(model_spec(key, ds)).fit(full[full["ds"] <= cutoff]).predict(
        horizon_days(cutoff, horizon_weeks))
    seconds = time.perf_counter() - t0
    samples = out.weekly_samples
    probs = spike_probabilities(samples, thr)
    probs = probs[probs["week"] + pd.Timedelta(days=6) <= end].reset_index(drop=True)
    weekly = probs.merge(aw[["unique_id", "week", "y", "spike"]], on=["unique_id", "week"],
                         how="left").assign(cutoff=cutoff)
    windows = grid_windows(probs, samples, grid).assign(cutoff=cutoff, available_at=cutoff)
    return {"weekly": weekly, "actual": act, "windows": windows, "seconds": seconds,
            "failures": out.failures.assign(cutoff=cutoff), "n_series": len(thr)}


def _tag(key: str, ds: DataSet) -> str:
    spec = model_spec(key, ds)
    params = {k: v for k, v in sorted(spec.get_params().items())
              if isinstance(v, (str, int, float, bool, type(None)))}
    y = ds.daily["y"].to_numpy(dtype=float)
    data = (sorted(ds.daily["unique_id"].unique()), len(y), float(y.sum()),
            float((y * np.arange(len(y)) % 9973).sum()), str(ds.daily["ds"].min()))
    return hashlib.sha256(repr((key, params, data, LEAD_DAYS, list(DEFAULT_GRID))).encode()
                          ).hexdigest()[:12]


def cache_path(ds: DataSet, key: str, cutoff: pd.Timestamp, horizon_weeks: int,
               tag: str) -> Path:
    return CACHE / ds.name / key / f"{cutoff:%Y%m%d}_{horizon_weeks}w_{tag}.pkl"


def cached_forecast(ds: DataSet, key: str, cutoff: pd.Timestamp, horizon_weeks: int,
                    tag: str | None = None, *, compute: bool = True) -> dict[str, Any] | None:
    """The cached forecast, computed (and stored) when missing and ``compute`` is True."""
    path = cache_path(ds, key, cutoff, horizon_weeks, tag or _tag(key, ds))
    if path.exists():
        with path.open("rb") as fh:
            result: dict[str, Any] = pickle.load(fh)
        return result
    if not compute:
        return None
    result = forecast_origin(ds, key, cutoff, horizon_weeks)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    return result


def _task(ds: DataSet, key: str, cutoff: pd.Timestamp, hw: int, tag: str) -> str:
    t0 = time.perf_counter()
    cached_forecast(ds, key, cutoff, hw, tag)
    return f"{ds.name} {key} {cutoff.date()} {hw}w {time.perf_counter() - t0:.1f}s"


def run_tasks(sets: Sequence[DataSet], keys: Sequence[str], jobs: int,
              log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> None:
    """Compute every missing (set, model, origin, horizon), ``jobs`` processes at a time:
    yearly scoring first, then quarterly; the targets' models (forewarn, SN, plain) first."""
    cost = {"sn": 0, "oracle": 0, "seasonal_oracle": 0, "climate_oracle": 0, "forewarn": 1,
            "forewarn_gauss": 1, "forewarn_sharp": 1, "plain": 2, "hgb": 3}
    todo = []
    for ds in sets:
        for key in keys:
            if key in SAMPLES_ONLY and ds.truth is None:
                continue
            tag = _tag(key, ds)
            for i, (cutoff, hw) in enumerate(ds.plan.tasks()):
                if not cache_path(ds, key, cutoff, hw, tag).exists():
                    todo.append((i >= 3, cost.get(key, 9), ds, key, cutoff, hw, tag))
    todo.sort(key=lambda t: (t[0], t[1]))
    log(f"# {len(todo)} forecasts to compute ({jobs} job(s))")
    if jobs <= 1:
        for n, (_, _, ds, key, cutoff, hw, tag) in enumerate(todo, start=1):
            log(f"# [{n}/{len(todo)}] " + _task(ds, key, cutoff, hw, tag))
        return
    from joblib import Parallel, delayed

    done = Parallel(n_jobs=jobs, return_as="generator_unordered")(
        delayed(_task)(ds, key, cutoff, hw, tag) for _, _, ds, key, cutoff, hw, tag in todo)
    for n, msg in enumerate(done, start=1):
        log(f"# [{n}/{len(todo)}] {msg}")

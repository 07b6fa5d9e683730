"""Baseline forecasters behind the same interface as Prophet.

Both baselines take a long daily frame ``unique_id, ds, y`` in ``fit`` and return a
:class:`models.types.ForecastOutput` from ``predict(horizon)``: daily ``yhat`` with an 80 %
interval and weekly predictive sample paths, so that ``P(spike)`` (DESIGN.md) is computed
the same way for every model.

- :class:`SeasonalNaive` — the value of the same weekday of the same ISO week one year
  earlier (lag 364 days = 52 weeks). Uncertainty: a **weekly block bootstrap of its own past
  errors**: for each sample path and future ISO week, one past week of daily in-sample
  errors ``y[t] - y[t - 364]`` (the 7 days of a random complete week among the last
  ``error_weeks``) is added to the point forecast, day by day. Daily values are clipped at 0
  for the daily interval; weekly sums are clipped once per week (clipping each day first
  would push low-count series upwards, since a day forecast at 0 can only move up). Drawing
  whole weeks keeps the within-week correlation of errors (a season that comes a week early
  moves all 7 days), which is what the weekly spike probability depends on; independent
  daily errors would make weekly sums far too narrow. With fewer than ``min_error_weeks``
  weeks of errors it falls back to Poisson noise around the point (flag ``short_history``).
- :class:`GlobalHistGradientBoosting` — one scikit-learn ``HistGradientBoostingRegressor``
  (Poisson loss) across all series, direct multi-horizon: every training row is a
  (target day, origin) pair with a random lead ``h`` in ``1..max_horizon``, and every feature
  is known at the origin (calendar of the target day, series code, recent levels at the
  origin, same-week-last-year values). Uncertainty: a Poisson–gamma mixture around the mean,
  with a weekly gamma factor (variance ``beta``, from weekly in-sample residuals) and a daily
  gamma factor (variance ``alpha``, the remaining daily over-dispersion).

Sample paths are seeded per series (``random_state`` and the series id), so a series' paths
do not depend on which other series are in the frame.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from models.series import week_start
from models.types import (
    DAILY_COLUMNS,
    FAILURE_COLUMNS,
    FLAG_COLUMNS,
    ForecastOutput,
    require_columns,
)

__all__ = ["SeasonalNaive", "GlobalHistGradientBoosting", "PlainProphet", "calendar_features",
           "SEASON_DAYS"]

SEASON_DAYS = 364
_LOWER_Q, _UPPER_Q = 0.1, 0.9

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


# --------------------------------------------------------------------------- helpers
def _prepare(df: pd.DataFrame) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Zero-filled, sorted ``unique_id, ds, y`` with float ``y``, and the series left out.

    A series with a negative or missing count is left out (one failure row each) instead of
    failing the whole batch.
    """
    require_columns(df, ("unique_id", "ds", "y"))
    f = df[["unique_id", "ds", "y"]].copy()
    f["ds"] = pd.to_datetime(f["ds"]).dt.normalize()
    f["y"] = pd.to_numeric(f["y"], errors="coerce").astype(float)
    invalid = f["y"].isna() | (f["y"] < 0)
    bad = pd.unique(f.loc[invalid, "unique_id"])
    failures = [{"unique_id": str(u), "error": "ValueError: negative or missing counts"}
                for u in bad]
    f = f[~f["unique_id"].isin(bad)]
    f = f.groupby(["unique_id", "ds"], sort=True, as_index=False).agg(y=("y", "sum"))
    parts = []
    for uid, g in f.groupby("unique_id", sort=True):
        idx = pd.date_range(g["ds"].iloc[0], g["ds"].iloc[-1], freq="D")
        y = g.set_index("ds")["y"].reindex(idx, fill_value=0.0)
        parts.append(pd.DataFrame({"unique_id": uid, "ds": idx, "y": y.to_numpy(dtype=float)}))
    if not parts:
        raise ValueError("no usable series in the frame")
    return pd.concat(parts, ignore_index=True), failures


def _series_rng(random_state: int | None, uid: object) -> np.random.Generator:
    key = zlib.crc32(str(uid).encode("utf-8"))
    seed = [0 if random_state is None else int(random_state), key]
    return np.random.default_rng(seed)


def _weekly_sums(
    ds: pd.DatetimeIndex, paths: FloatArray, observed_first_week: float, n_observed: int
) -> tuple[pd.DatetimeIndex, FloatArray]:
    """Sum daily paths ``(S, h)`` per ISO week; keep complete weeks only.

    The first week adds ``observed_first_week`` (the known days before the horizon); a
    trailing week that the horizon does not cover completely is dropped.
    """
    codes, uniq = pd.factorize(pd.DatetimeIndex(week_start(ds)), sort=True)
    starts = np.flatnonzero(np.r_[True, np.diff(codes) != 0])
    counts = np.bincount(codes)
    sums = np.add.reduceat(paths, starts, axis=1) if paths.shape[1] else paths
    if counts.size:
        sums[:, 0] += observed_first_week
        counts[0] += n_observed
    keep = counts == 7
    return pd.DatetimeIndex(uniq[keep]), sums[:, keep]


class _CountBaseline(BaseEstimator):  # type: ignore[misc]
    """Shared ``predict`` machinery: daily point + daily sample paths -> ForecastOutput."""

    model_name: ClassVar[str] = "baseline"
    n_samples: int
    random_state: int | None

    history_: pd.DataFrame
    flags_: list[tuple[str, str, str]]
    fit_failures_: list[dict[str, str]]

    # subclasses implement _fit, _points and _forecast_series
    def _fit(self, hist: pd.DataFrame) -> None:
        raise NotImplementedError

    def _forecast_series(
        self, uid: object, y: FloatArray, future: pd.DatetimeIndex, point: FloatArray,
        rng: np.random.Generator,
    ) -> FloatArray:
        """Daily sample paths ``(n_samples, len(future))`` for one series (may be negative:
        daily intervals clip them at 0 day by day, weekly sums once per week)."""
        raise NotImplementedError

    def _points(self, future: pd.DataFrame) -> FloatArray:
        """Point forecasts aligned with ``future`` (``unique_id, ds``)."""
        raise NotImplementedError

    def fit(self, df: pd.DataFrame) -> Self:
        """Fit on a long daily frame ``unique_id, ds, y`` (missing days count as 0).

        Returns
        -------
        self
        """
        hist, self.fit_failures_ = _prepare(df)
        self.history_ = hist
        self.flags_ = []
        self._fit(hist)
        return self

    def predict(self, horizon: int) -> ForecastOutput:
        """Forecast ``horizon`` days after each series' last day.

        Returns
        -------
        ForecastOutput
            ``daily``: ``unique_id, ds, yhat, yhat_lower, yhat_upper, model`` (80 % interval
            from the 10 % and 90 % quantiles of the daily sample paths, widened if needed to
            contain ``yhat``); ``weekly_samples``: index ``(unique_id, week)``, columns
            ``0..n_samples-1``, complete ISO weeks only (the partial first week includes the
            observed days, a trailing partial week is dropped).
        """
        if not hasattr(self, "history_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted")
        if horizon < 1:
            raise ValueError("horizon must be >= 1")
        hist = self.history_
        last = hist.groupby("unique_id", sort=True)["ds"].max()
        future = pd.concat(
            [pd.DataFrame({"unique_id": uid,
                           "ds": pd.date_range(d + pd.Timedelta(days=1), periods=horizon)})
             for uid, d in last.items()],
            ignore_index=True,
        )
        points = self._points(future)
        future = future.assign(point=np.clip(points, 0.0, None))

        daily_parts: list[pd.DataFrame] = []
        weekly_parts: list[pd.DataFrame] = []
        failures: list[dict[str, str]] = list(self.fit_failures_)
        cols = list(range(self.n_samples))
        hist_groups = dict(tuple(hist.groupby("unique_id", sort=True)))
        for uid, fut in future.groupby("unique_id", sort=True):
            try:
                h = hist_groups[uid]
                y = h["y"].to_numpy(dtype=float)
                ds = pd.DatetimeIndex(fut["ds"])
                point = fut["point"].to_numpy(dtype=float)
                paths = self._forecast_series(uid, y, ds, point, _series_rng(self.random_state,
                                                                              uid))
                clipped = np.clip(paths, 0.0, None)
                lo = np.quantile(clipped, _LOWER_Q, axis=0)
                hi = np.quantile(clipped, _UPPER_Q, axis=0)
                daily_parts.append(pd.DataFrame({
                    "unique_id": uid, "ds": ds, "yhat": point,
                    "yhat_lower": np.minimum(lo, point), "yhat_upper": np.maximum(hi, point),
                    "model": self.model_name,
                }))
                first_week = week_start(ds[:1]).iloc[0]
                known = h[h["ds"] >= first_week]
                # weekly sums of the unclipped daily paths, clipped once per week: clipping
                # each day would bias low-count series upwards (additive errors)
                weeks, sums = _weekly_sums(ds, paths, float(known["y"].sum()), len(known))
                sums = np.clip(sums, 0.0, None)
                part = pd.DataFrame(sums.T, columns=cols)
                part.index = pd.MultiIndex.from_arrays(
                    [np.repeat(np.array([uid], dtype=object), len(weeks)), weeks],
                    names=["unique_id", "week"])
                weekly_parts.append(part)
            except Exception as exc:  # one failing series must not abort the batch
                failures.append({"unique_id": str(uid), "error": f"{type(exc).__name__}: {exc}"})

        daily = (pd.concat(daily_parts, ignore_index=True) if daily_parts
                 else pd.DataFrame(columns=DAILY_COLUMNS))
        if weekly_parts:
            weekly = pd.concat(weekly_parts)
        else:
            weekly = pd.DataFrame(columns=cols, index=pd.MultiIndex.from_arrays(
                [[], pd.DatetimeIndex([])], names=["unique_id", "week"]))
        flags = pd.DataFrame(self.flags_, columns=FLAG_COLUMNS)
        return ForecastOutput(daily=daily[DAILY_COLUMNS], weekly_samples=weekly, flags=flags,
                              failures=pd.DataFrame(failures, columns=FAILURE_COLUMNS))


# --------------------------------------------------------------------------- seasonal naive
class SeasonalNaive(_CountBaseline):
    """Same weekday of the same ISO week one year earlier (lag 364 days).

    Parameters
    ----------
    n_samples : number of sample paths.
    error_weeks : how many recent complete weeks of in-sample errors to bootstrap from.
    min_error_weeks : below this many weeks of errors, paths are Poisson around the point.
    random_state : seed (combined with the series id).

    Notes
    -----
    Horizons beyond 364 days repeat the forecast (lag 728, …). With less than 364 days of
    history the point is the same weekday of the last observed week (lag 7), flagged
    ``short_history``. A 53-week ISO year shifts the lag-364 alignment by one week; accepted.
    """

    model_name: ClassVar[str] = "SeasonalNaive"

    def __init__(self, n_samples: int = 200, error_weeks: int = 104, min_error_weeks: int = 8,
                 random_state: int | None = 0) -> None:
        self.n_samples = n_samples
        self.error_weeks = error_weeks
        self.min_error_weeks = min_error_weeks
        self.random_state = random_state

    errors_: dict[object, FloatArray]
    lags_: dict[object, int]

    def _fit(self, hist: pd.DataFrame) -> None:
        self.errors_ = {}
        self.lags_ = {}
        for uid, g in hist.groupby("unique_id", sort=True):
            y = g["y"].to_numpy(dtype=float)
            ds = pd.DatetimeIndex(g["ds"])
            lag = SEASON_DAYS if len(y) >= SEASON_DAYS else 7
            self.lags_[uid] = lag
            if lag != SEASON_DAYS:
                self.flags_.append((str(uid), "short_history",
                                    f"{len(y)} days < {SEASON_DAYS}: lag 7 used"))
            if not y.any():
                self.flags_.append((str(uid), "all_zero", "no counts in history"))
            err = np.full(len(y), np.nan)
            if len(y) > lag:
                err[lag:] = y[lag:] - y[:-lag]
            # complete Monday..Sunday weeks of errors, as a (weeks, 7) matrix
            first_monday = int((7 - ds[0].weekday()) % 7)
            n_weeks = (len(y) - first_monday) // 7
            blocks = err[first_monday:first_monday + 7 * n_weeks].reshape(n_weeks, 7)
            blocks = blocks[~np.isnan(blocks).any(axis=1)][-self.error_weeks:]
            self.errors_[uid] = blocks
            if len(blocks) < self.min_error_weeks and lag == SEASON_DAYS:
                self.flags_.append((str(uid), "short_history",
                                    f"{len(blocks)} weeks of errors: Poisson paths"))

    def _points(self, future: pd.DataFrame) -> FloatArray:
        out: list[FloatArray] = []
        hist_groups = dict(tuple(self.history_.groupby("unique_id", sort=True)))
        for uid, fut in future.groupby("unique_id", sort=True):
            y = hist_groups[uid]["y"].to_numpy(dtype=float)
            lag = min(self.lags_[uid], len(y))
            ext = np.concatenate([y, np.zeros(len(fut))])
            n = len(y)
            for t in range(n, n + len(fut), lag):
                stop = min(t + lag, n + len(fut))
                ext[t:stop] = ext[t - lag:stop - lag]
            out.append(ext[n:])
        return np.concatenate(out) if out else np.zeros(0)

    def _forecast_series(
        self, uid: object, y: FloatArray, future: pd.DatetimeIndex, point: FloatArray,
        rng: np.random.Generator,
    ) -> FloatArray:
        blocks = self.errors_[uid]
        if len(blocks) < self.min_error_weeks:
            return rng.poisson(np.broadcast_to(point, (self.n_samples, len(point)))).astype(float)
        week_idx, _ = pd.factorize(week_start(future), sort=True)
        dow = np.asarray(future.day_of_week)
        draws = rng.integers(0, len(blocks), size=(self.n_samples, int(week_idx.max()) + 1))
        noise = blocks[draws[:, week_idx], dow[None, :]]
        return np.asarray(point[None, :] + noise, dtype=float)


# --------------------------------------------------------------------------- calendar
def _spring_festivals(years: range) -> FloatArray:
    import holidays

    out = []
    for year in years:
        cn = holidays.country_holidays("CN", years=year)
        days = [d for d, name in cn.items() if "Spring Festival" in name]
        if days:
            out.append((pd.Timestamp(min(days)) - pd.Timestamp("1970-01-01")).days)
    return np.sort(np.array(out, dtype=float))


def calendar_features(days: pd.DatetimeIndex, *, country: str | None = "CN") -> pd.DataFrame:
    """Calendar features of each day, known in advance.

    Columns: ``dow, doy, iso_week, month, dom`` and, when ``country`` is given (a code of the
    ``holidays`` package) ``is_holiday, is_workday``. For ``CN`` these come from
    :func:`models.calendar.day_table` (official breaks, 调休 make-up workdays), plus
    ``is_makeup_workday``, ``block`` (festival block code, 0 = none) and
    ``days_to_spring_festival`` (signed, clipped to ±60 days).
    """
    days = pd.DatetimeIndex(days).normalize()
    iso = days.isocalendar()
    out = pd.DataFrame({
        "dow": days.day_of_week.to_numpy(),
        "doy": days.day_of_year.to_numpy(),
        "iso_week": iso["week"].to_numpy(dtype=int),
        "month": days.month.to_numpy(),
        "dom": days.day.to_numpy(),
    })
    if country is None or len(days) == 0:
        return out
    years = range(int(days.year.min()) - 1, int(days.year.max()) + 2)
    is_cn = country.upper() in {"CN", "CHN", "CHINA"}
    if is_cn:
        from models.calendar import BLOCK_NAMES, day_table

        table = day_table(days.min(), days.max()).set_index("ds").reindex(days)
        out["is_holiday"] = table["is_holiday"].to_numpy(dtype=int)
        out["is_workday"] = table["is_workday"].to_numpy(dtype=int)
        out["is_makeup_workday"] = table["is_makeup_workday"].to_numpy(dtype=int)
        codes = {name: i + 1 for i, name in enumerate(BLOCK_NAMES)}
        out["block"] = [codes.get(b, len(codes) + 1) if isinstance(b, str) else 0
                        for b in table["block"]]
    else:
        import holidays

        cal = holidays.country_holidays(country, years=list(years))
        is_hol = days.isin(pd.DatetimeIndex(sorted(pd.Timestamp(d) for d in cal)))
        out["is_holiday"] = is_hol.astype(int)
        out["is_workday"] = ((days.day_of_week < 5) & ~is_hol).astype(int)
    if is_cn:
        sf = _spring_festivals(years)
        if sf.size:
            v = (days - pd.Timestamp("1970-01-01")).days.to_numpy(dtype=float)
            diffs = v[:, None] - sf[None, :]
            diff = diffs[np.arange(len(v)), np.argmin(np.abs(diffs), axis=1)]
            out["days_to_spring_festival"] = np.clip(np.round(diff), -60, 60).astype(int)
    return out


# --------------------------------------------------------------------------- global HGB
_LEVEL_FLOOR = 0.02  # counts/day; floor of the per-row scale used for the relative target


class GlobalHistGradientBoosting(_CountBaseline):
    """One Poisson ``HistGradientBoostingRegressor`` across all series (direct multi-horizon).

    Parameters
    ----------
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization :
        passed to ``HistGradientBoostingRegressor`` (``loss="poisson"``).
    max_horizon : longest lead (days) sampled for training rows; predictions further out
        use the same features with the last-year values taken ``ceil(h / 364)`` years back.
    n_horizon_draws : training rows per (series, day), each with its own random lead.
    seasonal_years : how many past years feed the seasonal-index features.
    country : ``holidays`` country code for holiday / workday flags (None: none).
    calendar : optional callable ``DatetimeIndex -> DataFrame`` of extra day features (e.g. a
        ``models.calendar`` day table), joined to :func:`calendar_features`.
    dispersion_scale : multiplies the estimated over-dispersion (1.0 = as estimated from
        in-sample residuals, which are somewhat optimistic).
    n_threads : OpenMP threads for the booster (None = library default). Default 1: on a
        shared 2-core machine more threads made a small fit 10-20x slower (oversubscription),
        and parallelism belongs to the process pool that runs many fits.
    n_samples, random_state : sample paths and seed.

    Notes
    -----
    Features of a row (target day ``d``, origin ``o``, lead ``h = d - o``): calendar of ``d``;
    series code (categorical, if at most 255 series); ``h``; mean count of the last 28 and 365
    days at ``o``; their ratio; the count on ``d - 364k`` and the mean of the 7 days around it
    (``k = ceil(h / 364)``, only days ``<= o``); for each of the last ``seasonal_years``
    years ``j``, the 7-day mean around ``d - 364(k + j)`` relative to the 365-day level before
    ``o - 364(k + j)`` (``ly1_ratio``, ...), and their averages over the years for 7- and
    21-day windows (``season_index``, ``season_index_21``: a per-series seasonal profile that
    tolerates seasons shifting by a week or two). The target is the count divided by the
    365-day level at ``o`` (floored at 0.02/day) with that level as sample weight, which for
    the Poisson deviance is the same as fitting counts with an offset: one model serves series
    of very
    different sizes.
    """

    model_name: ClassVar[str] = "GlobalHistGradientBoosting"

    def __init__(self, max_iter: int = 200, learning_rate: float = 0.05,
                 max_leaf_nodes: int = 31, min_samples_leaf: int = 40,
                 l2_regularization: float = 1.0, max_horizon: int = 371,
                 n_horizon_draws: int = 1, seasonal_years: int = 3,
                 country: str | None = "CN",
                 calendar: Callable[[pd.DatetimeIndex], pd.DataFrame] | None = None,
                 dispersion_scale: float = 1.0, n_threads: int | None = 1,
                 n_samples: int = 200, random_state: int | None = 0) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.max_horizon = max_horizon
        self.n_horizon_draws = n_horizon_draws
        self.seasonal_years = seasonal_years
        self.country = country
        self.calendar = calendar
        self.dispersion_scale = dispersion_scale
        self.n_threads = n_threads
        self.n_samples = n_samples
        self.random_state = random_state

    model_: HistGradientBoostingRegressor
    codes_: dict[object, int]
    use_code_: bool
    alpha_: dict[object, float]
    beta_: dict[object, float]
    feature_names_: list[str]

    # ---- features
    def _calendar_table(self, first: pd.Timestamp, last: pd.Timestamp) -> pd.DataFrame:
        days = pd.date_range(first, last, freq="D")
        base = calendar_features(days, country=self.country)
        if self.calendar is not None:
            extra = self.calendar(days).reset_index(drop=True)
            base = pd.concat([base, extra.add_prefix("cal_")], axis=1)
        base.index = days
        return base

    @staticmethod
    def _series_block(y: FloatArray, d: np.ndarray[Any, Any], o: np.ndarray[Any, Any],
                      seasonal_years: int = 3) -> dict[str, FloatArray]:
        """Origin-known features for target indices ``d`` and origin indices ``o``."""
        cs = np.concatenate([[0.0], np.cumsum(y)])

        def window_mean(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> FloatArray:
            a = np.clip(a, 0, None)
            b = np.minimum(b, o)
            n = b - a + 1
            ok = n > 0
            out = np.full(len(a), np.nan)
            out[ok] = (cs[b[ok] + 1] - cs[a[ok]]) / n[ok]
            return out

        h = d - o
        k = np.maximum(1, np.ceil(h / SEASON_DAYS)).astype(int)
        lyd = d - SEASON_DAYS * k
        lvl28 = window_mean(o - 27, o)
        lvl365 = window_mean(o - 364, o)
        ly_point = np.where(lyd >= 0, y[np.clip(lyd, 0, len(y) - 1)], np.nan)
        ly7 = window_mean(lyd - 3, lyd + 3)
        feats = {"h": h.astype(float), "level_28": lvl28, "level_365": lvl365,
                 "ly_point": ly_point, "ly_7": ly7}
        ratios7, ratios21 = [], []
        with np.errstate(divide="ignore", invalid="ignore"):
            feats["level_ratio"] = lvl28 / np.maximum(lvl365, _LEVEL_FLOOR)
            # seasonal index of each of the last years: the 7- and 21-day means around the
            # same day, relative to that year's 365-day level
            for j in range(seasonal_years):
                back = SEASON_DAYS * (k + j)
                dd, oo = d - back, o - back
                level = window_mean(oo - 364, oo)
                level[oo < 0] = np.nan
                r7 = window_mean(dd - 3, dd + 3) / np.maximum(level, _LEVEL_FLOOR)
                r21 = window_mean(dd - 10, dd + 10) / np.maximum(level, _LEVEL_FLOOR)
                feats[f"ly{j + 1}_ratio"] = r7
                ratios7.append(r7)
                ratios21.append(r21)
        if ratios7:
            stack7, stack21 = np.vstack(ratios7), np.vstack(ratios21)
            seen = np.isfinite(stack7).any(axis=0)
            feats["season_index"] = np.full(len(d), np.nan)
            feats["season_index_21"] = np.full(len(d), np.nan)
            feats["season_index"][seen] = np.nanmean(stack7[:, seen], axis=0)
            feats["season_index_21"][seen] = np.nanmean(stack21[:, seen], axis=0)
        return feats

    def _design(self, uid: object, block: dict[str, FloatArray], days: pd.DatetimeIndex,
                cal: pd.DataFrame) -> pd.DataFrame:
        pos = (pd.DatetimeIndex(days) - cal.index[0]).days.to_numpy()
        X: pd.DataFrame = cal.iloc[pos].reset_index(drop=True)
        for name, values in block.items():
            X[name] = values
        if self.use_code_:
            X["series"] = self.codes_[uid]
        return X

    # ---- fit
    def _fit(self, hist: pd.DataFrame) -> None:
        rng = np.random.default_rng(self.random_state)
        uids = list(hist["unique_id"].drop_duplicates())
        self.codes_ = {u: i for i, u in enumerate(uids)}
        self.use_code_ = len(uids) <= 255
        if not self.use_code_:
            self.flags_.extend((str(u), "no_series_code", f"{len(uids)} series > 255")
                               for u in uids)
        Xs, ys, ws, keys = [], [], [], []
        cal = self._calendar_table(hist["ds"].min(), hist["ds"].max())
        for uid, g in hist.groupby("unique_id", sort=True):
            y = g["y"].to_numpy(dtype=float)
            ds = pd.DatetimeIndex(g["ds"])
            n = len(y)
            for _ in range(self.n_horizon_draws):
                d = np.arange(28, n)
                h = rng.integers(1, self.max_horizon + 1, size=len(d))
                o = d - h
                ok = o >= 27
                d, o = d[ok], o[ok]
                if len(d) == 0:
                    continue
                block = self._series_block(y, d, o, self.seasonal_years)
                scale = np.maximum(block["level_365"], _LEVEL_FLOOR)
                Xs.append(self._design(uid, block, ds[d], cal))
                ys.append(y[d] / scale)
                ws.append(scale)
                keys.append(pd.DataFrame({"unique_id": uid, "week": week_start(ds[d]).to_numpy(),
                                          "y": y[d], "scale": scale}))
        if not Xs:
            raise ValueError("not enough history to train (need > 28 days in some series)")
        X = pd.concat(Xs, ignore_index=True)
        X = X.loc[:, X.notna().any().to_numpy()]  # e.g. 3-year features on 2 years of data
        self.feature_names_ = list(X.columns)
        if self.use_code_:
            X["series"] = pd.Categorical(X["series"], categories=range(len(uids)))
        self.model_ = HistGradientBoostingRegressor(
            loss="poisson", max_iter=self.max_iter, learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization, categorical_features="from_dtype",
            early_stopping=False, random_state=self.random_state,
        )
        y_all = np.concatenate(ys)
        w_all = np.concatenate(ws)
        with threadpool_limits(limits=self.n_threads, user_api="openmp"):
            self.model_.fit(X, y_all, sample_weight=w_all)
            mu = self.model_.predict(X)
        fitted = pd.concat(keys, ignore_index=True)
        fitted["mu"] = mu * fitted["scale"].to_numpy()
        self._estimate_dispersion(fitted)

    def _estimate_dispersion(self, fitted: pd.DataFrame) -> None:
        """Method-of-moments over-dispersion per series (pooled when a series is short)."""
        def moments(y: pd.Series, mu: pd.Series) -> tuple[float, float]:
            return float(((y - mu) ** 2 - mu).sum()), float((mu ** 2).sum())

        weekly = fitted.groupby(["unique_id", "week"], sort=True).agg(
            y=("y", "sum"), mu=("mu", "sum"), n=("y", "size"))
        num_d, den_d = moments(fitted["y"], fitted["mu"])
        num_w, den_w = moments(weekly["y"], weekly["mu"])
        pooled_alpha = max(num_d / den_d, 0.0) if den_d > 0 else 0.0
        pooled_beta = max(num_w / den_w, 0.0) if den_w > 0 else 0.0
        self.alpha_, self.beta_ = {}, {}
        for uid, g in fitted.groupby("unique_id", sort=True):
            w = weekly.loc[uid]
            nd, dd = moments(g["y"], g["mu"])
            nw, dw = moments(w["y"], w["mu"])
            alpha_d = max(nd / dd, 0.0) if dd > 0 and len(g) >= 140 else pooled_alpha
            beta = max(nw / dw, 0.0) if dw > 0 and len(w) >= 20 else pooled_beta
            # daily variance mu + mu^2 ((1 + a)(1 + b) - 1) = mu + alpha_d mu^2
            self.beta_[uid] = beta * self.dispersion_scale
            self.alpha_[uid] = max((1.0 + alpha_d) / (1.0 + beta) - 1.0, 0.0) \
                * self.dispersion_scale

    # ---- predict
    def _points(self, future: pd.DataFrame) -> FloatArray:
        hist_groups = dict(tuple(self.history_.groupby("unique_id", sort=True)))
        Xs, scales = [], []
        cal = self._calendar_table(future["ds"].min(), future["ds"].max())
        for uid, fut in future.groupby("unique_id", sort=True):
            y = hist_groups[uid]["y"].to_numpy(dtype=float)
            n = len(y)
            d = np.arange(n, n + len(fut))
            o = np.full(len(d), n - 1)
            block = self._series_block(y, d, o, self.seasonal_years)
            scales.append(np.maximum(block["level_365"], _LEVEL_FLOOR))
            Xs.append(self._design(uid, block, pd.DatetimeIndex(fut["ds"]), cal))
        X = pd.concat(Xs, ignore_index=True)[self.feature_names_]
        if self.use_code_:
            X["series"] = pd.Categorical(X["series"], categories=range(len(self.codes_)))
        with threadpool_limits(limits=self.n_threads, user_api="openmp"):
            mu = self.model_.predict(X) * np.concatenate(scales)
        return np.asarray(mu, dtype=float)

    def _forecast_series(
        self, uid: object, y: FloatArray, future: pd.DatetimeIndex, point: FloatArray,
        rng: np.random.Generator,
    ) -> FloatArray:
        a, b = self.alpha_.get(uid, 0.0), self.beta_.get(uid, 0.0)
        s, h = self.n_samples, len(point)
        week_idx, _ = pd.factorize(week_start(future), sort=True)
        rate = np.broadcast_to(point, (s, h)).astype(float)
        if b > 0:
            g = rng.gamma(1.0 / b, b, size=(s, int(week_idx.max()) + 1))
            rate = rate * g[:, week_idx]
        if a > 0:
            rate = rate * rng.gamma(1.0 / a, a, size=(s, h))
        return rng.poisson(rate).astype(float)


# --------------------------------------------------------------------------- plain Prophet
class PlainProphet(_CountBaseline):
    """A default Prophet loop on raw daily counts: the reference every change is judged against.

    One ``prophet.Prophet()`` per series with its default settings (yearly and weekly
    seasonality as Prophet decides, no holidays, Gaussian noise on raw counts), fitted with
    ``Prophet.fit``; sample paths from ``Prophet.predictive_samples`` over the future days
    (trend and observation uncertainty), summed per ISO week and clipped at 0 once per week.
    This is what a data scientist would write first (FIELD-NOTES: "a default Prophet loop on
    raw counts"), so a forecaster that does not beat it threshold-free is not worth its code.

    Parameters
    ----------
    n_samples : predictive sample paths per series (Prophet's ``uncertainty_samples``).
    random_state : seed of numpy's global generator for each series' sampling (Prophet draws
        from it), combined with the series id.
    """

    model_name: ClassVar[str] = "PlainProphet"

    def __init__(self, n_samples: int = 500, random_state: int | None = 0) -> None:
        self.n_samples = n_samples
        self.random_state = random_state

    models_: dict[object, Any]

    def _fit(self, hist: pd.DataFrame) -> None:
        import logging

        from prophet import Prophet

        logging.getLogger("cmdstanpy").setLevel(logging.ERROR)
        logging.getLogger("prophet").setLevel(logging.ERROR)
        self.models_ = {}
        for uid, g in hist.groupby("unique_id", sort=True):
            m = Prophet(uncertainty_samples=self.n_samples)
            m.fit(pd.DataFrame({"ds": g["ds"].to_numpy(), "y": g["y"].to_numpy(dtype=float)}))
            self.models_[uid] = m

    def _points(self, future: pd.DataFrame) -> FloatArray:
        out = [self.models_[uid].predict(pd.DataFrame({"ds": fut["ds"].to_numpy()}))[
            "yhat"].to_numpy(dtype=float) for uid, fut in future.groupby("unique_id", sort=True)]
        return np.concatenate(out) if out else np.zeros(0)

    def _forecast_series(
        self, uid: object, y: FloatArray, future: pd.DatetimeIndex, point: FloatArray,
        rng: np.random.Generator,
    ) -> FloatArray:
        m = self.models_[uid]
        np.random.seed(int(rng.integers(0, 2**32 - 1)))  # Prophet samples from numpy's global RNG
        samples = m.predictive_samples(pd.DataFrame({"ds": future}))["yhat"]  # (days, S)
        return np.asarray(samples, dtype=float).T

"""The global gradient-boosting baseline and the calendar features it uses.

:class:`GlobalHistGradientBoosting` — one scikit-learn ``HistGradientBoostingRegressor``
(Poisson loss) across all series, direct multi-horizon (see :mod:`models.baselines` for the
family and its shared interface); :func:`calendar_features` — the calendar of each day,
known in advance (Chinese official breaks and make-up workdays, or another country's
holidays).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from models._count_baseline import SEASON_DAYS, FloatArray, _CountBaseline
from models.series import week_start

__all__ = ["GlobalHistGradientBoosting", "calendar_features"]


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

    def _forecast_series(self, uid: object, future: pd.DatetimeIndex, point: FloatArray,
                         rng: np.random.Generator) -> FloatArray:
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

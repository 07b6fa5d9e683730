"""Simulated panels with a known planted campaign effect, for validation tests, benchmarks and
notebooks (never read by the estimators).

- :func:`simulate_campaign_panel` — one campaign in one region of a category (``bench/effect.py``).
- :func:`simulate_category_campaigns` — many campaigns of one category over regions and years,
  with untreated regions as controls and earlier years as placebo windows (pooled effects).
- :func:`simulate_stepped_wedge` — one predicted window whose regions are randomised to an
  early or a delayed reminder (the stepped-wedge design estimator).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models._weeks import FloatArray
from models.series import week_start

__all__ = ["SimulatedCampaign", "simulate_campaign_panel"]


@dataclass
class SimulatedCampaign:
    """A synthetic panel with a planted campaign effect (see :func:`simulate_campaign_panel`).

    Attributes
    ----------
    daily : observed daily counts ``unique_id, ds, y`` (effect applied to ``treated`` in
        the window).
    untreated_daily : the same counts without the effect (the true counterfactual).
    treated : the campaign's series id; ``controls`` the others with the same seasonal shape;
        ``unlike`` the series whose season peaks elsewhere (should not be chosen).
    window_start, window_end : the campaign window (Monday .. Sunday).
    effect : the planted relative effect (e.g. -0.3).
    """

    daily: pd.DataFrame
    untreated_daily: pd.DataFrame
    treated: str
    controls: list[str]
    unlike: list[str]
    window_start: pd.Timestamp
    window_end: pd.Timestamp
    effect: float
    params: dict[str, Any]

    def weekly(self, *, untreated: bool = False) -> pd.DataFrame:
        """Weekly counts ``unique_id, week, y`` (complete ISO weeks)."""
        d = self.untreated_daily if untreated else self.daily
        f = d.assign(week=week_start(d["ds"]).to_numpy())
        out: pd.DataFrame = f.groupby(["unique_id", "week"], as_index=False).agg(y=("y", "sum"))
        return out

    def oracle_paths(self, n_samples: int, seed: int = 0) -> pd.DataFrame:
        """Weekly sample paths of the treated series over the window drawn from the true
        data-generating process (fresh shocks, timing and noise: the ideal forecast).

        Returns
        -------
        DataFrame indexed by week, columns ``0..n_samples-1``.
        """
        rng = np.random.default_rng([seed, 99])
        days = pd.date_range(self.window_start, self.window_end, freq="D")
        p = self.params
        i = p["ids"].index(self.treated)
        n_weeks = len(days) // 7
        shifts = (rng.normal(0, p["year_shift_sd"], n_samples)
                  + rng.normal(0, p["region_shift_sd"], n_samples))
        mu = _rate(days, p["level"][i], p["peak_doy"][i] + shifts[:, None], p["height"][i],
                   p["amplitude"])                                         # (S, days)
        common = _ar1(rng, (n_weeks, n_samples), p["common_sd"], p["common_phi"]).T
        own = rng.normal(0, p["own_sd"], size=(n_samples, n_weeks))
        wk = np.arange(len(days)) // 7
        shock = np.exp(common + own - 0.5 * (p["common_sd"] ** 2 + p["own_sd"] ** 2))
        y = rng.poisson(rng.gamma(p["shape"], mu * shock[:, wk] / p["shape"]))
        sums = y.reshape(n_samples, n_weeks, 7).sum(axis=2).astype(float)
        return pd.DataFrame(sums.T, index=pd.DatetimeIndex(days[::7]),
                            columns=pd.RangeIndex(n_samples))


def _ar1(rng: np.random.Generator, shape: int | tuple[int, int], sd: float,
         phi: float) -> FloatArray:
    """Stationary AR(1) along the first axis (sd ``sd``)."""
    eps = rng.normal(0.0, sd, size=shape)
    out = np.empty_like(eps)
    out[0] = eps[0]
    innov = np.sqrt(1.0 - phi * phi)
    for k in range(1, out.shape[0]):
        out[k] = phi * out[k - 1] + innov * eps[k]
    return out


def _rate(days: pd.DatetimeIndex, level: float, peak_doy: float | FloatArray, height: float,
          amplitude: float) -> FloatArray:
    """Expected daily count: level x yearly wave x a Gaussian seasonal bump x weekday."""
    doy = days.day_of_year.to_numpy(dtype=float)
    wave = 1.0 + amplitude * np.cos(2 * np.pi * (doy - peak_doy) / 365.25)
    dist = (doy - peak_doy + 182.625) % 365.25 - 182.625
    bump = 1.0 + height * np.exp(-0.5 * (dist / 12.0) ** 2)
    dow = np.where(days.day_of_week < 5, 1.15, 0.62)
    out: FloatArray = level * wave * bump * dow
    return out


def simulate_campaign_panel(
    *,
    seed: int = 0,
    effect: float = -0.3,
    n_regions: int = 8,
    n_unlike: int = 2,
    years: int = 3,
    window_weeks: int = 4,
    level: tuple[float, float] = (2.0, 8.0),
    shape: float = 6.0,
    common_sd: float = 0.15,
    common_phi: float = 0.5,
    own_sd: float = 0.08,
    year_shift_sd: float = 5.0,
    region_shift_sd: float = 2.0,
) -> SimulatedCampaign:
    """Daily counts for one category in several regions with a planted campaign effect.

    Each region ``r``: ``mu[r, d] = level_r * (1 + 0.25 cos(yearly)) * (1 + h_r bump(d)) *
    weekday`` with a Gaussian seasonal bump (sd 12 days, height ``h_r`` in 1-1.5) peaking in
    spring (day ~100) for the like regions and in autumn (~280) for ``n_unlike`` others. The
    peak moves each year by a shift shared by all regions (sd ``year_shift_sd`` days) plus
    a regional one (sd ``region_shift_sd``). Weekly log shocks: an AR(1) shock shared by all
    regions (sd ``common_sd``, ``common_phi``: weather, news) and an own shock (sd
    ``own_sd``). Daily counts are negative binomial (gamma-Poisson, ``shape``). The campaign
    window is the ``window_weeks`` ISO weeks around the nominal peak of the last year;
    the treated region's counts there are thinned binomially by ``1 + effect``.
    """
    if not -1.0 <= effect <= 0.0:
        raise ValueError("effect must be in [-1, 0] (binomial thinning)")
    rng = np.random.default_rng([seed, 7])
    peak_nominal = 100.0
    end_year = 2025
    days = pd.date_range(f"{end_year - years + 1}-01-01", f"{end_year}-12-31", freq="D")
    # start on a Monday so every week is complete
    days = days[days >= days[0] + pd.Timedelta(days=(7 - days[0].day_of_week) % 7)]
    days = days[: len(days) // 7 * 7]
    ids = [f"violations|cat|{150100 + 100 * r}" for r in range(n_regions)]
    n_like = n_regions - n_unlike
    peak = np.array([peak_nominal] * n_like + [280.0] * n_unlike) + rng.normal(0, 3, n_regions)
    height = rng.uniform(1.0, 1.5, n_regions)
    lev = rng.uniform(*level, n_regions)
    n_weeks = len(days) // 7
    common = _ar1(rng, n_weeks, common_sd, common_phi)
    year_idx = days.year.to_numpy() - days.year.min()
    year_shift = rng.normal(0, year_shift_sd, years + 1)
    wk = np.arange(len(days)) // 7
    y0 = np.empty((n_regions, len(days)))
    for r in range(n_regions):
        shift = year_shift[year_idx] + rng.normal(0, region_shift_sd, years + 1)[year_idx]
        mu = np.empty(len(days))
        for yi in np.unique(year_idx):
            sel = year_idx == yi
            mu[sel] = _rate(days[sel], lev[r], peak[r] + shift[sel][0], height[r], 0.25)
        own = rng.normal(0, own_sd, n_weeks)
        mu = mu * np.exp(common[wk] + own[wk] - 0.5 * (common_sd**2 + own_sd**2))
        y0[r] = rng.poisson(rng.gamma(shape, mu / shape))
    nominal = pd.Timestamp(f"{end_year}-01-01") + pd.Timedelta(days=peak_nominal - 1)
    first = nominal - pd.Timedelta(days=nominal.day_of_week) - pd.Timedelta(
        weeks=window_weeks // 2)
    w_start, w_end = first, first + pd.Timedelta(days=7 * window_weeks - 1)
    in_win = np.asarray((days >= w_start) & (days <= w_end))
    y1 = y0.copy()
    y1[0, in_win] = rng.binomial(y0[0, in_win].astype(np.int64), 1.0 + effect)

    def long(y: FloatArray) -> pd.DataFrame:
        return pd.DataFrame({"unique_id": np.repeat(ids, len(days)),
                             "ds": np.tile(days.to_numpy(), n_regions),
                             "y": y.ravel().astype(float)})

    params = {"ids": ids, "level": lev.tolist(), "peak_doy": peak.tolist(),
              "height": height.tolist(), "amplitude": 0.25, "shape": shape,
              "common_sd": common_sd, "common_phi": common_phi, "own_sd": own_sd,
              "year_shift_sd": year_shift_sd, "region_shift_sd": region_shift_sd}
    return SimulatedCampaign(
        daily=long(y1), untreated_daily=long(y0), treated=ids[0], controls=ids[1:n_like],
        unlike=ids[n_like:], window_start=w_start, window_end=w_end, effect=effect,
        params=params)

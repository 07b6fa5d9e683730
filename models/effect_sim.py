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
from models.series import monday_of, week_start

__all__ = [
    "SimulatedCampaign",
    "SimulatedCategory",
    "SimulatedDesign",
    "SeasonalProcess",
    "simulate_campaign_panel",
    "simulate_category_campaigns",
    "simulate_stepped_wedge",
]


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
        return _oracle(self.params, self.params["ids"].index(self.treated), days, n_samples,
                       rng)


def _oracle(p: dict[str, Any], i: int, days: pd.DatetimeIndex, n_samples: int,
            rng: np.random.Generator) -> pd.DataFrame:
    """Weekly sample paths of series ``i`` over ``days`` (whole weeks) from the true process
    with fresh timing, shocks and noise."""
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


@dataclass(frozen=True)
class SeasonalProcess:
    """The data-generating process the simulations share (see
    :func:`simulate_campaign_panel`)."""

    level: tuple[float, float] = (2.0, 8.0)
    """Range of the regions' base daily rates (drawn uniformly)."""
    shape: float = 6.0
    """Shape of the negative binomial (gamma-Poisson) daily counts."""
    common_sd: float = 0.15
    """Sd of the AR(1) weekly log shock shared by all regions (weather, news)."""
    common_phi: float = 0.5
    """Autocorrelation of the shared shock."""
    own_sd: float = 0.08
    """Sd of each region's own weekly log shock."""
    year_shift_sd: float = 5.0
    """Sd (days) of the yearly move of the peak, shared by all regions."""
    region_shift_sd: float = 2.0
    """Sd (days) of each region's own yearly move of the peak."""

    def params(self) -> dict[str, Any]:
        """The scalar parameters by name, with the yearly wave's ``amplitude`` (0.25)."""
        return {"amplitude": 0.25, "shape": self.shape, "common_sd": self.common_sd,
                "common_phi": self.common_phi, "own_sd": self.own_sd,
                "year_shift_sd": self.year_shift_sd, "region_shift_sd": self.region_shift_sd}


def simulate_campaign_panel(
    *,
    seed: int = 0,
    effect: float = -0.3,
    n_regions: int = 8,
    n_unlike: int = 2,
    years: int = 3,
    window_weeks: int = 4,
    process: SeasonalProcess | None = None,
) -> SimulatedCampaign:
    """Daily counts for one category in several regions with a planted campaign effect.

    Each region ``r``: ``mu[r, d] = level_r * (1 + 0.25 cos(yearly)) * (1 + h_r bump(d)) *
    weekday`` with a Gaussian seasonal bump (sd 12 days, height ``h_r`` in 1-1.5) peaking in
    spring (day ~100) for the like regions and in autumn (~280) for ``n_unlike`` others. The
    peak moves each year by a shift shared by all regions (sd ``year_shift_sd`` days) plus
    a regional one (sd ``region_shift_sd``). Weekly log shocks: an AR(1) shock shared by all
    regions (sd ``common_sd``, ``common_phi``: weather, news) and an own shock (sd
    ``own_sd``). Daily counts are negative binomial (gamma-Poisson, ``shape``); these
    parameters are ``process`` (default :class:`SeasonalProcess`). The campaign window is the
    ``window_weeks`` ISO weeks around the nominal peak of the last year; the treated region's
    counts there are thinned binomially by ``1 + effect``.
    """
    if not -1.0 <= effect <= 0.0:
        raise ValueError("effect must be in [-1, 0] (binomial thinning)")
    pr = process or SeasonalProcess()
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
    lev = rng.uniform(*pr.level, n_regions)
    n_weeks = len(days) // 7
    common = _ar1(rng, n_weeks, pr.common_sd, pr.common_phi)
    year_idx = days.year.to_numpy() - days.year.min()
    year_shift = rng.normal(0, pr.year_shift_sd, years + 1)
    wk = np.arange(len(days)) // 7
    y0 = np.empty((n_regions, len(days)))
    for r in range(n_regions):
        shift = year_shift[year_idx] + rng.normal(0, pr.region_shift_sd, years + 1)[year_idx]
        mu = np.empty(len(days))
        for yi in np.unique(year_idx):
            sel = year_idx == yi
            mu[sel] = _rate(days[sel], lev[r], peak[r] + shift[sel][0], height[r], 0.25)
        own = rng.normal(0, pr.own_sd, n_weeks)
        mu = mu * np.exp(common[wk] + own[wk] - 0.5 * (pr.common_sd**2 + pr.own_sd**2))
        y0[r] = rng.poisson(rng.gamma(pr.shape, mu / pr.shape))
    nominal = pd.Timestamp(f"{end_year}-01-01") + pd.Timedelta(days=peak_nominal - 1)
    first = monday_of(nominal) - pd.Timedelta(weeks=window_weeks // 2)
    w_start, w_end = first, first + pd.Timedelta(days=7 * window_weeks - 1)
    in_win = np.asarray((days >= w_start) & (days <= w_end))
    y1 = y0.copy()
    y1[0, in_win] = rng.binomial(y0[0, in_win].astype(np.int64), 1.0 + effect)

    def long(y: FloatArray) -> pd.DataFrame:
        return pd.DataFrame({"unique_id": np.repeat(ids, len(days)),
                             "ds": np.tile(days.to_numpy(), n_regions),
                             "y": y.ravel().astype(float)})

    params = {"ids": ids, "level": lev.tolist(), "peak_doy": peak.tolist(),
              "height": height.tolist(), **pr.params()}
    return SimulatedCampaign(
        daily=long(y1), untreated_daily=long(y0), treated=ids[0], controls=ids[1:n_like],
        unlike=ids[n_like:], window_start=w_start, window_end=w_end, effect=effect,
        params=params)


def _weekly(daily: pd.DataFrame) -> pd.DataFrame:
    f = daily.assign(week=week_start(daily["ds"]).to_numpy())
    out: pd.DataFrame = f.groupby(["unique_id", "week"], as_index=False).agg(y=("y", "sum"))
    return out


def _regions(rng: np.random.Generator, days: pd.DatetimeIndex, n_regions: int,
             process: SeasonalProcess | None) -> tuple[FloatArray, dict[str, Any]]:
    """Daily counts (regions x days) of one category with a spring peak (see
    :func:`simulate_category_campaigns`) and the parameters that drew them."""
    pr = process or SeasonalProcess()
    p = pr.params()
    years = days.year.to_numpy()
    year_idx = years - years.min()
    n_years = int(year_idx.max()) + 1
    peak = 100.0 + rng.normal(0, 3, n_regions)
    height = rng.uniform(1.0, 1.5, n_regions)
    lev = rng.uniform(*pr.level, n_regions)
    n_weeks = -(-len(days) // 7)
    wk = np.arange(len(days)) // 7
    common = _ar1(rng, n_weeks, p["common_sd"], p["common_phi"])
    year_shift = rng.normal(0, p["year_shift_sd"], n_years)
    y0 = np.empty((n_regions, len(days)))
    for r in range(n_regions):
        shift = year_shift + rng.normal(0, p["region_shift_sd"], n_years)
        mu = np.empty(len(days))
        for yi in range(n_years):
            sel = year_idx == yi
            mu[sel] = _rate(days[sel], lev[r], peak[r] + shift[yi], height[r], p["amplitude"])
        own = rng.normal(0, p["own_sd"], n_weeks)
        mu = mu * np.exp(common[wk] + own[wk] - 0.5 * (p["common_sd"] ** 2 + p["own_sd"] ** 2))
        y0[r] = rng.poisson(rng.gamma(p["shape"], mu / p["shape"]))
    return y0, {**p, "level": lev.tolist(), "peak_doy": peak.tolist(),
                "height": height.tolist()}


def _long(ids: list[str], days: pd.DatetimeIndex, y: FloatArray) -> pd.DataFrame:
    return pd.DataFrame({"unique_id": np.repeat(ids, len(days)),
                         "ds": np.tile(days.to_numpy(), len(ids)),
                         "y": y.ravel().astype(float)})


@dataclass
class SimulatedCategory:
    """Many campaigns of one category (see :func:`simulate_category_campaigns`).

    Attributes
    ----------
    daily, untreated_daily : observed counts ``unique_id, ds, y`` with and without the
        planted effect.
    campaigns : one row per (region, year) window: ``unique_id, year, window_start,
        window_end, treated`` (True: a campaign ran, the effect was planted; windows of the
        years before the campaign years are all untreated — placebo windows).
    effect : the planted relative effect.
    params : the process parameters (for :meth:`oracle_paths`).
    """

    daily: pd.DataFrame
    untreated_daily: pd.DataFrame
    campaigns: pd.DataFrame
    effect: float
    params: dict[str, Any]

    def weekly(self, *, untreated: bool = False) -> pd.DataFrame:
        """Weekly counts ``unique_id, week, y``."""
        return _weekly(self.untreated_daily if untreated else self.daily)

    def oracle_paths(self, unique_id: str, start: Any, end: Any, n_samples: int,
                     seed: int = 0) -> pd.DataFrame:
        """Ideal-forecast weekly paths of one series over ``start .. end`` (whole weeks)."""
        rng = np.random.default_rng([seed, 98])
        days = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="D")
        return _oracle(self.params, self.params["ids"].index(unique_id), days, n_samples, rng)


def simulate_category_campaigns(
    *,
    seed: int = 0,
    effect: float = -0.3,
    n_regions: int = 12,
    years: int = 4,
    campaign_years: int = 2,
    treated_per_year: int = 6,
    window_weeks: int = 4,
    process: SeasonalProcess | None = None,
) -> SimulatedCategory:
    """Daily counts of one category in ``n_regions`` regions over ``years`` years, with a
    campaign in ``treated_per_year`` random regions in each of the last ``campaign_years``.

    The process is :func:`simulate_campaign_panel`'s (a spring peak near day 100 whose timing
    moves each year, shared and own weekly shocks, negative binomial counts), with every region
    peaking in spring. Each year's window is the ``window_weeks`` ISO weeks around the nominal
    peak; a treated region's counts there are thinned binomially by ``1 + effect``. The other
    regions of the year are controls; windows of earlier years are placebo windows.
    """
    if not -1.0 <= effect <= 0.0:
        raise ValueError("effect must be in [-1, 0] (binomial thinning)")
    if not 0 < treated_per_year < n_regions or not 0 < campaign_years <= years - 2:
        raise ValueError("need 0 < treated_per_year < n_regions and 0 < campaign_years <= "
                         "years - 2 (two years of history before the first campaign)")
    rng = np.random.default_rng([seed, 17])
    end_year = 2025
    days = pd.date_range(f"{end_year - years + 1}-01-01", f"{end_year}-12-31", freq="D")
    days = days[days >= days[0] + pd.Timedelta(days=(7 - days[0].day_of_week) % 7)]
    days = days[: len(days) // 7 * 7]
    ids = [f"complaints|cat|{150100 + 100 * r}" for r in range(n_regions)]
    y0, p = _regions(rng, days, n_regions, process)
    y1 = y0.copy()
    rows = []
    for year in range(end_year - years + 1, end_year + 1):
        nominal = pd.Timestamp(f"{year}-01-01") + pd.Timedelta(days=99)
        first = monday_of(nominal) - pd.Timedelta(weeks=window_weeks // 2)
        last = first + pd.Timedelta(days=7 * window_weeks - 1)
        in_win = np.asarray((days >= first) & (days <= last))
        treated = (set(rng.permutation(n_regions)[:treated_per_year].tolist())
                   if year > end_year - campaign_years else set())
        for r in range(n_regions):
            if r in treated:
                y1[r, in_win] = rng.binomial(y0[r, in_win].astype(np.int64), 1.0 + effect)
            rows.append({"unique_id": ids[r], "year": year, "window_start": first,
                         "window_end": last, "treated": r in treated})
    return SimulatedCategory(daily=_long(ids, days, y1), untreated_daily=_long(ids, days, y0),
                             campaigns=pd.DataFrame(rows), effect=effect,
                             params={**p, "ids": ids})


@dataclass
class SimulatedDesign:
    """One randomised window (see :func:`simulate_stepped_wedge`).

    Attributes
    ----------
    daily : observed counts ``unique_id, ds, y`` (each region thinned from its send date on).
    assignment : ``unit, arm`` (:func:`models.stepped_wedge.assign_arms`).
    early_send, delayed_send : the two send dates.
    window_start, window_end : the predicted window.
    effect : the planted relative effect on the rate after a reminder.
    """

    daily: pd.DataFrame
    assignment: pd.DataFrame
    early_send: pd.Timestamp
    delayed_send: pd.Timestamp
    window_start: pd.Timestamp
    window_end: pd.Timestamp
    effect: float

    def weekly(self) -> pd.DataFrame:
        """Weekly counts ``unique_id, week, y``."""
        return _weekly(self.daily)


def simulate_stepped_wedge(
    *,
    seed: int = 0,
    effect: float = -0.3,
    n_regions: int = 8,
    lead_weeks: int = 3,
    delay_weeks: int = 2,
    window_weeks: int = 4,
    process: SeasonalProcess | None = None,
) -> SimulatedDesign:
    """A category's regions around one predicted spring window, randomised half early and
    half ``delay_weeks`` later; every region's counts are thinned by ``1 + effect`` from its
    own send date on (a reminder lowers the rate for the rest of the season).

    The early send is a Monday ``lead_weeks`` before the window (same process as
    :func:`simulate_category_campaigns`: the season ramps up through the step weeks, with
    timing that differs by region, and shared and own weekly shocks).
    """
    from models.stepped_wedge import assign_arms

    if not -1.0 <= effect <= 0.0:
        raise ValueError("effect must be in [-1, 0] (binomial thinning)")
    if not 0 < delay_weeks <= lead_weeks:
        raise ValueError("need 0 < delay_weeks <= lead_weeks (reminded before the window)")
    rng = np.random.default_rng([seed, 23])
    days = pd.date_range("2024-12-30", "2025-06-29", freq="D")  # Monday .. Sunday
    ids = [f"complaints|cat|{150100 + 100 * r}" for r in range(n_regions)]
    y0, _ = _regions(rng, days, n_regions, process)
    nominal = pd.Timestamp("2025-01-01") + pd.Timedelta(days=99)
    w_start = monday_of(nominal) - pd.Timedelta(weeks=window_weeks // 2)
    w_end = w_start + pd.Timedelta(days=7 * window_weeks - 1)
    early = w_start - pd.Timedelta(weeks=lead_weeks)
    late = early + pd.Timedelta(weeks=delay_weeks)
    assignment = assign_arms(ids, seed=int(rng.integers(2**31)))
    arm = dict(zip(assignment["unit"], assignment["arm"], strict=True))
    y1 = y0.copy()
    for r, uid in enumerate(ids):
        sent = early if arm[uid] == "early" else late
        after = np.asarray(days >= sent)
        y1[r, after] = rng.binomial(y0[r, after].astype(np.int64), 1.0 + effect)
    return SimulatedDesign(daily=_long(ids, days, y1), assignment=assignment,
                           early_send=early, delayed_send=late, window_start=w_start,
                           window_end=w_end, effect=effect)

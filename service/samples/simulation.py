"""The daily complaint counts: day types, the weekly latent wander, expected counts with the
planted surges, gamma-Poisson draws, the split into sources and the data gaps cut out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd

from service.samples.calendar import FestivalDates, days_off_and_makeup_days, festival_dates
from service.samples.knobs import (
    CATS,
    DOW_FACTOR,
    EPOCH,
    HOTLINE,
    HOTLINE_GROWTH,
    MAKEUP_FACTOR,
    SEASONS,
    WEB_PORTAL_FROM,
    WEB_SHARE,
    Array,
    load_yaml,
    random_stream,
)
from service.samples.planting import Planted, one_off_events, season_events, trapezoid


def _day_types(days: pd.DatetimeIndex) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_],
                                                 npt.NDArray[np.bool_]]:
    years = range(days[0].year, days[-1].year + 1)
    off, makeup = days_off_and_makeup_days(years)
    dates = [d.date() for d in days]
    holiday = np.array([d in off for d in dates])
    makeup_day = np.array([d in makeup for d in dates])
    weekend = (days.day_of_week.to_numpy() >= 5) & ~makeup_day & ~holiday
    return holiday, weekend, makeup_day


def _latent(rng: np.random.Generator, n_days: int, first_monday_offset: int) -> Array:
    n_weeks = (n_days + first_monday_offset) // 7 + 2
    eps = rng.normal(0.0, 0.11, size=n_weeks)
    z = np.empty(n_weeks)
    z[0] = eps[0] / np.sqrt(1 - 0.6**2)
    for i in range(1, n_weeks):
        z[i] = 0.6 * z[i - 1] + eps[i]
    week_of_day = (np.arange(n_days) + first_monday_offset) // 7
    out: Array = np.exp(z[week_of_day] - 0.5 * 0.11**2 / (1 - 0.36))
    return out


def _gaps(seed: int, regions: list[str], years: range, start: date, end: date
          ) -> list[tuple[str, str, date, date, str]]:
    gaps: list[tuple[str, str, date, date, str]] = []
    for year in years:
        rng = random_stream(seed, "gaps", year)
        if rng.random() < 0.9:
            region = regions[int(rng.integers(len(regions)))]
            g0 = date(year, 1, 1) + timedelta(days=int(rng.integers(0, 350)))
            gaps.append((region, "all", g0, g0 + timedelta(days=int(rng.integers(7, 22)) - 1),
                         "league_missing"))
        if rng.random() < 0.4:
            g0 = date(year, 1, 1) + timedelta(days=int(rng.integers(0, 360)))
            gaps.append(("all", HOTLINE, g0, g0 + timedelta(days=int(rng.integers(2, 6)) - 1),
                         "hotline_outage"))
    return [g for g in gaps if g[3] >= start and g[2] <= end]


@dataclass(frozen=True)
class Simulation:
    """Expected and drawn daily counts of every complaint series (rows = ``uids``)."""

    region_codes: list[str]
    pop: Array
    cat_codes: list[str]
    sectors: dict[str, str]
    n_c: int
    n_r: int
    n_s: int
    uids: list[str]
    days: pd.DatetimeIndex
    n_d: int
    years: range
    fests: dict[int, FestivalDates]
    holiday: npt.NDArray[np.bool_]
    weekend: npt.NDArray[np.bool_]
    makeup: npt.NDArray[np.bool_]
    workday: npt.NDArray[np.bool_]
    t_years: Array
    events: list[Planted]
    counts: npt.NDArray[np.int64]
    hot: npt.NDArray[np.int64]
    web: npt.NDArray[np.int64]
    gaps: list[tuple[str, str, date, date, str]]
    mu_all: Array
    mu_seasonal: Array
    keep: Array


def simulate(seed: int, start: date, end: date, scale: float) -> Simulation:
    """Planted events, expected counts, gamma-Poisson draws and gaps (no files)."""
    regions_doc = load_yaml("regions.yaml")
    categories_doc = load_yaml("categories.yaml")
    leagues = [r for r in regions_doc["regions"] if r["level"] == "league"]
    region_codes = [str(r["code"]) for r in leagues]
    pop = np.array([float(r["population"]) / 1e6 for r in leagues])
    cats = [c for c in categories_doc["categories"] if c["code"] in CATS]
    cat_codes = [str(c["code"]) for c in cats]
    sectors = {str(c["code"]): str(c["sector"]) for c in cats}
    n_c, n_r = len(cat_codes), len(region_codes)
    n_s = n_c * n_r
    uids = [f"complaints|{c}|{r}" for c in cat_codes for r in region_codes]

    days = pd.date_range(start, end, freq="D")
    n_d = len(days)
    years = range(start.year - 1, end.year + 2)
    fests = festival_dates(years)
    holiday, weekend, makeup = _day_types(days)
    workday = ~holiday & ~weekend
    dow = days.day_of_week.to_numpy()
    t_years = ((days - pd.Timestamp(EPOCH)).days.to_numpy() / 365.25) - 3.5
    first_monday_offset = int(days[0].weekday())

    d_first, d_last = days[0].date(), days[-1].date()
    events = _planted_events(seed, cat_codes, region_codes, pop, years, fests, d_first, d_last)
    season, seasonal = _surges(events, n_s, days)

    # ---- expected counts and gamma-Poisson draws ---------------------------------------
    counts = np.zeros((n_s, n_d), dtype=np.int64)
    mu_all = np.zeros((n_s, n_d))
    mu_seasonal = np.zeros((n_s, n_d))
    for ci, code in enumerate(cat_codes):
        cat = CATS[code]
        day_factor = np.where(holiday, cat.holiday,
                              np.where(weekend, cat.weekend,
                                       np.where(makeup, MAKEUP_FACTOR, DOW_FACTOR[dow])))
        for ri, region in enumerate(region_codes):
            s = ci * n_r + ri
            rng = random_stream(seed, "counts", code, region, start, end)
            slope = cat.trend + HOTLINE_GROWTH + rng.normal(0.0, 0.02)
            trend = np.exp(slope * t_years)
            level = cat.base * pop[ri] * cat.affinity.get(region, 1.0) * scale * trend
            mu = level * season[s] * day_factor * _latent(rng, n_d, first_monday_offset)
            lam = mu * rng.gamma(cat.dispersion, 1.0 / cat.dispersion, size=n_d)
            counts[s] = rng.poisson(lam)
            mu_all[s] = mu
            mu_seasonal[s] = level * seasonal[s] * day_factor

    hot, web, gaps, keep = _sources_and_gaps(seed, start, end, counts, days, region_codes,
                                             years)
    counts = hot + web
    return Simulation(
        region_codes=region_codes, pop=pop, cat_codes=cat_codes, sectors=sectors, n_c=n_c,
        n_r=n_r, n_s=n_s, uids=uids, days=days, n_d=n_d, years=years, fests=fests,
        holiday=holiday, weekend=weekend, makeup=makeup, workday=workday, t_years=t_years,
        events=events, counts=counts, hot=hot, web=web, gaps=gaps, mu_all=mu_all,
        mu_seasonal=mu_seasonal, keep=keep)


def _planted_events(seed: int, cat_codes: list[str], region_codes: list[str], pop: Array,
                    years: range, fests: dict[int, FestivalDates], d_first: date,
                    d_last: date) -> list[Planted]:
    """The recurring seasons of every category and the one-off surges that meet the days."""
    n_r = len(region_codes)
    events: list[Planted] = []
    for ci, code in enumerate(cat_codes):
        events += season_events(SEASONS[code], seed=seed, tag="season", category=code,
                                regions=region_codes, first_series=ci * n_r, years=years,
                                fests=fests, signal="complaints")
    weights = np.sqrt(pop) / np.sqrt(pop).sum()
    events += one_off_events(seed=seed, categories=cat_codes, regions=region_codes,
                             weights=weights, years=years)
    return [ev for ev in events if ev.end >= d_first and ev.start <= d_last]


def _surges(events: list[Planted], n_s: int, days: pd.DatetimeIndex) -> tuple[Array, Array]:
    """The season factor of every series and day, with and without the one-off surges."""
    season = np.ones((n_s, len(days)))
    seasonal = np.ones((n_s, len(days)))  # the same without the one-off surges
    for ev in events:
        sl, values = trapezoid(ev, days)
        season[ev.series, sl] += (ev.multiplier - 1.0) * values
        if not ev.one_off:
            seasonal[ev.series, sl] += (ev.multiplier - 1.0) * values
    return season, seasonal


def _sources_and_gaps(
    seed: int, start: date, end: date, counts: npt.NDArray[np.int64], days: pd.DatetimeIndex,
    region_codes: list[str], years: range,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], list[tuple[str, str, date, date, str]],
           Array]:
    """``(hotline, web portal, gaps, keep)``: the counts split into sources with the gaps cut
    out, and the share of each expected count that survives the gaps (the web share during a
    hotline outage)."""
    n_s, n_d = counts.shape
    n_r = len(region_codes)
    n_c = n_s // n_r
    d_first, d_last = days[0].date(), days[-1].date()
    rng = random_stream(seed, "sources", start, end)
    web_on = np.asarray(days >= pd.Timestamp(WEB_PORTAL_FROM))
    web = rng.binomial(counts, WEB_SHARE * web_on[None, :])
    hot = counts - web
    gaps = _gaps(seed, region_codes, years, d_first, d_last)
    for region, _source, g0, g1, _kind in gaps:
        day_sel = (days >= pd.Timestamp(g0)) & (days <= pd.Timestamp(g1))
        if region == "all":
            hot[:, day_sel] = 0
        else:
            ri = region_codes.index(region)
            rows = np.arange(n_c, dtype=np.int64) * n_r + ri
            hot[np.ix_(rows, np.flatnonzero(day_sel))] = 0
            web[np.ix_(rows, np.flatnonzero(day_sel))] = 0
    # share of the expected count that survives the gaps (web share during a hotline outage)
    keep = np.ones((n_s, n_d))
    for region, _source, g0, g1, _kind in gaps:
        day_sel = (days >= pd.Timestamp(g0)) & (days <= pd.Timestamp(g1))
        if region == "all":
            keep[:, day_sel] *= WEB_SHARE * web_on[day_sel]
        else:
            keep[np.ix_(np.arange(n_c, dtype=np.int64) * n_r + region_codes.index(region),
                        np.flatnonzero(day_sel))] = 0.0
    return hot, web, gaps, keep

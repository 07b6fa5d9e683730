"""Deterministic synthetic sample data for Inner Mongolia (complaints and enforcement).

``generate(out_dir, seed=...)`` writes the sample set described in ``data/samples/README.md``:
``regions.yaml``, ``categories.yaml``, ``complaints.csv.gz``, ``enforcement.csv.gz``,
``planted_events.csv``, ``planted_gaps.csv``, ``truth_spikes.csv``, ``dirty_complaints.csv``
and ``dirty_complaints.expected.json``. Same arguments give byte-identical files.

How the counts are made (the knobs live here and nowhere else; nothing in ``models/`` may read
them): per series (category x league) and day, the expected count is

    base rate x population x category-region affinity x trend x season x day-type x latent

where *season* = 1 + sum of planted surges (lunar festivals from ``holidays``, weather-driven
seasons shifted and resized at random every year, one-off surges no calendar predicts), the
*day type* distinguishes workdays (incl. 调休 working weekends), weekends and official days off,
and *latent* is a weekly log-AR(1) wander. Counts are gamma-Poisson (negative binomial), then
data gaps (a league missing for 1-3 weeks, hotline outages) are cut out.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import yaml

from models.peaks import actual_spike_windows
from models.series import SeriesId, to_weekly
from service.samples import texts
from service.samples.calendar import FestivalDates, days_off_and_makeup_days, festival_dates
from service.samples.dirty import dirty_complaints

__all__ = [
    "expected_counts",
    "DEFAULT_SEED",
    "DEFAULT_START",
    "DEFAULT_END",
    "COMPLAINT_COLUMNS",
    "ENFORCEMENT_COLUMNS",
    "PLANTED_COLUMNS",
    "TRUTH_COLUMNS",
    "GAP_COLUMNS",
    "generate",
]

DEFAULT_SEED = 20201118
DEFAULT_START = date(2019, 1, 1)
DEFAULT_END = date(2026, 10, 31)

COMPLAINT_COLUMNS = ["source", "external_id", "received_at", "category", "region", "sector",
                     "channel", "text"]
ENFORCEMENT_COLUMNS = ["source", "external_id", "occurred_at", "category", "region", "action",
                       "violation_found", "entity_id", "sector"]
PLANTED_COLUMNS = ["unique_id", "driver", "start", "end", "one_off", "multiplier"]
TRUTH_COLUMNS = ["unique_id", "start", "end", "peak_week", "peak_count", "threshold", "driver",
                 "planted", "one_off"]
GAP_COLUMNS = ["region", "source", "start", "end", "kind"]

_HERE = Path(__file__).resolve().parent
_HOTLINE = "12345-hotline"
_WEB = "web-portal"
_ENF_SOURCE = "enforcement-platform"
_WEB_PORTAL_FROM = date(2021, 3, 1)  # the web portal opened later than the hotline
_WEB_SHARE = 0.05
_EPOCH = date(2019, 1, 1)  # trends are anchored here so a short range sees the same levels
_HOTLINE_GROWTH = 0.03  # log change per year of all hotline volumes (more people use 12345)
Array = npt.NDArray[np.float64]


# --------------------------------------------------------------------------------------------
# Knobs: category behaviour and seasonal drivers
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Cat:
    base: float           # complaints per million residents per day outside any season
    dispersion: float     # gamma shape of the daily noise (smaller = more over-dispersed)
    weekend: float        # factor on ordinary weekends
    holiday: float        # factor on official days off
    trend: float          # log change per year
    hours: str            # time-of-day profile
    affinity: dict[str, float]  # per-capita factor per league (default 1)
    violation_rate: float       # share of inspections that find a violation
    individuals: float          # share of enforcement against individuals (no entity id)


_CATS: dict[str, _Cat] = {
    "fireworks": _Cat(0.10, 3.0, 1.05, 1.15, -0.04, "evening",
                      {"150100": 0.8, "150400": 1.3, "150500": 1.2, "152200": 1.1}, 0.30, 0.5),
    "migrant_wages": _Cat(0.30, 4.0, 0.55, 0.35, -0.07, "office",
                          {"150100": 1.3, "150200": 1.2, "150600": 1.3, "152900": 0.7},
                          0.40, 0.0),
    "grassland_fire": _Cat(0.08, 2.5, 1.10, 1.10, -0.02, "daytime",
                           {"150100": 0.5, "150200": 0.5, "150300": 0.3, "150400": 1.4,
                            "150500": 1.3, "150700": 2.4, "150900": 1.2, "152200": 2.0,
                            "152500": 3.0, "152900": 1.6}, 0.25, 0.7),
    "tourism_pricing": _Cat(0.10, 2.5, 1.15, 1.30, 0.06, "daytime",
                            {"150100": 1.2, "150300": 0.6, "150400": 1.0, "150500": 0.7,
                             "150600": 1.6, "150700": 2.2, "152200": 1.3, "152500": 2.0,
                             "152900": 1.8}, 0.35, 0.1),
    "food_safety": _Cat(0.55, 5.0, 0.80, 0.70, 0.01, "office",
                        {"150100": 1.2, "150200": 1.1}, 0.30, 0.05),
    "gas_safety": _Cat(0.18, 4.0, 0.80, 0.75, 0.04, "office",
                       {"150100": 1.3, "150200": 1.3, "150300": 1.2, "150600": 1.1,
                        "152900": 0.8}, 0.35, 0.3),
    "illegal_fishing": _Cat(0.05, 2.5, 1.35, 1.25, -0.05, "daytime",
                            {"150100": 0.9, "150200": 1.8, "150300": 2.5, "150400": 0.6,
                             "150500": 0.6, "150600": 1.2, "150700": 1.8, "150800": 3.0,
                             "150900": 0.5, "152200": 0.7, "152500": 0.4, "152900": 0.8},
                            0.45, 0.8),
    "exam_noise": _Cat(0.07, 3.0, 0.90, 0.80, 0.02, "night",
                       {"150100": 1.4, "150200": 1.3, "150300": 1.1, "150600": 1.1,
                        "152500": 0.7, "152900": 0.7}, 0.40, 0.2),
    "wildlife_poaching": _Cat(0.04, 2.5, 1.00, 0.90, -0.03, "daytime",
                              {"150100": 0.4, "150200": 0.5, "150300": 0.4, "150700": 2.8,
                               "152200": 2.2, "152500": 2.0, "152900": 2.4, "150400": 1.2},
                              0.30, 0.8),
    "coal_truck_overload": _Cat(0.07, 3.0, 0.80, 0.60, 0.03, "daytime",
                                {"150100": 0.6, "150200": 1.4, "150300": 3.0, "150400": 0.8,
                                 "150500": 1.3, "150600": 2.6, "150700": 1.0, "150800": 0.6,
                                 "150900": 1.1, "152200": 0.5, "152500": 1.5, "152900": 1.6},
                                0.45, 0.3),
}


@dataclass(frozen=True)
class _Season:
    """A recurring surge: offsets (days) from an anchor date give its trapezoid shape."""

    driver: str
    anchor: str                        # festival name, "naadam", or "MM-DD"
    offsets: tuple[int, int, int, int]  # start, peak start, peak end, end
    mult: tuple[float, float]          # peak multiplier range, drawn per year
    shift_sd: float = 0.0              # whole-season shift per year (weather), days
    region_shift_sd: float = 0.0       # extra shift per league, days
    jitter_sd: float = 2.0             # ramp start/end wobble per year, days


_SEASONS: dict[str, tuple[_Season, ...]] = {
    "fireworks": (
        _Season("spring_festival", "spring_festival", (-28, -3, 1, 6), (9.0, 16.0), jitter_sd=4),
        _Season("lantern_festival", "spring_festival", (11, 13, 14, 16), (5.0, 9.0), jitter_sd=0),
        _Season("new_year", "12-31", (-3, 0, 0, 1), (2.0, 3.5), jitter_sd=0),
    ),
    "migrant_wages": (
        _Season("pre_spring_festival", "spring_festival", (-56, -24, -5, 3), (3.0, 5.0),
                jitter_sd=5),
        _Season("mid_year_settlement", "06-25", (-15, -5, 5, 15), (1.3, 1.7), shift_sd=3),
    ),
    "grassland_fire": (
        _Season("spring_fire_season", "03-15", (0, 25, 60, 92), (2.5, 5.0), shift_sd=7,
                region_shift_sd=4),
        _Season("qingming", "qingming", (-5, -1, 1, 4), (6.0, 11.0), jitter_sd=1),
        _Season("autumn_fire_season", "09-15", (0, 20, 45, 61), (2.0, 4.0), shift_sd=7,
                region_shift_sd=4),
    ),
    "tourism_pricing": (
        _Season("summer_tourism", "07-01", (-10, 10, 45, 62), (3.5, 7.0), shift_sd=5,
                region_shift_sd=3),
        _Season("naadam", "naadam", (-2, 0, 3, 5), (1.8, 3.0), jitter_sd=1),
        _Season("national_day", "national_day", (-3, 0, 6, 8), (3.0, 6.0), jitter_sd=0),
    ),
    "food_safety": (
        _Season("summer_heat", "06-10", (0, 30, 70, 95), (1.5, 2.2), shift_sd=7,
                region_shift_sd=3),
        _Season("dragon_boat", "dragon_boat", (-10, -3, 0, 2), (1.8, 2.8)),
        _Season("mid_autumn", "mid_autumn", (-21, -7, 0, 3), (2.3, 3.8)),
        _Season("pre_spring_festival", "spring_festival", (-24, -10, -1, 4), (1.5, 2.1)),
    ),
    "gas_safety": (
        _Season("heating_season", "10-15", (-5, 50, 110, 182), (2.0, 3.2), shift_sd=5,
                region_shift_sd=3),
        _Season("heating_start", "10-15", (-3, 2, 9, 16), (1.8, 3.0), shift_sd=5,
                region_shift_sd=3, jitter_sd=1),
    ),
    "illegal_fishing": (
        _Season("closed_fishing_season", "04-01", (-5, 20, 80, 121), (3.5, 6.5), shift_sd=6,
                region_shift_sd=3),
    ),
    "exam_noise": (
        _Season("gaokao", "06-07", (-10, -4, 2, 4), (8.0, 14.0), jitter_sd=1),
        _Season("zhongkao", "06-20", (-5, -2, 1, 3), (3.0, 5.0), shift_sd=3, jitter_sd=1),
        _Season("summer_nights", "06-01", (0, 30, 75, 100), (1.3, 1.7), shift_sd=7),
    ),
    "wildlife_poaching": (
        _Season("winter_poaching", "12-01", (-10, 20, 65, 90), (3.0, 5.0), shift_sd=7,
                region_shift_sd=4),
        _Season("spring_migration", "03-20", (0, 15, 30, 45), (1.6, 2.4), shift_sd=6),
        _Season("autumn_migration", "09-25", (0, 12, 30, 45), (1.5, 2.2), shift_sd=6),
    ),
    "coal_truck_overload": (
        _Season("winter_coal_demand", "10-25", (0, 40, 100, 130), (2.0, 3.2), shift_sd=7,
                region_shift_sd=3),
    ),
}

# Enforcement campaigns (专项行动): inspections multiply inside these windows.
_CAMPAIGNS: dict[str, tuple[_Season, ...]] = {
    "fireworks": (_Season("campaign", "spring_festival", (-30, -20, 15, 18), (2.5, 3.5)),),
    "migrant_wages": (_Season("campaign", "spring_festival", (-75, -65, -3, 0), (2.0, 3.0)),),
    "grassland_fire": (_Season("campaign", "03-20", (0, 7, 60, 75), (1.8, 2.5)),),
    "tourism_pricing": (_Season("campaign", "06-25", (0, 7, 60, 70), (1.8, 2.5)),
                        _Season("campaign", "national_day", (-10, -5, 6, 8), (1.8, 2.5))),
    "food_safety": (_Season("campaign", "mid_autumn", (-25, -18, 0, 2), (1.8, 2.5)),
                    _Season("campaign", "spring_festival", (-30, -20, 0, 3), (1.5, 2.0))),
    "gas_safety": (_Season("campaign", "10-01", (0, 10, 50, 60), (2.0, 3.0)),),
    "illegal_fishing": (_Season("campaign", "04-01", (0, 5, 85, 91), (2.0, 3.0)),),
    "exam_noise": (_Season("campaign", "05-25", (0, 5, 16, 18), (2.5, 3.5)),),
    "wildlife_poaching": (_Season("campaign", "12-01", (0, 10, 75, 90), (1.5, 2.2)),),
    "coal_truck_overload": (_Season("campaign", "11-01", (0, 10, 75, 90), (1.8, 2.5)),),
}

_ONE_OFF_DRIVERS = ("media_report", "viral_post", "local_incident", "policy_change")
_ONE_OFFS_PER_YEAR = 7.0
_DOW_FACTOR = np.array([1.12, 1.04, 1.0, 0.98, 0.94, 1.0, 1.0])
_MAKEUP_FACTOR = 0.95
_HOURS: dict[str, list[float]] = {
    #        0    1    2    3    4    5    6    7    8    9   10   11
    "office": [.15, .1, .08, .08, .1, .15, .3, .8, 2.5, 4., 4., 3.5,
               #  12   13   14   15   16   17   18   19   20   21   22   23
               2., 2.8, 4., 4., 3.6, 2.5, 1.4, 1.1, 1., .8, .5, .3],
    "daytime": [.1, .08, .06, .06, .08, .2, .5, 1.2, 2.5, 3.5, 3.8, 3.5,
                2.5, 2.8, 3.5, 3.5, 3.2, 2.6, 1.8, 1.4, 1.1, .8, .4, .2],
    "evening": [1.5, .8, .3, .1, .1, .1, .2, .5, 1., 1.4, 1.5, 1.5,
                1.3, 1.4, 1.5, 1.6, 1.8, 2.2, 3.5, 4.5, 5., 4.5, 3.5, 2.5],
    "night": [.8, .4, .2, .1, .1, .2, .6, 1., 1.8, 2.2, 2.2, 2., 1.6, 1.8, 2., 2., 2.,
              1.8, 1.8, 2.2, 3., 3.8, 4., 2.5],
}
_CHANNELS = ("phone", "wechat", "app", "web")
_CHANNEL_P = (0.66, 0.16, 0.13, 0.05)
_ACTIONS = ("warning", "correction_order", "penalty", "inspection")
_ACTION_P = (0.45, 0.35, 0.15, 0.05)


# --------------------------------------------------------------------------------------------
# Random streams: one per purpose, stable across calls (crc32 of a label, never hash()).
# --------------------------------------------------------------------------------------------
def _rng(seed: int, *labels: object) -> np.random.Generator:
    keys = [zlib.crc32(str(label).encode("utf-8")) for label in labels]
    return np.random.default_rng([seed, *keys])


# --------------------------------------------------------------------------------------------
# Configuration files
# --------------------------------------------------------------------------------------------
def _load_yaml(name: str) -> dict[str, Any]:
    with (_HERE / name).open(encoding="utf-8") as fh:
        loaded: dict[str, Any] = yaml.safe_load(fh)
    return loaded


@dataclass(frozen=True)
class _Planted:
    unique_id: str
    series: int
    driver: str
    start: date
    peak_start: date
    peak_end: date
    end: date
    multiplier: float
    one_off: bool


def _anchor(season: _Season, fest: FestivalDates, naadam: date) -> date:
    if season.anchor == "naadam":
        return naadam
    if season.anchor in {"spring_festival", "qingming", "dragon_boat", "mid_autumn",
                         "national_day"}:
        value: date = getattr(fest, season.anchor)
        return value
    month, day = (int(p) for p in season.anchor.split("-"))
    return date(fest.year, month, day)


def _season_events(
    seasons: Sequence[_Season], *, seed: int, tag: str, category: str, regions: list[str],
    first_series: int, years: range, fests: dict[int, FestivalDates], signal: str,
) -> list[_Planted]:
    """Planted occurrences of recurring seasons for one category, every league, every year."""
    out: list[_Planted] = []
    for year in years:
        fest = fests[year]
        for k, season in enumerate(seasons):
            common = _rng(seed, tag, category, season.driver, k, year)
            shift = common.normal(0.0, season.shift_sd) if season.shift_sd else 0.0
            j_start, j_end = common.normal(0.0, season.jitter_sd, size=2)
            mult = common.uniform(*season.mult)
            for r, region in enumerate(regions):
                local = _rng(seed, tag, category, season.driver, k, year, region)
                naadam = date(year, 7, 10) + timedelta(
                    days=int(zlib.crc32(region.encode()) % 30) + int(local.integers(-3, 4)))
                base = _anchor(season, fest, naadam)
                r_shift = local.normal(0.0, season.region_shift_sd) if season.region_shift_sd \
                    else 0.0
                total = shift + r_shift
                o0, o1, o2, o3 = season.offsets
                start = base + timedelta(days=round(o0 + total + j_start))
                p_start = base + timedelta(days=round(o1 + total))
                p_end = base + timedelta(days=round(o2 + total))
                end = base + timedelta(days=round(o3 + total + j_end))
                start = min(start, p_start)
                end = max(end, p_end)
                m = max(1.05, float(mult * np.exp(local.normal(0.0, 0.15))))
                out.append(_Planted(str(SeriesId(signal, category, region)), first_series + r,
                                    season.driver, start, p_start, p_end, end,
                                    round(m, 3), False))
    return out


def _one_off_events(
    *, seed: int, categories: list[str], regions: list[str], weights: Array, years: range,
) -> list[_Planted]:
    out: list[_Planted] = []
    for year in years:
        rng = _rng(seed, "one_off", year)
        n = int(rng.poisson(_ONE_OFFS_PER_YEAR))
        for _ in range(n):
            c = int(rng.integers(len(categories)))
            r = int(rng.choice(len(regions), p=weights))
            start = date(year, 1, 1) + timedelta(days=int(rng.integers(0, 365)))
            up, flat, down = (int(rng.integers(1, 4)), int(rng.integers(5, 16)),
                              int(rng.integers(3, 11)))
            p_start = start + timedelta(days=up)
            p_end = p_start + timedelta(days=flat)
            end = p_end + timedelta(days=down)
            driver = _ONE_OFF_DRIVERS[int(rng.integers(len(_ONE_OFF_DRIVERS)))]
            mult = round(float(rng.uniform(3.0, 8.0)), 3)
            out.append(_Planted(f"complaints|{categories[c]}|{regions[r]}",
                                c * len(regions) + r, driver, start, p_start, p_end, end, mult,
                                True))
    return out


def _shape(ev: _Planted, days: pd.DatetimeIndex) -> tuple[slice, Array]:
    """Trapezoid (smooth ramps) of one planted event over ``days``: index slice and values."""
    d0 = days[0].date()
    i0 = max((ev.start - d0).days, 0)
    i1 = min((ev.end - d0).days + 1, len(days))
    if i1 <= i0:
        return slice(0, 0), np.zeros(0)
    t = np.arange(i0, i1, dtype=float)
    a, b = (ev.start - d0).days, (ev.peak_start - d0).days
    c, e = (ev.peak_end - d0).days, (ev.end - d0).days + 1
    up = np.clip((t - a + 1) / max(b - a + 1, 1), 0.0, 1.0)
    down = np.clip((e - t) / max(e - c, 1), 0.0, 1.0)
    values = np.minimum(up, down)
    values = values * values * (3.0 - 2.0 * values)  # smoothstep
    return slice(i0, i1), values


# --------------------------------------------------------------------------------------------
# Counts
# --------------------------------------------------------------------------------------------
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
        rng = _rng(seed, "gaps", year)
        if rng.random() < 0.9:
            region = regions[int(rng.integers(len(regions)))]
            g0 = date(year, 1, 1) + timedelta(days=int(rng.integers(0, 350)))
            gaps.append((region, "all", g0, g0 + timedelta(days=int(rng.integers(7, 22)) - 1),
                         "league_missing"))
        if rng.random() < 0.4:
            g0 = date(year, 1, 1) + timedelta(days=int(rng.integers(0, 360)))
            gaps.append(("all", _HOTLINE, g0, g0 + timedelta(days=int(rng.integers(2, 6)) - 1),
                         "hotline_outage"))
    return [g for g in gaps if g[3] >= start and g[2] <= end]


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------
def _timestamps(rng: np.random.Generator, days: pd.DatetimeIndex, day_idx: npt.NDArray[np.int64],
                profile_idx: npt.NDArray[np.int64], workday: npt.NDArray[np.bool_],
                profiles: list[str]) -> pd.Series:
    n = len(day_idx)
    hours = np.zeros(n, dtype=np.int64)
    flat = np.array(_HOURS["daytime"])
    for p, name in enumerate(profiles):
        for wd in (True, False):
            sel = np.flatnonzero((profile_idx == p) & (workday[day_idx] == wd))
            if sel.size == 0:
                continue
            w = np.array(_HOURS[name])
            w = w / w.sum()
            if not wd:  # off days: less of an office rhythm
                w = 0.5 * w + 0.5 * flat / flat.sum()
            hours[sel] = rng.choice(24, size=sel.size, p=w / w.sum())
    seconds = hours * 3600 + rng.integers(0, 3600, size=n)
    ts = days[day_idx] + pd.to_timedelta(seconds, unit="s")
    return pd.Series(ts.strftime("%Y-%m-%dT%H:%M:%S+08:00"))


def _fake_phone(rng: np.random.Generator) -> str:
    prefix = ("138", "139", "150", "151", "186", "187", "133", "177", "159")
    return prefix[int(rng.integers(len(prefix)))] + "".join(
        str(int(x)) for x in rng.integers(0, 10, size=8))


def _fake_id(rng: np.random.Generator, region: str) -> str:
    born = date(1955, 1, 1) + timedelta(days=int(rng.integers(0, 17000)))
    body = f"{region}{born:%Y%m%d}{int(rng.integers(0, 1000)):03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    check = "10X98765432"[sum(int(c) * w for c, w in zip(body, weights, strict=True)) % 11]
    return body + check


def _fake_email(rng: np.random.Generator) -> str:
    names = ("zhangwei", "wangfang", "li.na", "liuyang", "chenjie", "yangmin", "zhaolei",
             "huangli", "bater", "saren", "wuyunqiqige", "sunhao")
    domains = ("example.com", "example.net", "example.org")
    return (f"{names[int(rng.integers(len(names)))]}{int(rng.integers(1960, 2005))}"
            f"@{domains[int(rng.integers(len(domains)))]}")


def _texts(rng: np.random.Generator, cat_codes: list[str], cat_idx: npt.NDArray[np.int64],
           region_codes: list[str], region_idx: npt.NDArray[np.int64]) -> list[str]:
    n = len(cat_idx)
    r_tpl = rng.random(n)
    r_place = rng.random(n)
    r_when = rng.integers(len(texts.WHENS), size=n)
    r_ask = rng.integers(len(texts.ASKS), size=n)
    r_c = rng.integers(len(texts.COMMUNITIES), size=n)
    r_s = rng.integers(len(texts.STREETS), size=n)
    r_n = rng.integers(2, 9, size=n)
    r_n0 = rng.integers(5, 60, size=n)
    r_m = rng.integers(3, 90, size=n) * 1000
    pii = rng.random(n)
    out: list[str] = []
    tpls = [texts.TEMPLATES[c] for c in cat_codes]
    places = [texts.PLACES[c] for c in cat_codes]
    for i in range(n):
        ci = int(cat_idx[i])
        t_list, p_list = tpls[ci], places[ci]
        place = p_list[int(r_place[i] * len(p_list))].format(
            c=texts.COMMUNITIES[r_c[i]], s=texts.STREETS[r_s[i]])
        text = t_list[int(r_tpl[i] * len(t_list))].format(
            place=place, when=texts.WHENS[r_when[i]], ask=texts.ASKS[r_ask[i]], n=r_n[i],
            n0=r_n0[i], m=r_m[i])
        if pii[i] < 0.005:
            kind = int(pii[i] / 0.005 * 3)
            if kind == 0:
                text += f"联系电话{_fake_phone(rng)}。"
            elif kind == 1:
                text += f"本人身份证号{_fake_id(rng, region_codes[int(region_idx[i])])}。"
            else:
                text += f"处理结果请发邮箱{_fake_email(rng)}。"
        out.append(text)
    return out


def _gzip_csv(frame: pd.DataFrame) -> bytes:
    raw = frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(raw)
    return buf.getvalue()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _assign_driver(windows: pd.DataFrame, events: list[_Planted]) -> pd.DataFrame:
    """Name the planted surge that contributes most excess inside each truth window."""
    by_uid: dict[str, list[_Planted]] = {}
    for ev in events:
        by_uid.setdefault(ev.unique_id, []).append(ev)
    drivers, planted, one_off = [], [], []
    for row in windows.itertuples(index=False):
        w0, w1 = pd.Timestamp(str(row.start)).date(), pd.Timestamp(str(row.end)).date()
        days = pd.date_range(w0, w1, freq="D")
        best, best_score, best_one_off = "none", 0.0, False
        for ev in by_uid.get(str(row.unique_id), []):
            if ev.start > w1 or ev.end < w0:
                continue
            sl, values = _shape(ev, days)
            score = float((ev.multiplier - 1.0) * values.sum()) if sl.stop > sl.start else 0.0
            if score > best_score:
                best, best_score, best_one_off = ev.driver, score, ev.one_off
        drivers.append(best)
        planted.append(best != "none")
        one_off.append(best_one_off)
    return windows.assign(driver=drivers, planted=planted, one_off=one_off)


@dataclass(frozen=True)
class _Simulation:
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
    events: list[_Planted]
    counts: npt.NDArray[np.int64]
    hot: npt.NDArray[np.int64]
    web: npt.NDArray[np.int64]
    gaps: list[tuple[str, str, date, date, str]]
    mu_all: Array
    keep: Array


def _simulate(seed: int, start: date, end: date, scale: float) -> _Simulation:
    """Planted events, expected counts, gamma-Poisson draws and gaps (no files)."""
    regions_doc = _load_yaml("regions.yaml")
    categories_doc = _load_yaml("categories.yaml")
    leagues = [r for r in regions_doc["regions"] if r["level"] == "league"]
    region_codes = [str(r["code"]) for r in leagues]
    pop = np.array([float(r["population"]) / 1e6 for r in leagues])
    cats = [c for c in categories_doc["categories"] if c["code"] in _CATS]
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
    t_years = ((days - pd.Timestamp(_EPOCH)).days.to_numpy() / 365.25) - 3.5
    first_monday_offset = int(days[0].weekday())

    # ---- planted events ---------------------------------------------------------------
    events: list[_Planted] = []
    for ci, code in enumerate(cat_codes):
        events += _season_events(_SEASONS[code], seed=seed, tag="season", category=code,
                                 regions=region_codes, first_series=ci * n_r, years=years,
                                 fests=fests, signal="complaints")
    weights = np.sqrt(pop) / np.sqrt(pop).sum()
    events += _one_off_events(seed=seed, categories=cat_codes, regions=region_codes,
                              weights=weights, years=years)
    d_first, d_last = days[0].date(), days[-1].date()
    events = [ev for ev in events if ev.end >= d_first and ev.start <= d_last]

    season = np.ones((n_s, n_d))
    for ev in events:
        sl, values = _shape(ev, days)
        season[ev.series, sl] += (ev.multiplier - 1.0) * values

    # ---- expected counts and gamma-Poisson draws ---------------------------------------
    counts = np.zeros((n_s, n_d), dtype=np.int64)
    mu_all = np.zeros((n_s, n_d))
    for ci, code in enumerate(cat_codes):
        cat = _CATS[code]
        day_factor = np.where(holiday, cat.holiday,
                              np.where(weekend, cat.weekend,
                                       np.where(makeup, _MAKEUP_FACTOR, _DOW_FACTOR[dow])))
        for ri, region in enumerate(region_codes):
            s = ci * n_r + ri
            rng = _rng(seed, "counts", code, region, start, end)
            slope = cat.trend + _HOTLINE_GROWTH + rng.normal(0.0, 0.02)
            trend = np.exp(slope * t_years)
            mu = (cat.base * pop[ri] * cat.affinity.get(region, 1.0) * scale * trend
                  * season[s] * day_factor * _latent(rng, n_d, first_monday_offset))
            lam = mu * rng.gamma(cat.dispersion, 1.0 / cat.dispersion, size=n_d)
            counts[s] = rng.poisson(lam)
            mu_all[s] = mu

    # ---- sources and gaps --------------------------------------------------------------
    rng = _rng(seed, "sources", start, end)
    web_on = np.asarray(days >= pd.Timestamp(_WEB_PORTAL_FROM))
    web = rng.binomial(counts, _WEB_SHARE * web_on[None, :])
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
    counts = hot + web
    # share of the expected count that survives the gaps (web share during a hotline outage)
    keep = np.ones((n_s, n_d))
    for region, _source, g0, g1, _kind in gaps:
        day_sel = (days >= pd.Timestamp(g0)) & (days <= pd.Timestamp(g1))
        if region == "all":
            keep[:, day_sel] *= _WEB_SHARE * web_on[day_sel]
        else:
            keep[np.ix_(np.arange(n_c, dtype=np.int64) * n_r + region_codes.index(region),
                        np.flatnonzero(day_sel))] = 0.0
    return _Simulation(
        region_codes=region_codes, pop=pop, cat_codes=cat_codes, sectors=sectors, n_c=n_c,
        n_r=n_r, n_s=n_s, uids=uids, days=days, n_d=n_d, years=years, fests=fests,
        holiday=holiday, weekend=weekend, makeup=makeup, workday=workday, t_years=t_years,
        events=events, counts=counts, hot=hot, web=web, gaps=gaps, mu_all=mu_all, keep=keep)


def generate(
    out_dir: Path,
    *,
    seed: int = DEFAULT_SEED,
    start: date = DEFAULT_START,
    end: date = DEFAULT_END,
    scale: float = 1.0,
) -> dict[str, object]:
    """Write the synthetic sample set to ``out_dir``; same arguments give identical bytes.

    Parameters
    ----------
    out_dir : directory to write into (created if missing).
    seed : master seed; every random stream derives from it and a fixed label.
    start, end : first and last day of records (inclusive, Asia/Shanghai local dates).
    scale : multiplies every expected count (1.0 keeps the committed volumes).

    Returns
    -------
    dict with ``files`` (name -> bytes written), ``rows`` (name -> data rows), ``series``,
    ``planted_events``, ``one_off_events``, ``truth_windows``, ``truth_planted``,
    ``truth_one_off``, ``gaps`` and the arguments.

    Files: ``complaints.csv.gz`` (``source, external_id, received_at, category, region, sector,
    channel, text``), ``enforcement.csv.gz`` (``source, external_id, occurred_at, category,
    region, action, violation_found, entity_id, sector``), ``planted_events.csv`` (``unique_id,
    driver, start, end, one_off, multiplier``), ``planted_gaps.csv`` (``region, source, start,
    end, kind``), ``truth_spikes.csv`` (``unique_id, start, end, peak_week, peak_count,
    threshold, driver, planted, one_off``), ``regions.yaml``, ``categories.yaml``,
    ``dirty_complaints.csv`` (GB18030) and ``dirty_complaints.expected.json``.
    """
    if end < start:
        raise ValueError("end must not be before start")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sim = _simulate(seed, start, end, scale)

    # ---- complaint records -------------------------------------------------------------
    rng = _rng(seed, "complaint_records", start, end)
    parts = []
    for src_code, mat in ((0, sim.hot), (1, sim.web)):
        s_idx, d_idx = np.nonzero(mat)
        reps = mat[s_idx, d_idx]
        parts.append((np.repeat(s_idx, reps), np.repeat(d_idx, reps),
                      np.full(int(reps.sum()), src_code)))
    s_all = np.concatenate([p[0] for p in parts]).astype(np.int64)
    d_all = np.concatenate([p[1] for p in parts]).astype(np.int64)
    src = np.concatenate([p[2] for p in parts]).astype(np.int64)
    c_all, r_all = s_all // sim.n_r, s_all % sim.n_r
    profiles = sorted(set(_HOURS))
    prof_of_cat = np.array([profiles.index(_CATS[c].hours) for c in sim.cat_codes])
    received = _timestamps(rng, sim.days, d_all, prof_of_cat[c_all], sim.workday | sim.makeup,
                           profiles)
    channel = np.where(src == 1, "web",
                       np.array(_CHANNELS)[rng.choice(len(_CHANNELS), size=len(src),
                                                      p=_CHANNEL_P)])
    text = _texts(rng, sim.cat_codes, c_all, sim.region_codes, r_all)
    complaints = pd.DataFrame({
        "source": np.where(src == 1, _WEB, _HOTLINE),
        "external_id": "",
        "received_at": received.to_numpy(),
        "category": np.array(sim.cat_codes)[c_all],
        "region": np.array(sim.region_codes)[r_all],
        "sector": np.array([sim.sectors[c] for c in sim.cat_codes])[c_all],
        "channel": channel,
        "text": text,
        "_s": s_all,
    })
    complaints = complaints.sort_values(["received_at", "source", "_s"], kind="stable")
    complaints = complaints.reset_index(drop=True)
    day_key = complaints["received_at"].str.slice(0, 10).str.replace("-", "", regex=False)
    seq_day = complaints.groupby(["source", day_key]).cumcount() + 1
    seq_year = complaints.groupby(["source", day_key.str.slice(0, 4)]).cumcount() + 1
    is_web = complaints["source"] == _WEB
    complaints["external_id"] = np.where(
        is_web,
        "WP" + day_key.str.slice(0, 4) + seq_year.map("{:07d}".format),
        "IM" + day_key + seq_day.map("{:05d}".format))
    complaints = complaints[COMPLAINT_COLUMNS]

    # ---- enforcement -------------------------------------------------------------------
    enforcement = _enforcement(seed=seed, start=start, end=end, scale=scale, days=sim.days,
                               counts=sim.counts, cat_codes=sim.cat_codes,
                               region_codes=sim.region_codes, pop=sim.pop, holiday=sim.holiday,
                               weekend=sim.weekend, fests=sim.fests, years=sim.years,
                               sectors=sim.sectors, t_years=sim.t_years)

    # ---- truth -------------------------------------------------------------------------
    daily = pd.DataFrame({
        "unique_id": np.repeat(np.array(sim.uids), sim.n_d),
        "ds": np.tile(sim.days.to_numpy(), sim.n_s),
        "y": sim.counts.reshape(-1).astype(float),
    })
    windows = actual_spike_windows(to_weekly(daily))
    truth = _assign_driver(windows, sim.events)
    for col in ("start", "end", "peak_week"):
        truth[col] = pd.to_datetime(truth[col]).dt.strftime("%Y-%m-%d")
    truth = truth[TRUTH_COLUMNS]

    planted = pd.DataFrame([{
        "unique_id": ev.unique_id, "driver": ev.driver, "start": ev.start.isoformat(),
        "end": ev.end.isoformat(), "one_off": ev.one_off, "multiplier": ev.multiplier,
    } for ev in sim.events], columns=PLANTED_COLUMNS)
    planted = planted.sort_values(["unique_id", "start", "driver"], kind="stable")
    gap_frame = pd.DataFrame([{"region": g[0], "source": g[1], "start": g[2].isoformat(),
                               "end": g[3].isoformat(), "kind": g[4]} for g in sim.gaps],
                             columns=GAP_COLUMNS)

    dirty_bytes, expected = dirty_complaints()
    files: dict[str, bytes] = {
        "regions.yaml": (_HERE / "regions.yaml").read_bytes(),
        "categories.yaml": (_HERE / "categories.yaml").read_bytes(),
        "complaints.csv.gz": _gzip_csv(complaints),
        "enforcement.csv.gz": _gzip_csv(enforcement),
        "planted_events.csv": planted.to_csv(index=False, lineterminator="\n").encode(),
        "planted_gaps.csv": gap_frame.to_csv(index=False, lineterminator="\n").encode(),
        "truth_spikes.csv": truth.to_csv(index=False, lineterminator="\n").encode(),
        "dirty_complaints.csv": dirty_bytes,
        "dirty_complaints.expected.json": (json.dumps(expected, ensure_ascii=False, indent=1)
                                           + "\n").encode("utf-8"),
    }
    for name, data in files.items():
        _write(out_dir / name, data)
    return {
        "files": {name: len(data) for name, data in files.items()},
        "rows": {
            "complaints.csv.gz": len(complaints),
            "enforcement.csv.gz": len(enforcement),
            "planted_events.csv": len(planted),
            "planted_gaps.csv": len(gap_frame),
            "truth_spikes.csv": len(truth),
            "dirty_complaints.csv": len(expected),
        },
        "series": sim.n_s,
        "planted_events": len(planted),
        "one_off_events": int(planted["one_off"].sum()),
        "truth_windows": len(truth),
        "truth_planted": int(truth["planted"].sum()),
        "truth_one_off": int(truth["one_off"].sum()),
        "gaps": len(gap_frame),
        "seed": seed,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "scale": scale,
    }


def expected_counts(
    *, seed: int = DEFAULT_SEED, start: date = DEFAULT_START, end: date = DEFAULT_END,
    scale: float = 1.0,
) -> pd.DataFrame:
    """The generator's own expected daily complaint counts, for an *oracle* upper bound.

    Returns a long frame ``unique_id, ds, mu, dispersion``: ``mu`` is the expected count of
    the day after gaps (everything the counts are drawn from, including the latent weekly
    wander no forecaster can know), ``dispersion`` the gamma shape of the daily noise, so
    ``Poisson(mu * Gamma(dispersion, 1 / dispersion))`` has exactly the distribution of the
    committed counts. Used by ``bench/accuracy.py --models oracle`` to show what the spike
    targets allow on this data; nothing in ``models/`` or the service may read it.
    """
    sim = _simulate(seed, start, end, scale)
    disp = np.repeat([_CATS[c].dispersion for c in sim.cat_codes], sim.n_r)
    return pd.DataFrame({
        "unique_id": np.repeat(np.array(sim.uids), sim.n_d),
        "ds": np.tile(sim.days.to_numpy(), sim.n_s),
        "mu": (sim.mu_all * sim.keep).reshape(-1),
        "dispersion": np.repeat(disp, sim.n_d),
    })


def _enforcement(
    *, seed: int, start: date, end: date, scale: float, days: pd.DatetimeIndex,
    counts: npt.NDArray[np.int64], cat_codes: list[str], region_codes: list[str], pop: Array,
    holiday: npt.NDArray[np.bool_], weekend: npt.NDArray[np.bool_],
    fests: dict[int, FestivalDates], years: range, sectors: dict[str, str], t_years: Array,
) -> pd.DataFrame:
    """Inspections follow complaints with a 2-4 week lag, plus patrols and campaigns."""
    n_r, n_d = len(region_codes), len(days)
    lags = np.arange(0, 29, dtype=float)
    kernel = np.where(lags >= 2, lags**2 * np.exp(-lags / 4.0), 0.0)
    kernel /= kernel.sum()
    rows_s, rows_d = [], []
    for ci, code in enumerate(cat_codes):
        cat = _CATS[code]
        camp = np.ones((n_r, n_d))
        for ev in _season_events(_CAMPAIGNS[code], seed=seed, tag="campaign", category=code,
                                 regions=region_codes, first_series=0, years=years,
                                 fests=fests, signal="violations"):
            sl, values = _shape(ev, days)
            camp[ev.series, sl] += (ev.multiplier - 1.0) * values
        evening_duty = code in {"fireworks", "exam_noise"}
        day_factor = np.where(holiday, 0.6 if evening_duty else 0.12,
                              np.where(weekend, 0.5 if evening_duty else 0.2, 1.0))
        for ri, region in enumerate(region_codes):
            s = ci * n_r + ri
            rng = _rng(seed, "enforcement", code, region, start, end)
            lagged = np.convolve(counts[s].astype(float), kernel)[:n_d]
            patrol = 0.25 * cat.base * pop[ri] * np.sqrt(cat.affinity.get(region, 1.0)) * scale
            mu = (patrol * np.exp(0.03 * t_years) + 0.45 * lagged) * camp[ri] * day_factor
            lam = mu * rng.gamma(4.0, 0.25, size=n_d)
            k = rng.poisson(lam)
            d_idx = np.repeat(np.arange(n_d), k)
            rows_s.append(np.full(len(d_idx), s))
            rows_d.append(d_idx)
    s_all = np.concatenate(rows_s).astype(np.int64)
    d_all = np.concatenate(rows_d).astype(np.int64)
    c_all, r_all = s_all // n_r, s_all % n_r
    n = len(s_all)
    rng = _rng(seed, "enforcement_records", start, end)
    evening = np.isin(np.array(cat_codes)[c_all], ["fireworks", "exam_noise"])
    hour = np.where(evening & (rng.random(n) < 0.4), rng.integers(18, 23, size=n),
                    rng.integers(8, 18, size=n))
    seconds = hour * 3600 + rng.integers(0, 3600, size=n)
    occurred = (days[d_all] + pd.to_timedelta(seconds, unit="s")).strftime(
        "%Y-%m-%dT%H:%M:%S+08:00")
    vrate = np.array([_CATS[c].violation_rate for c in cat_codes])[c_all]
    found = rng.random(n) < vrate
    action = np.where(found, np.array(_ACTIONS)[rng.choice(4, size=n, p=_ACTION_P)],
                      "inspection")
    indiv = np.array([_CATS[c].individuals for c in cat_codes])[c_all]
    pool = np.maximum(20, (pop[r_all] * 150)).astype(np.int64)
    # a few entities are inspected again and again (Zipf-like), most once or twice
    pick = np.minimum((pool * rng.random(n) ** 2.2).astype(np.int64), pool - 1)
    entity_no = c_all * 10000 + pick + 1  # one block of numbers per category
    region_arr = np.array(region_codes)[r_all]
    entity = np.where(rng.random(n) < indiv, "",
                      pd.Series(region_arr).str.cat(
                          pd.Series(entity_no).map("{:05d}".format), sep="-").radd("E")
                      .to_numpy())
    frame = pd.DataFrame({
        "source": _ENF_SOURCE,
        "external_id": "",
        "occurred_at": np.asarray(occurred),
        "category": np.array(cat_codes)[c_all],
        "region": region_arr,
        "action": action,
        "violation_found": found,
        "entity_id": entity,
        "sector": np.array([sectors[c] for c in cat_codes])[c_all],
        "_s": s_all,
    })
    frame = frame.sort_values(["occurred_at", "_s"], kind="stable").reset_index(drop=True)
    seq = frame.groupby("region").cumcount() + 1
    frame["external_id"] = "ZF" + frame["region"] + seq.map("{:07d}".format)
    return frame[ENFORCEMENT_COLUMNS]

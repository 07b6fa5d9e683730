"""Planted surges: recurring seasons anchored on festivals or dates (shifted and resized at
random every year), one-off surges no calendar predicts, their trapezoid shapes over the days,
and which planted surge explains a truth window."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from models.series import SeriesId
from service.samples.calendar import FestivalDates
from service.samples.knobs import ONE_OFF_DRIVERS, ONE_OFFS_PER_YEAR, Array, Season, random_stream


@dataclass(frozen=True)
class Planted:
    unique_id: str
    series: int
    driver: str
    start: date
    peak_start: date
    peak_end: date
    end: date
    multiplier: float
    one_off: bool


def _anchor(season: Season, fest: FestivalDates, naadam: date) -> date:
    if season.anchor == "naadam":
        return naadam
    if season.anchor in {"spring_festival", "qingming", "dragon_boat", "mid_autumn",
                         "national_day"}:
        value: date = getattr(fest, season.anchor)
        return value
    month, day = (int(p) for p in season.anchor.split("-"))
    return date(fest.year, month, day)


def season_events(
    seasons: Sequence[Season], *, seed: int, tag: str, category: str, regions: list[str],
    first_series: int, years: range, fests: dict[int, FestivalDates], signal: str,
) -> list[Planted]:
    """Planted occurrences of recurring seasons for one category, every league, every year."""
    out: list[Planted] = []
    for year in years:
        fest = fests[year]
        for k, season in enumerate(seasons):
            common = random_stream(seed, tag, category, season.driver, k, year)
            shift = common.normal(0.0, season.shift_sd) if season.shift_sd else 0.0
            j_start, j_end = common.normal(0.0, season.jitter_sd, size=2)
            mult = common.uniform(*season.mult)
            for r, region in enumerate(regions):
                local = random_stream(seed, tag, category, season.driver, k, year, region)
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
                out.append(Planted(str(SeriesId(signal, category, region)), first_series + r,
                                   season.driver, start, p_start, p_end, end,
                                   round(m, 3), False))
    return out


def one_off_events(
    *, seed: int, categories: list[str], regions: list[str], weights: Array, years: range,
) -> list[Planted]:
    out: list[Planted] = []
    for year in years:
        rng = random_stream(seed, "one_off", year)
        n = int(rng.poisson(ONE_OFFS_PER_YEAR))
        for _ in range(n):
            c = int(rng.integers(len(categories)))
            r = int(rng.choice(len(regions), p=weights))
            start = date(year, 1, 1) + timedelta(days=int(rng.integers(0, 365)))
            up, flat, down = (int(rng.integers(1, 4)), int(rng.integers(5, 16)),
                              int(rng.integers(3, 11)))
            p_start = start + timedelta(days=up)
            p_end = p_start + timedelta(days=flat)
            end = p_end + timedelta(days=down)
            driver = ONE_OFF_DRIVERS[int(rng.integers(len(ONE_OFF_DRIVERS)))]
            mult = round(float(rng.uniform(3.0, 8.0)), 3)
            out.append(Planted(f"complaints|{categories[c]}|{regions[r]}",
                               c * len(regions) + r, driver, start, p_start, p_end, end, mult,
                               True))
    return out


def trapezoid(ev: Planted, days: pd.DatetimeIndex) -> tuple[slice, Array]:
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


def assign_driver(windows: pd.DataFrame, events: list[Planted]) -> pd.DataFrame:
    """Name the planted surge that contributes most excess inside each truth window."""
    by_uid: dict[str, list[Planted]] = {}
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
            sl, values = trapezoid(ev, days)
            score = float((ev.multiplier - 1.0) * values.sum()) if sl.stop > sl.start else 0.0
            if score > best_score:
                best, best_score, best_one_off = ev.driver, score, ev.one_off
        drivers.append(best)
        planted.append(best != "none")
        one_off.append(best_one_off)
    return windows.assign(driver=drivers, planted=planted, one_off=one_off)

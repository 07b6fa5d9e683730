"""The records written from the counts: complaints (times of day, channels, texts with a
little planted personal data) and enforcement (inspections that follow complaints, patrols and
campaigns)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd

from service.samples import texts
from service.samples.knobs import (
    ACTION_P,
    ACTIONS,
    CAMPAIGNS,
    CATS,
    CHANNEL_P,
    CHANNELS,
    ENF_SOURCE,
    HOTLINE,
    HOURS,
    WEB,
    random_stream,
)
from service.samples.planting import season_events, trapezoid
from service.samples.simulation import Simulation

COMPLAINT_COLUMNS = ["source", "external_id", "received_at", "category", "region", "sector",
                     "channel", "text"]
ENFORCEMENT_COLUMNS = ["source", "external_id", "occurred_at", "category", "region", "action",
                       "violation_found", "entity_id", "sector"]


def _timestamps(rng: np.random.Generator, days: pd.DatetimeIndex, day_idx: npt.NDArray[np.int64],
                profile_idx: npt.NDArray[np.int64], workday: npt.NDArray[np.bool_],
                profiles: list[str]) -> pd.Series:
    n = len(day_idx)
    hours = np.zeros(n, dtype=np.int64)
    flat = np.array(HOURS["daytime"])
    for p, name in enumerate(profiles):
        for wd in (True, False):
            sel = np.flatnonzero((profile_idx == p) & (workday[day_idx] == wd))
            if sel.size == 0:
                continue
            w = np.array(HOURS[name])
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


def complaint_records(seed: int, start: date, end: date, sim: Simulation) -> pd.DataFrame:
    """One row per drawn complaint (hotline and web portal), in time order, with its external
    id, time of day, channel and text."""
    rng = random_stream(seed, "complaint_records", start, end)
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
    profiles = sorted(set(HOURS))
    prof_of_cat = np.array([profiles.index(CATS[c].hours) for c in sim.cat_codes])
    received = _timestamps(rng, sim.days, d_all, prof_of_cat[c_all], sim.workday | sim.makeup,
                           profiles)
    channel = np.where(src == 1, "web",
                       np.array(CHANNELS)[rng.choice(len(CHANNELS), size=len(src),
                                                      p=CHANNEL_P)])
    text = _texts(rng, sim.cat_codes, c_all, sim.region_codes, r_all)
    complaints = pd.DataFrame({
        "source": np.where(src == 1, WEB, HOTLINE),
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
    is_web = complaints["source"] == WEB
    complaints["external_id"] = np.where(
        is_web,
        "WP" + day_key.str.slice(0, 4) + seq_year.map("{:07d}".format),
        "IM" + day_key + seq_day.map("{:05d}".format))
    return complaints[COMPLAINT_COLUMNS]


def enforcement_records(sim: Simulation, *, seed: int, start: date, end: date,
                        scale: float) -> pd.DataFrame:
    """Inspections follow complaints with a 2-4 week lag, plus patrols and campaigns."""
    s_all, d_all = _inspection_draws(sim, seed=seed, start=start, end=end, scale=scale)
    days, cat_codes, region_codes = sim.days, sim.cat_codes, sim.region_codes
    n_r, pop, sectors = sim.n_r, sim.pop, sim.sectors
    c_all, r_all = s_all // n_r, s_all % n_r
    n = len(s_all)
    rng = random_stream(seed, "enforcement_records", start, end)
    evening = np.isin(np.array(cat_codes)[c_all], ["fireworks", "exam_noise"])
    hour = np.where(evening & (rng.random(n) < 0.4), rng.integers(18, 23, size=n),
                    rng.integers(8, 18, size=n))
    seconds = hour * 3600 + rng.integers(0, 3600, size=n)
    occurred = (days[d_all] + pd.to_timedelta(seconds, unit="s")).strftime(
        "%Y-%m-%dT%H:%M:%S+08:00")
    vrate = np.array([CATS[c].violation_rate for c in cat_codes])[c_all]
    found = rng.random(n) < vrate
    action = np.where(found, np.array(ACTIONS)[rng.choice(4, size=n, p=ACTION_P)],
                      "inspection")
    indiv = np.array([CATS[c].individuals for c in cat_codes])[c_all]
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
        "source": ENF_SOURCE,
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


def _inspection_draws(sim: Simulation, *, seed: int, start: date, end: date,
                      scale: float) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``(series, day)`` index of every drawn inspection: patrols, lagged complaints and
    campaign windows times the day type, gamma-Poisson noise."""
    days, counts, cat_codes, region_codes = sim.days, sim.counts, sim.cat_codes, sim.region_codes
    pop, holiday, weekend, t_years = sim.pop, sim.holiday, sim.weekend, sim.t_years
    years, fests = sim.years, sim.fests
    n_r, n_d = len(region_codes), len(days)
    lags = np.arange(0, 29, dtype=float)
    kernel = np.where(lags >= 2, lags**2 * np.exp(-lags / 4.0), 0.0)
    kernel /= kernel.sum()
    rows_s, rows_d = [], []
    for ci, code in enumerate(cat_codes):
        cat = CATS[code]
        camp = np.ones((n_r, n_d))
        for ev in season_events(CAMPAIGNS[code], seed=seed, tag="campaign", category=code,
                                regions=region_codes, first_series=0, years=years,
                                fests=fests, signal="violations"):
            sl, values = trapezoid(ev, days)
            camp[ev.series, sl] += (ev.multiplier - 1.0) * values
        evening_duty = code in {"fireworks", "exam_noise"}
        day_factor = np.where(holiday, 0.6 if evening_duty else 0.12,
                              np.where(weekend, 0.5 if evening_duty else 0.2, 1.0))
        for ri, region in enumerate(region_codes):
            s = ci * n_r + ri
            rng = random_stream(seed, "enforcement", code, region, start, end)
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
    return s_all, d_all

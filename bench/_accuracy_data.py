"""Data sets and origin plans of ``bench/accuracy.py`` (issue 11).

Every set is a long daily frame ``unique_id, ds, y`` zero-filled over its source's range,
series ids ``complaints|<category>|<region>`` (the category decides which learned decision
threshold a series gets), and a :class:`Plan`: the scored origins (one yearly origin with a
52-week horizon, four quarterly origins with 13-week horizons) and, for each of them, the
decision-backtest origins its thresholds are learned on (:func:`models.decision.decision_origins`
with the service's settings: the scored horizon clamped to [26, 52] weeks, at most 2 origins,
anchored on a 13-week grid). Every decision origin's horizon ends before its scored origin, so
no threshold sees the period it is scored on (checked in :meth:`Plan.decision_for`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from models.decision import decision_origins
from models.series import SeriesId
from service.config import DEFAULT_TIMEZONE

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data" / "samples"
SHARED = ROOT.parent / "shared" / "data"
CHICAGO = SHARED / "chicago_311"
BOSTON = SHARED / "boston_311"

#: The service's decision backtest (service/forecasting/decisions.py, service/config.py defaults).
DECISION_MIN_WEEKS, DECISION_MAX_WEEKS = 26, 52
DECISION_MAX_ORIGINS, DECISION_ANCHOR_WEEKS = 2, 13

__all__ = ["DataSet", "Plan", "SETS", "load_set", "set_names"]


@dataclass(frozen=True)
class Plan:
    """Scored origins of one set: ``year`` (one origin, 52 weeks) and ``quarterly``."""

    year: pd.Timestamp
    quarterly: tuple[pd.Timestamp, ...]
    first_day: pd.Timestamp

    def scorings(self) -> dict[str, tuple[list[pd.Timestamp], int]]:
        return {"year": ([self.year], 52), "quarterly": (list(self.quarterly), 13)}

    @staticmethod
    def decision_weeks(horizon_weeks: int) -> int:
        return min(max(horizon_weeks, DECISION_MIN_WEEKS), DECISION_MAX_WEEKS)

    def decision_for(self, origin: pd.Timestamp, horizon_weeks: int) -> list[pd.Timestamp]:
        """The decision-backtest origins of a scored origin (all before it, full horizons)."""
        hw = self.decision_weeks(horizon_weeks)
        out = decision_origins(origin, self.first_day, horizon_weeks=hw,
                               max_origins=DECISION_MAX_ORIGINS,
                               anchor_weeks=DECISION_ANCHOR_WEEKS)
        for d in out:  # the learner must never see the scored period
            assert d + pd.Timedelta(weeks=hw, days=6) <= origin, (d, origin)
        return out

    def tasks(self) -> list[tuple[pd.Timestamp, int]]:
        """Every (origin, horizon weeks) to forecast: scored and decision origins."""
        out: list[tuple[pd.Timestamp, int]] = []
        for origins, hw in self.scorings().values():
            for o in origins:
                out.append((o, hw))
                out.extend((d, self.decision_weeks(hw)) for d in self.decision_for(o, hw))
        return list(dict.fromkeys(out))


@dataclass
class DataSet:
    name: str
    daily: pd.DataFrame
    plan: Plan
    country: str  # calendar of the gradient-boosting features
    prophet_calendar: str  # "cn" or "none"
    truth: pd.DataFrame | None = None  # samples: the generator's spike windows
    note: str = ""
    categories: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        uids = sorted(self.daily["unique_id"].unique())
        self.categories = {u: SeriesId.parse(u).category for u in uids}


def _grid(counts: pd.DataFrame, first: pd.Timestamp, last: pd.Timestamp) -> pd.DataFrame:
    """Zero-fill every series over the source's whole range ``first..last``."""
    days = pd.date_range(first, last, freq="D")
    uids = sorted(counts["unique_id"].unique())
    idx = pd.MultiIndex.from_product([uids, days], names=["unique_id", "ds"])
    y = counts.groupby(["unique_id", "ds"])["y"].sum().reindex(idx, fill_value=0.0)
    return y.reset_index()


def _slug(s: pd.Series) -> pd.Series:
    return (s.fillna("blank").astype(str).str.strip().str.lower()
            .str.replace(r"[^a-z0-9]+", "_", regex=True).str.strip("_"))


def _busiest(daily: pd.DataFrame, n: int) -> pd.DataFrame:
    keep = daily.groupby("unique_id")["y"].sum().nlargest(n).index
    return daily[daily["unique_id"].isin(keep)].reset_index(drop=True)


def _quarters(first: str) -> tuple[pd.Timestamp, ...]:
    o = pd.Timestamp(first)
    return tuple(o + pd.Timedelta(weeks=13 * k) for k in range(4))


def load_samples(quick: bool) -> DataSet:
    raw = pd.read_csv(SAMPLES / "complaints.csv.gz",
                      usecols=["received_at", "category", "region"], dtype=str)
    ts = pd.to_datetime(raw["received_at"], utc=True).dt.tz_convert(DEFAULT_TIMEZONE)
    day = ts.dt.tz_localize(None).dt.normalize()
    counts = pd.DataFrame({"unique_id": SeriesId.compose("complaints", raw["category"],
                                                         raw["region"]),
                           "ds": day, "y": 1.0})
    daily = _grid(counts, day.min(), day.max())
    if quick:  # one region per category, round-robin over the regions: 10 series
        parts = SeriesId.split(pd.Series(daily["unique_id"].unique()))
        cats, regions = sorted(set(parts["category"])), sorted(set(parts["region"]))
        keep = {SeriesId.compose("complaints", c, regions[i % len(regions)])
                for i, c in enumerate(cats)}
        daily = daily[daily["unique_id"].isin(keep)].reset_index(drop=True)
    truth = pd.read_csv(SAMPLES / "truth_spikes.csv", parse_dates=["start", "end"])
    truth = truth[truth["unique_id"].isin(set(daily["unique_id"]))].reset_index(drop=True)
    plan = Plan(pd.Timestamp("2024-12-31"), _quarters("2024-12-29"), day.min())
    return DataSet("samples", daily, plan, "CN", "cn", truth=truth,
                   note=f"{daily['unique_id'].nunique()} category x league series, "
                        f"2025 scored")


CHICAGO_GRAINS = ("nature", "nature_ward", "ward")
BOSTON_GRAINS = ("neighbourhood", "police")


def load_chicago(grain: str, quick: bool) -> DataSet:
    files = sorted(CHICAGO.glob("chicago_311_sanitation_code_complaints_*.csv"))
    raw = pd.concat([pd.read_csv(f, usecols=["created_date", "violation_nature", "ward"],
                                 dtype=str) for f in files], ignore_index=True)
    nature = _slug(raw["violation_nature"])
    ward = raw["ward"].fillna("0").str.strip()
    if grain == "nature":
        uid = SeriesId.compose("complaints", nature, "chicago")
    elif grain == "ward":
        uid = SeriesId.compose("complaints", "sanitation", "ward" + ward)
    else:
        uid = SeriesId.compose("complaints", nature, "ward" + ward)
    ds = pd.to_datetime(raw["created_date"]).dt.normalize()
    daily = _grid(pd.DataFrame({"unique_id": uid, "ds": ds, "y": 1.0}), ds.min(), ds.max())
    total = daily.groupby("unique_id")["y"].sum()
    # nature: every nature with >= 1 a week; nature x ward: >= 300 records (FIELD-NOTES' 75
    # series); ward: every valid ward. Ward 0 marks an invalid code.
    floor = {"nature": 52 * 4, "nature_ward": 300, "ward": 0}[grain]
    keep = total[(total >= floor) & ~total.index.str.endswith("|ward0")].index
    daily = daily[daily["unique_id"].isin(keep)].reset_index(drop=True)
    if quick:
        daily = _busiest(daily, 8)
    plan = Plan(pd.Timestamp("2013-12-31"), _quarters("2013-12-29"), ds.min())
    return DataSet(f"chicago-{grain}", daily, plan, "US", "none",
                   note=f"{daily['unique_id'].nunique()} series, grain {grain}, 2014 scored")


def load_boston(grain: str, quick: bool) -> DataSet:
    """Boston 311 animal and pest requests, category x district, 2014-2019: the README's
    clean panel (the four "Animal ..." types start in 2013-10, so 2013 is left out)."""
    col = {"neighbourhood": "neighborhood_group", "police": "police_district"}[grain]
    files = sorted(BOSTON.glob("boston311_animal_pest_*.csv"))
    raw = pd.concat([pd.read_csv(f, usecols=["open_dt", "category", col], dtype=str)
                     for f in files], ignore_index=True)
    raw = raw[raw[col].fillna("").str.strip() != ""]
    ds = pd.to_datetime(raw["open_dt"]).dt.normalize()
    sel = ds >= pd.Timestamp("2014-01-01")
    uid = pd.Series(SeriesId.compose("complaints", _slug(raw["category"]), _slug(raw[col])))
    counts = pd.DataFrame({"unique_id": uid[sel], "ds": ds[sel], "y": 1.0})
    daily = _grid(counts, pd.Timestamp("2014-01-01"), pd.Timestamp("2019-12-31"))
    total = daily.groupby("unique_id")["y"].sum()
    daily = daily[daily["unique_id"].isin(total[total >= 300].index)].reset_index(drop=True)
    if quick:
        daily = _busiest(daily, 8)
    plan = Plan(pd.Timestamp("2018-12-31"), _quarters("2018-12-30"), pd.Timestamp("2014-01-01"))
    return DataSet(f"boston-{grain}", daily, plan, "US", "none",
                   note=f"{daily['unique_id'].nunique()} category x {col} series with >= 300 "
                        f"records 2014-2019, 2019 scored")


SETS = ("samples", *(f"chicago-{g}" for g in CHICAGO_GRAINS),
        *(f"boston-{g}" for g in BOSTON_GRAINS))


def set_names(spec: str) -> list[str]:
    """``samples,chicago,boston-police`` -> the set names (a city alone = all its grains)."""
    out: list[str] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        found = [s for s in SETS if s == part or s.startswith(part + "-")]
        if not found:
            raise SystemExit(f"unknown set {part!r} (choose from {', '.join(SETS)})")
        out.extend(f for f in found if f not in out)
    return out


def available(name: str) -> bool:
    return (SAMPLES / "complaints.csv.gz").exists() if name == "samples" else (
        CHICAGO if name.startswith("chicago") else BOSTON).exists()


def load_set(name: str, quick: bool) -> DataSet:
    if name == "samples":
        return load_samples(quick)
    city, grain = name.split("-", 1)
    return load_chicago(grain, quick) if city == "chicago" else load_boston(grain, quick)

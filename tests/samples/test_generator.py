"""The synthetic sample set: determinism, schemas, configuration, truth windows, dirty file."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
from datetime import date
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
import pytest
import yaml

from models.peaks import actual_spike_windows
from models.series import to_weekly
from service.samples import DEFAULT_SEED, generate
from service.samples.calendar import festival_dates
from service.samples.generator import (
    COMPLAINT_COLUMNS,
    ENFORCEMENT_COLUMNS,
    GAP_COLUMNS,
    PLANTED_COLUMNS,
    TRUTH_COLUMNS,
    expected_counts,
)
from tests.conftest import ROOT, SAMPLES

SOURCES = ROOT / "service" / "samples"
SHORT = {"start": date(2022, 1, 1), "end": date(2023, 12, 31)}
FILES = ["regions.yaml", "categories.yaml", "complaints.csv.gz", "enforcement.csv.gz",
         "planted_events.csv", "planted_gaps.csv", "truth_spikes.csv", "dirty_complaints.csv",
         "dirty_complaints.expected.json"]
CANONICAL = {"source", "external_id", "received_at", "category", "region", "sector", "channel",
             "text"}
LEAGUES = {"150100", "150200", "150300", "150400", "150500", "150600", "150700", "150800",
           "150900", "152200", "152500", "152900"}


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    out = tmp_path_factory.mktemp("samples_short")
    summary = generate(out, **SHORT)  # type: ignore[arg-type]
    return out, summary


@pytest.fixture(scope="module")
def complaints(short_run: tuple[Path, dict[str, object]]) -> pd.DataFrame:
    return pd.read_csv(short_run[0] / "complaints.csv.gz", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def categories() -> list[dict[str, object]]:
    doc = yaml.safe_load((SOURCES / "categories.yaml").read_text(encoding="utf-8"))
    cats: list[dict[str, object]] = doc["categories"]
    return cats


@pytest.fixture(scope="module")
def regions() -> list[dict[str, object]]:
    doc = yaml.safe_load((SOURCES / "regions.yaml").read_text(encoding="utf-8"))
    regs: list[dict[str, object]] = doc["regions"]
    return regs


def _digest(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in FILES}


def test_same_arguments_give_identical_bytes(
    short_run: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    again = generate(tmp_path, **SHORT)  # type: ignore[arg-type]
    assert _digest(tmp_path) == _digest(short_run[0])
    assert again == short_run[1]
    # gzip header carries no timestamp and no file name
    head = (tmp_path / "complaints.csv.gz").read_bytes()[:10]
    assert head[4:8] == b"\x00\x00\x00\x00"
    assert head[3] & 0x08 == 0


def test_another_seed_gives_other_data(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", seed=1, start=date(2023, 1, 1), end=date(2023, 3, 31))
    b = generate(tmp_path / "b", seed=2, start=date(2023, 1, 1), end=date(2023, 3, 31))
    assert (tmp_path / "a" / "complaints.csv.gz").read_bytes() != \
        (tmp_path / "b" / "complaints.csv.gz").read_bytes()
    assert a["files"] != b["files"]


def test_scale_changes_volume(tmp_path: Path) -> None:
    args = {"start": date(2023, 1, 1), "end": date(2023, 3, 31)}
    small = generate(tmp_path / "s", scale=0.5, **args)  # type: ignore[arg-type]
    big = generate(tmp_path / "b", scale=2.0, **args)  # type: ignore[arg-type]
    rows_small = small["rows"]["complaints.csv.gz"]  # type: ignore[index]
    rows_big = big["rows"]["complaints.csv.gz"]  # type: ignore[index]
    assert 2.5 < rows_big / rows_small < 6.0


def test_summary_lists_every_file(short_run: tuple[Path, dict[str, object]]) -> None:
    out, summary = short_run
    files = summary["files"]
    assert isinstance(files, dict)
    assert sorted(files) == sorted(FILES)
    for name in FILES:
        assert (out / name).stat().st_size == files[name]


def test_complaints_schema(complaints: pd.DataFrame, categories: list[dict[str, object]]) -> None:
    assert list(complaints.columns) == COMPLAINT_COLUMNS
    assert set(complaints["source"]) == {"12345-hotline", "web-portal"}
    assert (complaints["source"] == "web-portal").mean() < 0.1
    assert not complaints.duplicated(["source", "external_id"]).any()
    assert complaints["received_at"].str.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00").all()
    ts = pd.to_datetime(complaints["received_at"])
    assert ts.min() >= pd.Timestamp("2022-01-01T00:00:00+08:00")
    assert ts.max() <= pd.Timestamp("2023-12-31T23:59:59+08:00")
    assert ts.is_monotonic_increasing
    codes = {str(c["code"]) for c in categories}
    assert set(complaints["category"]) == codes
    assert set(complaints["region"]) == LEAGUES
    assert set(complaints["channel"]) <= {"phone", "web", "app", "wechat"}
    sectors = {str(c["code"]): str(c["sector"]) for c in categories}
    assert (complaints["sector"] == complaints["category"].map(sectors)).all()
    assert (complaints["text"].str.len() > 8).all()
    assert complaints["text"].nunique() > len(complaints) // 5


def test_office_hours_and_workdays_dominate(complaints: pd.DataFrame) -> None:
    hours = complaints["received_at"].str.slice(11, 13).astype(int)
    assert ((hours >= 8) & (hours < 18)).mean() > 0.6
    assert (hours < 6).mean() < 0.05
    food = complaints[complaints["category"] == "food_safety"]
    day = pd.to_datetime(food["received_at"].str.slice(0, 10))
    per_day = day.value_counts()
    dow = pd.DatetimeIndex(per_day.index).day_of_week
    weekday_mean = float(per_day[dow < 5].mean())
    weekend_mean = float(per_day[dow >= 5].mean())
    assert weekday_mean > 1.1 * weekend_mean


def test_some_texts_carry_personal_data(complaints: pd.DataFrame) -> None:
    text = complaints["text"]
    phone = text.str.contains(r"联系电话1[3-9]\d{9}")
    id_no = text.str.contains(r"\d{17}[\dX]")
    email = text.str.contains(r"[\w.]+@example\.(?:com|net|org)")
    share = (phone | id_no | email).mean()
    assert 0.002 < share < 0.01
    assert phone.any() and id_no.any() and email.any()


def test_enforcement_schema(short_run: tuple[Path, dict[str, object]]) -> None:
    frame = pd.read_csv(short_run[0] / "enforcement.csv.gz", dtype=str, keep_default_na=False)
    assert list(frame.columns) == ENFORCEMENT_COLUMNS
    assert set(frame["action"]) == {"inspection", "warning", "correction_order", "penalty"}
    assert set(frame["violation_found"]) == {"True", "False"}
    sanctions = frame["action"].isin(["warning", "correction_order", "penalty"])
    assert (frame.loc[sanctions, "violation_found"] == "True").all()
    ids = frame["entity_id"]
    assert ids[ids != ""].str.fullmatch(r"E\d{6}-\d{5}").all()
    assert (ids == "").any()
    assert (ids[ids != ""].str.slice(1, 7) == frame.loc[ids != "", "region"]).all()
    assert not frame["external_id"].duplicated().any()
    assert frame["occurred_at"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00").all()
    assert set(frame["region"]) == LEAGUES


def test_inspections_follow_complaints(
    short_run: tuple[Path, dict[str, object]], complaints: pd.DataFrame
) -> None:
    enf = pd.read_csv(short_run[0] / "enforcement.csv.gz", dtype=str, keep_default_na=False)

    def weekly(frame: pd.DataFrame, col: str) -> pd.Series:
        day = pd.to_datetime(frame[col].str.slice(0, 10))
        return day.dt.to_period("W").value_counts().sort_index()

    sel = (complaints["category"] == "fireworks")
    comp = weekly(complaints[sel], "received_at")
    insp = weekly(enf[enf["category"] == "fireworks"], "occurred_at")
    joined = pd.concat([comp, insp], axis=1, keys=["c", "i"]).fillna(0)
    assert joined["c"].corr(joined["i"]) > 0.5


def test_planted_events(short_run: tuple[Path, dict[str, object]]) -> None:
    frame = pd.read_csv(short_run[0] / "planted_events.csv")
    assert list(frame.columns) == PLANTED_COLUMNS
    assert frame["unique_id"].str.fullmatch(r"complaints\|[a-z_]+\|\d{6}").all()
    assert (pd.to_datetime(frame["start"]) <= pd.to_datetime(frame["end"])).all()
    assert (frame["multiplier"] > 1.0).all()
    assert frame["one_off"].dtype == bool
    assert frame["one_off"].any() and not frame["one_off"].all()
    gaps = pd.read_csv(short_run[0] / "planted_gaps.csv", dtype=str)
    assert list(gaps.columns) == GAP_COLUMNS


def test_lunar_seasons_follow_the_calendar(short_run: tuple[Path, dict[str, object]]) -> None:
    frame = pd.read_csv(short_run[0] / "planted_events.csv")
    sf = frame[(frame["driver"] == "spring_festival")
               & (frame["unique_id"] == "complaints|fireworks|150100")]
    ends = sorted(pd.to_datetime(sf["end"]).dt.date)
    # Spring Festival 2022-02-01, 2023-01-22: the surge ends a few days after
    assert any(date(2022, 2, 2) <= e <= date(2022, 2, 12) for e in ends)
    assert any(date(2023, 1, 23) <= e <= date(2023, 2, 2) for e in ends)


def test_weather_seasons_move_between_years(short_run: tuple[Path, dict[str, object]]) -> None:
    frame = pd.read_csv(short_run[0] / "planted_events.csv")
    spring = frame[(frame["driver"] == "spring_fire_season")
                   & (frame["unique_id"] == "complaints|grassland_fire|152500")]
    doy = pd.to_datetime(spring["start"]).dt.day_of_year.tolist()
    sizes = spring["multiplier"].tolist()
    assert len(doy) >= 2
    assert len(set(doy)) > 1 and len(set(sizes)) > 1


def test_fireworks_peak_before_spring_festival(complaints: pd.DataFrame) -> None:
    fw = complaints[complaints["category"] == "fireworks"]
    day = pd.to_datetime(fw["received_at"].str.slice(0, 10))
    before = day.between(pd.Timestamp("2023-01-01"), pd.Timestamp("2023-01-28")).sum() / 4
    weekly_mean = day.between(pd.Timestamp("2023-03-01"),
                              pd.Timestamp("2023-11-30")).sum() / (275 / 7)
    assert before > 4 * weekly_mean


def test_truth_spikes_match_models_peaks(
    short_run: tuple[Path, dict[str, object]], complaints: pd.DataFrame
) -> None:
    truth = pd.read_csv(short_run[0] / "truth_spikes.csv")
    assert list(truth.columns) == TRUTH_COLUMNS
    days = pd.date_range(SHORT["start"], SHORT["end"], freq="D")
    counts = (complaints.assign(ds=pd.to_datetime(complaints["received_at"].str.slice(0, 10)),
                                unique_id="complaints|" + complaints["category"] + "|"
                                + complaints["region"])
              .groupby(["unique_id", "ds"]).size())
    uids = sorted(complaints["category"].unique())
    full = pd.MultiIndex.from_product(
        [[f"complaints|{c}|{r}" for c in uids for r in sorted(LEAGUES)], days],
        names=["unique_id", "ds"])
    daily = counts.reindex(full, fill_value=0).rename("y").astype(float).reset_index()
    expected = actual_spike_windows(to_weekly(daily))
    got = truth[["unique_id", "start", "end", "peak_week", "peak_count", "threshold"]].copy()
    for col in ("start", "end", "peak_week"):
        expected[col] = pd.to_datetime(expected[col]).dt.strftime("%Y-%m-%d")
    pd.testing.assert_frame_equal(got.reset_index(drop=True),
                                  expected.reset_index(drop=True), check_dtype=False)
    assert len(truth) > 50
    assert truth["planted"].mean() > 0.7
    assert (truth.loc[~truth["planted"], "driver"] == "none").all()
    assert not (truth["one_off"] & ~truth["planted"]).any()


def test_categories_config(categories: list[dict[str, object]]) -> None:
    codes = [str(c["code"]) for c in categories]
    assert len(codes) >= 9 and len(set(codes)) == len(codes)
    required = {"fireworks", "migrant_wages", "grassland_fire", "tourism_pricing", "food_safety",
                "gas_safety", "illegal_fishing", "exam_noise", "wildlife_poaching"}
    assert required <= set(codes)
    for cat in categories:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", str(cat["code"]))
        for key in ("name_zh", "name_en", "sector", "requirements", "advice"):
            assert isinstance(cat[key], str) and cat[key], (cat["code"], key)
        aliases = cat["aliases"]
        assert isinstance(aliases, list) and aliases
        basis = cat["legal_basis"]
        assert isinstance(basis, list) and basis, cat["code"]
        for item in basis:
            assert str(item["title"]).startswith("《") and str(item["title"]).endswith("》")
            assert str(item["articles"]).strip()
        lead = cat.get("lead_days", 14)
        assert isinstance(lead, int) and 7 <= lead <= 60
        templates = cat["templates"]
        assert isinstance(templates, dict) and "default" in templates


def test_templates_render_lawful_reminders(
    categories: list[dict[str, object]], regions: list[dict[str, object]]
) -> None:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    hohhot = next(r for r in regions if r["code"] == "150100")
    for cat in categories:
        templates = cat["templates"]
        assert isinstance(templates, dict)
        basis = cat["legal_basis"]
        assert isinstance(basis, list)
        text = env.from_string(str(templates["default"])).render(
            category=cat, region=hohhot, window_start=date(2024, 1, 15),
            window_end=date(2024, 2, 11), send_date=date(2023, 12, 25), expected_count=42.4,
            probability=0.73, legal_basis=basis)
        assert "呼和浩特市" in text and str(cat["name_zh"]) in text
        assert "2024-01-15" in text and "73%" in text and "42件" in text
        for item in basis:
            assert str(item["title"]) in text
        assert "不设定新的义务" in text and "不收取任何费用" in text
        # no coercion, no fees
        for word in ("缴纳", "押金", "保证金缴纳", "必须于", "否则将"):
            assert word not in text
        no_numbers = env.from_string(str(templates["default"])).render(
            category=cat, region=hohhot, window_start=date(2024, 1, 15),
            window_end=date(2024, 2, 11), send_date=date(2023, 12, 25), expected_count=None,
            probability=None, legal_basis=basis)
        assert "预计" not in no_numbers


def test_regions_config(regions: list[dict[str, object]]) -> None:
    by_code = {str(r["code"]): r for r in regions}
    assert len(by_code) == len(regions)
    for reg in regions:
        assert re.fullmatch(r"\d{6}", str(reg["code"]))
        parent = reg["parent"]
        if reg["level"] == "province":
            assert parent is None
        else:
            assert str(parent) in by_code
        assert isinstance(reg["population"], int) and reg["population"] > 0
        assert isinstance(reg["aliases"], list)
    assert by_code["150000"]["name_zh"] == "内蒙古自治区"
    leagues = {c for c, r in by_code.items() if r["level"] == "league"}
    assert leagues == LEAGUES
    assert all(by_code[c]["parent"] == "150000" for c in leagues)
    counties = {c for c, r in by_code.items() if r["level"] == "county"}
    assert {"150102", "150105", "150121", "150125"} <= counties
    assert all(by_code[c]["parent"] == "150100" for c in counties)
    assert "呼市" in by_code["150100"]["aliases"]  # type: ignore[operator]
    league_pop = sum(int(by_code[c]["population"]) for c in leagues)  # type: ignore[call-overload]
    assert abs(league_pop - int(by_code["150000"]["population"])) < 0.01 * league_pop  # type: ignore[call-overload]


def test_dirty_file_and_answer_key(short_run: tuple[Path, dict[str, object]]) -> None:
    raw = (short_run[0] / "dirty_complaints.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    rows = list(csv.reader(io.StringIO(raw.decode("gb18030"), newline="")))
    header, data = rows[0], rows[1:]
    assert header[:7] == ["工单编号", "受理时间", "问题类别", "所属地区", "行业", "受理渠道",
                          "投诉内容"]
    assert 40 <= len(data) <= 80
    key = json.loads((short_run[0] / "dirty_complaints.expected.json").read_text("utf-8"))
    assert [k["row"] for k in key] == list(range(1, len(data) + 1))
    outcomes = {k["outcome"] for k in key}
    assert outcomes == {"accepted", "rejected", "duplicate"}
    problems = {k["problem"] for k in key if k["outcome"] == "rejected"}
    assert problems == {"unparseable_timestamp", "unknown_category", "unknown_region",
                        "missing_value"}
    seen: set[tuple[str, ...]] = set()
    codes = {str(c["code"]) for c in yaml.safe_load(
        (SOURCES / "categories.yaml").read_text("utf-8"))["categories"]}
    region_codes = {str(r["code"]) for r in yaml.safe_load(
        (SOURCES / "regions.yaml").read_text("utf-8"))["regions"]}
    for item, row in zip(key, data, strict=True):
        if item["outcome"] == "duplicate":
            assert tuple(row) in seen
        else:
            assert tuple(row) not in seen
        seen.add(tuple(row))
        if item["outcome"] == "rejected":
            assert item["field"] in CANONICAL
        if item["outcome"] == "accepted":
            exp = item["expected"]
            assert exp["category"] in codes and exp["region"] in region_codes
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00", exp["received_at"])
            assert exp["external_id"] == row[0]
    assert any(k["pii"] for k in key)
    texts = [row[1] for row in data]
    assert "45123.58" in texts and any("年" in t and "时" in t for t in texts)


def test_excel_serial_dates_decode() -> None:
    from service.samples.dirty import _excel
    assert _excel(45123.58) == "2023-07-16T13:55:12+08:00"
    assert _excel(44935.4375) == "2023-01-09T10:30:00+08:00"


def test_festival_dates_from_holidays() -> None:
    fest = festival_dates(range(2019, 2027))
    assert [fest[y].spring_festival for y in range(2019, 2027)] == [
        date(2019, 2, 5), date(2020, 1, 25), date(2021, 2, 12), date(2022, 2, 1),
        date(2023, 1, 22), date(2024, 2, 10), date(2025, 1, 29), date(2026, 2, 17)]
    assert fest[2025].mid_autumn == date(2025, 10, 6)
    assert fest[2024].dragon_boat == date(2024, 6, 10)


def test_committed_config_matches_sources() -> None:
    if not (SAMPLES / "complaints.csv.gz").exists():
        pytest.fail("data/samples is not generated; run forewarn samples generate")
    for name in ("regions.yaml", "categories.yaml"):
        assert (SAMPLES / name).read_bytes() == (SOURCES / name).read_bytes()
    size = sum((SAMPLES / n).stat().st_size for n in ("complaints.csv.gz",
                                                         "enforcement.csv.gz"))
    assert size < 6.5e6
    with gzip.open(SAMPLES / "complaints.csv.gz", "rt", encoding="utf-8") as fh:
        assert fh.readline().strip() == ",".join(COMPLAINT_COLUMNS)


@pytest.mark.slow
def test_committed_files_equal_default_generation(tmp_path: Path) -> None:
    generate(tmp_path, seed=DEFAULT_SEED)
    assert _digest(tmp_path) == _digest(SAMPLES)


def test_expected_counts_are_what_the_counts_were_drawn_from(
    short_run: tuple[Path, dict[str, object]], complaints: pd.DataFrame,
) -> None:
    """The oracle's expected counts (bench/_oracle.py) match the drawn counts: per series the
    totals agree within sampling noise, gap days expect (almost) nothing, and seasons show."""
    exp = expected_counts(**SHORT)  # type: ignore[arg-type]
    assert list(exp.columns) == ["unique_id", "ds", "mu", "dispersion"]
    assert len(exp) == int(short_run[1]["series"]) * 730  # type: ignore[call-overload]
    assert (exp["mu"] >= 0).all() and (exp["dispersion"] > 0).all()
    local = pd.to_datetime(complaints["received_at"], utc=True).dt.tz_convert("Asia/Shanghai")
    drawn = (("complaints|" + complaints["category"] + "|" + complaints["region"])
             .groupby(local.dt.year.to_numpy()).value_counts())
    expected = exp.groupby([exp["ds"].dt.year, "unique_id"])["mu"].sum()
    both = pd.concat([drawn.rename("n"), expected.rename("mu")], axis=1).fillna(0.0)
    big = both[both["mu"] > 200]
    assert len(big) > 50
    # gamma-Poisson totals over a year: well within 25 % of their expectation
    assert ((big["n"] - big["mu"]).abs() / big["mu"]).max() < 0.25
    assert abs(big["n"].sum() / big["mu"].sum() - 1.0) < 0.02
    # a league missing from the data expects nothing; a hotline outage only the web share
    gaps = pd.read_csv(short_run[0] / "planted_gaps.csv", parse_dates=["start", "end"],
                       dtype={"region": str})
    assert len(gaps)
    for region, g0, g1 in zip(gaps["region"], gaps["start"], gaps["end"], strict=True):
        start, end = pd.Timestamp(g0), pd.Timestamp(g1)
        days = (exp["ds"] >= start) & (exp["ds"] <= end)
        if region == "all":
            before = (exp["ds"] >= start - pd.Timedelta(days=14)) & (exp["ds"] < start)
            assert exp.loc[days, "mu"].mean() < 0.1 * exp.loc[before, "mu"].mean()
        else:
            assert (exp.loc[days & exp["unique_id"].str.endswith(f"|{region}"),
                            "mu"] == 0).all()


def test_expected_counts_without_surprises(short_run: tuple[Path, dict[str, object]]) -> None:
    """``surprises=False`` (the seasonal oracle of bench/accuracy.py): the one-off surges and
    the latent weekly wander are gone, everything else is the same expectation."""
    full = expected_counts(**SHORT)  # type: ignore[arg-type]
    seasonal = expected_counts(surprises=False, **SHORT)  # type: ignore[arg-type]
    assert full[["unique_id", "ds", "dispersion"]].equals(
        seasonal[["unique_id", "ds", "dispersion"]])
    assert ((full["mu"] == 0) == (seasonal["mu"] == 0)).all()  # the same gaps
    ratio = (full["mu"] / seasonal["mu"]).where(full["mu"] > 0)
    events = pd.read_csv(short_run[0] / "planted_events.csv", parse_dates=["start", "end"])
    one_off = events[events["one_off"].astype(bool)]
    assert len(one_off) >= 5
    in_surge = np.zeros(len(full), dtype=bool)
    for uid, start, end in zip(one_off["unique_id"], one_off["start"], one_off["end"],
                               strict=True):
        in_surge |= ((full["unique_id"] == uid) & (full["ds"] >= start)
                     & (full["ds"] <= end)).to_numpy()
    # elsewhere only the latent wander differs: one factor per series and ISO week, near 1
    rest = ratio[~in_surge].dropna()
    week = full["ds"] - pd.to_timedelta(full["ds"].dt.day_of_week, unit="D")
    spread = rest.groupby([full["unique_id"][rest.index], week[rest.index]]).agg(
        lambda s: s.max() - s.min())
    assert spread.max() < 1e-9
    assert 0.9 < rest.median() < 1.1 and rest.quantile(0.99) < 2.0
    assert rest.std() > 0.05  # the wander is really there in the full expectation
    # inside a one-off surge the full expectation is several times the seasonal one
    assert ratio[in_surge].mean() > 2.0

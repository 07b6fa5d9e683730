"""Issue 12 §1 end to end: samples + Chicago 311 + a second year of Chicago imported later.

Two databases go through the real import and a real forecast run (``execute_run``, Prophet):
one with sample series only, one with the same sample series plus Chicago 311 sanitation
complaints of one ward for 2013 and, imported later under the same source, for 2014. Every
sample series' forecast (daily points, weekly P(spike) and thresholds, peaks) must be
identical in both; the Chicago series are forecast from their own data end.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.dashboard.png import render_forecast_png
from service.db import make_engine, make_sessionmaker
from service.evaluation import series_chart
from service.forecasting import create_run, execute_run
from service.ingest.pipeline import import_file
from service.migrate import upgrade
from service.store.reference import load_reference
from service.store.series import daily_frame, series_counts
from service.store.tables import ForecastPoint, ForecastRun, ForecastWeek, Peak

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "data" / "samples"
CHICAGO = ROOT.parent / "shared" / "data" / "chicago_311"
SAMPLE_SERIES = ("complaints|fireworks|150100", "complaints|food_safety|150200")
CHICAGO_MAP = {"external_id": "service_request_number", "received_at": "created_date",
               "category": "violation_nature", "region": "ward"}


def _chicago_slice(year: int, out: Path) -> Path:
    src = CHICAGO / f"chicago_311_sanitation_code_complaints_{year}.csv"
    if not src.exists():
        pytest.skip(f"Chicago 311 data not found in {CHICAGO} (../shared is absent)")
    frame = pd.read_csv(src, dtype=str, keep_default_na=False)
    frame[frame["ward"] == "1"].to_csv(out, index=False)
    return out


def _samples_slice(out: Path) -> Path:
    frame = pd.read_csv(SAMPLES / "complaints.csv.gz", dtype=str, keep_default_na=False)
    ids = frame["category"] + "|" + frame["region"]
    keep = ids.isin([s.split("|", 1)[1] for s in SAMPLE_SERIES])
    frame[keep].to_csv(out, index=False)
    return out


def _database(path: Path, settings: Settings) -> sessionmaker[Session]:
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    factory = make_sessionmaker(engine)
    with factory() as s:
        load_reference(session=s, categories_file=settings.categories_file,
                       regions_file=settings.regions_file)
    return factory


def _forecast(factory: sessionmaker[Session], settings: Settings) -> str:
    with factory() as s:
        run = create_run(session=s, settings=settings, horizon_days=56, engine="serial",
                         signals=["complaints"])
    done = execute_run(session_factory=factory, run_id=run.id, settings=settings)
    assert done.status in ("succeeded", "partial"), done.error
    return done.id


def _rows(factory: sessionmaker[Session], run_id: str, table: type, cols: list[str],
          series: tuple[str, ...]) -> pd.DataFrame:
    with factory() as s:
        stmt = select(*(getattr(table, c) for c in cols)).where(
            table.run_id == run_id, table.series_id.in_(series))  # type: ignore[attr-defined]
        out = pd.DataFrame(s.execute(stmt).all(), columns=cols)
    return out.sort_values(cols[:2]).reset_index(drop=True)


def test_sample_forecasts_do_not_change_with_other_sources(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, categories_file=SAMPLES / "categories.yaml",
                        regions_file=SAMPLES / "regions.yaml", log_json=False)
    chicago_2013 = _chicago_slice(2013, tmp_path / "chicago_2013.csv")
    chicago_2014 = _chicago_slice(2014, tmp_path / "chicago_2014.csv")
    samples = _samples_slice(tmp_path / "samples.csv")

    alone = _database(tmp_path / "alone.db", settings)
    mixed = _database(tmp_path / "mixed.db", settings)
    for factory in (alone, mixed):
        import_file(session_factory=factory, kind="complaints", path=samples)
    # a yearly export covers its whole year (ward 1's last 2013 record is on Dec 27)
    import_file(session_factory=mixed, kind="complaints", path=chicago_2013,
                source="chicago-311", mapping=CHICAGO_MAP, register_new=True,
                coverage="2013-01-01..2013-12-31")
    with mixed() as s:
        ward = daily_frame(session=s, signal="complaints")
    chicago_ids = sorted(set(ward["unique_id"]) - set(SAMPLE_SERIES))
    assert chicago_ids and ward[ward["unique_id"].isin(chicago_ids)]["ds"].max() == \
        pd.Timestamp("2013-12-31")
    # the second year, imported later under the same source, extends its coverage
    import_file(session_factory=mixed, kind="complaints", path=chicago_2014,
                source="chicago-311", mapping=CHICAGO_MAP, register_new=True,
                coverage="2014-01-01..2014-12-31")

    with alone() as s:
        before = daily_frame(session=s, signal="complaints")
    with mixed() as s:
        after = daily_frame(session=s, signal="complaints")
        one = series_counts(session=s, series_id=chicago_ids[0])
    mine = after[after["unique_id"].isin(SAMPLE_SERIES)].reset_index(drop=True)
    pd.testing.assert_frame_equal(before, mine)
    chicago = after[after["unique_id"].isin(chicago_ids)]
    assert chicago["ds"].min() == pd.Timestamp("2013-01-01")
    assert chicago["ds"].max() == pd.Timestamp("2014-12-31")
    assert one["date"].iloc[0] == dt.date(2013, 1, 1) and len(one) == 730

    run_alone, run_mixed = _forecast(alone, settings), _forecast(mixed, settings)
    point_cols = ["series_id", "ds", "yhat", "yhat_lower", "yhat_upper", "model"]
    week_cols = ["series_id", "week", "expected", "p_spike", "threshold"]
    peak_cols = ["series_id", "start", "end", "peak_week", "expected_count",
                 "max_probability", "threshold"]
    for table, cols in ((ForecastPoint, point_cols), (ForecastWeek, week_cols),
                        (Peak, peak_cols)):
        a = _rows(alone, run_alone, table, cols, SAMPLE_SERIES)
        b = _rows(mixed, run_mixed, table, cols, SAMPLE_SERIES)
        if table is not Peak:
            assert len(a) > 0
        pd.testing.assert_frame_equal(a, b)
    samples_end = before["ds"].max().date()
    with mixed() as s:
        run = s.get(ForecastRun, run_mixed)
        assert run is not None and run.train_until == samples_end
        first = dict(s.execute(select(ForecastPoint.series_id, func.min(ForecastPoint.ds))
                               .where(ForecastPoint.run_id == run_mixed)
                               .group_by(ForecastPoint.series_id)).all())
        thresholds = dict(s.execute(select(ForecastWeek.series_id, ForecastWeek.threshold)
                                    .where(ForecastWeek.run_id == run_mixed)).all())
    # each series is forecast from its own data end, with a threshold from its own weeks
    assert {first[c] for c in chicago_ids if c in first} == {dt.date(2015, 1, 1)}
    assert {first[c] for c in SAMPLE_SERIES} == {samples_end + dt.timedelta(days=1)}
    assert any(c in thresholds for c in chicago_ids)
    # the chart (dashboard and forecast.png) follows each series' own data window
    with mixed() as s:
        cc = series_chart(session=s, series_id=chicago_ids[0], history_weeks=520)
        sc = series_chart(session=s, series_id=SAMPLE_SERIES[0], history_weeks=52)
    assert (cc["data_from"], cc["data_to"]) == (dt.date(2013, 1, 1), dt.date(2014, 12, 31))
    assert cc["history"][0]["week"] == dt.date(2013, 1, 7)  # the first complete week
    assert cc["history"][-1]["week"] == dt.date(2014, 12, 22)
    assert cc["forecast"][0]["week"] >= dt.date(2014, 12, 29)
    assert sc["data_to"] == samples_end and len(sc["history"]) <= 52
    assert sc["history"][0]["week"] > dt.date(2025, 1, 1)
    assert render_forecast_png(cc).startswith(b"\x89PNG")

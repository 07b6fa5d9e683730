"""Sources, coverage and the series summary (DESIGN.md "Sources and coverage").

On SQLite and PostgreSQL (``db_url``): the summary equals a GROUP BY over the records after
several imports (and after :func:`rebuild`), coverage is derived or declared, a day nobody
covers is missing (not zero), another source never changes a series it does not touch, and
the listing pages in SQL.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text
from sqlalchemy import insert as sa_insert
from sqlalchemy.orm import Session, sessionmaker

from models.baselines import SeasonalNaive
from service.api.app import create_app
from service.config import Settings
from service.dashboard.png import render_forecast_png
from service.db import make_sessionmaker
from service.errors import BadRequest, UnprocessableContent
from service.evaluation import series_chart
from service.ingest.pipeline import import_file
from service.store.keys import create_key
from service.store.reference import load_reference
from service.store.series import daily_frame, list_series, series_counts, series_page
from service.store.summary import rebuild, series_coverage
from service.store.tables import (
    Complaint,
    EnforcementAction,
    ImportBatch,
    SeriesSource,
    SourceCoverage,
)
from tests.conftest import insert_reference_sql

_HEADER = ["external_id", "received_at", "category", "region"]


def _write(path: Path, rows: Sequence[Sequence[str]], header: list[str] = _HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _daily_rows(prefix: str, cat: str, region: str, start: dt.date, days: int,
                per_day: int = 1, every: int = 1) -> list[tuple[str, str, str, str]]:
    """``per_day`` complaints on every ``every``-th day from ``start``."""
    out = []
    for i in range(0, days, every):
        d = start + dt.timedelta(days=i)
        out += [(f"{prefix}-{cat}-{region}-{i}-{k}", f"{d.isoformat()} 10:00", cat, region)
                for k in range(per_day)]
    return out


@pytest.fixture
def sf(engine: Engine, settings: Settings) -> Iterator[sessionmaker[Session]]:
    factory = make_sessionmaker(engine)
    with factory() as s:
        load_reference(session=s, categories_file=settings.categories_file,
                       regions_file=settings.regions_file)
    yield factory


def _import(sf: sessionmaker[Session], path: Path, source: str | None, *,
            kind: Any = "complaints", coverage: str | None = None, force: bool = False) -> Any:
    return import_file(session_factory=sf, kind=kind, path=path, source=source,
                       coverage=coverage, force=force)


def _summary(s: Session) -> set[tuple[Any, ...]]:
    return {(r.series_id, r.source, r.signal, r.category, r.region, r.first_day, r.last_day,
             r.total) for r in s.scalars(select(SeriesSource))}


def _group_by(s: Session) -> set[tuple[Any, ...]]:
    out = set()
    for signal, table, cond in (("complaints", Complaint, None),
                                ("violations", EnforcementAction,
                                 EnforcementAction.violation_found.is_(True))):
        stmt = select(table.category, table.region, table.source, func.min(table.day),
                      func.max(table.day), func.count()).group_by(
            table.category, table.region, table.source)
        if cond is not None:
            stmt = stmt.where(cond)
        out |= {(f"{signal}|{c}|{r}", src, signal, c, r, a, b, n)
                for c, r, src, a, b, n in s.execute(stmt)}
    return out


def test_summary_matches_group_by_after_several_imports(sf: sessionmaker[Session],
                                                         tmp_path: Path) -> None:
    jan = dt.date(2024, 1, 1)
    a = _write(tmp_path / "a.csv", _daily_rows("a", "fireworks", "150100", jan, 31)
               + _daily_rows("a", "food_safety", "150200", jan, 31, every=3))
    b = _write(tmp_path / "b.csv", _daily_rows("b", "fireworks", "150100",
                                                dt.date(2024, 1, 20), 30, per_day=2))
    # a file naming its sources per row, one of them new
    mixed = _write(tmp_path / "mixed.csv", [
        ("m1", "2024-02-01 09:00", "fireworks", "150100", "hotline"),
        ("m2", "2024-02-03 09:00", "fireworks", "150100", "app"),
        ("m3", "2024-02-05 09:00", "gas_safety", "152900", "app")],
        header=[*_HEADER, "source"])
    actions = _write(tmp_path / "actions.csv", [
        (f"e{i}", f"2024-01-{i + 1:02d} 10:00", "fireworks", "150100", "inspection",
         "yes" if i % 2 else "no") for i in range(10)],
        header=["external_id", "occurred_at", "category", "region", "action",
                "violation_found"])
    _import(sf, a, "a")
    _import(sf, b, "b")
    # every row a duplicate (the same file, forced): the summary must not count it twice
    again = _import(sf, a, "a", force=True)
    assert again.inserted == 0 and again.duplicates == again.received
    # a chunk with some rows already stored, some new, and an in-file repeat: the chunk
    # is read back through the key range it inserted
    old = _daily_rows("a", "fireworks", "150100", jan, 31)[::2]
    new = _daily_rows("n", "gas_safety", "152900", dt.date(2024, 3, 1), 10)
    partial = _import(sf, _write(tmp_path / "partial.csv", old + new + new[:1]), "a")
    assert (partial.inserted, partial.duplicates) == (10, len(old) + 1)
    _import(sf, mixed, None)
    _import(sf, actions, "inspections", kind="enforcement")
    _import(sf, _write(tmp_path / "actions2.csv", [
        (f"e{i}", f"2024-03-{i + 1:02d} 10:00", "fireworks", "150100", "warning", "yes")
        for i in range(5, 15)], header=["external_id", "occurred_at", "category", "region",
                                         "action", "violation_found"]),
        "inspections", kind="enforcement")
    with sf() as s:
        summary = _summary(s)
        assert summary == _group_by(s)
        assert ("violations|fireworks|150100", "inspections", "violations", "fireworks",
                "150100", dt.date(2024, 1, 2), dt.date(2024, 3, 15), 10) in summary
        assert ("complaints|gas_safety|152900", "a", "complaints", "gas_safety", "152900",
                dt.date(2024, 3, 1), dt.date(2024, 3, 10), 10) in summary
        assert {r[1] for r in summary if r[0] == "complaints|fireworks|150100"} == {
            "a", "b", "hotline", "app"}
        # rebuilding from the records gives the same summary and the same coverage
        cover = sorted((c.signal, c.source, c.day_from, c.day_to)
                       for c in s.scalars(select(SourceCoverage)))
        rebuild(s.connection())
        s.commit()
        assert _summary(s) == summary
        assert sorted((c.signal, c.source, c.day_from, c.day_to)
                      for c in s.scalars(select(SourceCoverage))) == cover
        # enforcement coverage counts every action, also those that found no violation
        assert ("violations", "inspections", dt.date(2024, 1, 1),
                dt.date(2024, 1, 10)) in cover
        # the partly duplicate import covers the days of the records it added
        assert ("complaints", "a", dt.date(2024, 3, 1), dt.date(2024, 3, 10)) in cover


def test_a_day_nobody_covers_is_missing_not_zero(sf: sessionmaker[Session],
                                                   tmp_path: Path) -> None:
    # source a: January, every other day; source b: March, only 150100
    _import(sf, _write(tmp_path / "a.csv",
                       _daily_rows("a", "fireworks", "150100", dt.date(2024, 1, 1), 31, every=2)
                       + _daily_rows("a", "food_safety", "150200", dt.date(2024, 1, 1), 31,
                                     every=5)), "a")
    _import(sf, _write(tmp_path / "b.csv",
                       _daily_rows("b", "fireworks", "150100", dt.date(2024, 3, 1), 31,
                                   every=4)), "b")
    with sf() as s:
        frame = daily_frame(session=s, signal="complaints")
        counts = series_counts(session=s, series_id="complaints|fireworks|150100")
        weekly = series_counts(session=s, series_id="complaints|fireworks|150100", freq="W")
    fw = frame[frame["unique_id"] == "complaints|fireworks|150100"].set_index("ds")["y"]
    food = frame[frame["unique_id"] == "complaints|food_safety|150200"].set_index("ds")["y"]
    # zero-filled inside each source's coverage ...
    assert fw[pd.Timestamp("2024-01-02")] == 0 and fw[pd.Timestamp("2024-01-03")] == 1
    assert fw[pd.Timestamp("2024-03-02")] == 0 and fw[pd.Timestamp("2024-03-05")] == 1
    # ... and February, which no source of the series covers, is missing
    assert not (pd.DatetimeIndex(fw.index).month == 2).any()
    assert len(fw) == 31 + 29  # Jan 1 - Jan 31 and Mar 1 - Mar 29 (b's last record)
    assert not fw.isna().any()
    # source b does not extend food_safety (not its source): January only
    assert food.index.min() == pd.Timestamp("2024-01-01")
    assert food.index.max() == pd.Timestamp("2024-01-31")
    assert pd.Timestamp("2024-02-01") not in set(counts["date"].map(pd.Timestamp))
    assert len(counts) == 60 and counts["count"].sum() == 16 + 8
    # the weeks February cuts are partial; a whole covered week has 7 days
    by_week = dict(zip(weekly["date"], weekly["days"], strict=True))
    assert by_week[dt.date(2024, 1, 8)] == 7
    assert by_week[dt.date(2024, 1, 29)] == 3  # Jan 29-31 only
    assert dt.date(2024, 2, 12) not in by_week
    # the chart: complete weeks of the series' own window; February's weeks are gaps
    with sf() as s:
        chart = series_chart(session=s, series_id="complaints|fireworks|150100")
    weeks = {h["week"]: h["count"] for h in chart["history"]}
    assert (chart["data_from"], chart["data_to"]) == (dt.date(2024, 1, 1), dt.date(2024, 3, 29))
    assert weeks[dt.date(2024, 1, 1)] == 4 and weeks[dt.date(2024, 2, 12)] is None
    assert min(weeks) == dt.date(2024, 1, 1) and max(weeks) == dt.date(2024, 3, 18)
    assert render_forecast_png(chart).startswith(b"\x89PNG")


def test_another_source_never_changes_a_series_it_does_not_touch(
        sf: sessionmaker[Session], engine: Engine, settings: Settings, tmp_path: Path) -> None:
    mine = _write(tmp_path / "mine.csv",
                  _daily_rows("m", "fireworks", "150100", dt.date(2023, 1, 2), 400, every=2)
                  + _daily_rows("m", "food_safety", "150200", dt.date(2023, 1, 2), 400,
                                every=3))
    _import(sf, mine, "mine")
    with sf() as s:
        before = daily_frame(session=s, signal="complaints")
    # another city's data, two years earlier, and another year of it imported later
    _import(sf, _write(tmp_path / "other_2020.csv",
                       _daily_rows("o20", "gas_safety", "152900", dt.date(2020, 1, 1), 366)),
            "other-city")
    _import(sf, _write(tmp_path / "other_2021.csv",
                       _daily_rows("o21", "gas_safety", "152900", dt.date(2021, 1, 1), 365)),
            "other-city")
    with sf() as s:
        after = daily_frame(session=s, signal="complaints")
        cover = series_coverage(s, signal="complaints")
    mine_ids = ["complaints|fireworks|150100", "complaints|food_safety|150200"]
    pd.testing.assert_frame_equal(
        before[before["unique_id"].isin(mine_ids)].reset_index(drop=True),
        after[after["unique_id"].isin(mine_ids)].reset_index(drop=True))
    # the later year extends the other city's coverage (adjacent years merge)
    assert cover["complaints|gas_safety|152900"] == [(dt.date(2020, 1, 1),
                                                      dt.date(2021, 12, 31))]
    # a forecaster sees the same history for my series: identical forecasts
    fits = [SeasonalNaive(n_samples=50, random_state=1).fit(
        f[f["unique_id"].isin(mine_ids)]).predict(28) for f in (before, after)]
    pd.testing.assert_frame_equal(fits[0].daily, fits[1].daily)
    pd.testing.assert_frame_equal(fits[0].weekly_samples, fits[1].weekly_samples)
    # forecast origins follow each series' own end (the seasonal naive of the full frame)
    full = SeasonalNaive(n_samples=20, random_state=1).fit(after).predict(7).daily
    starts = full.groupby("unique_id")["ds"].min()
    assert starts["complaints|gas_safety|152900"] == pd.Timestamp("2022-01-01")
    assert starts["complaints|fireworks|150100"] == after[
        after["unique_id"] == "complaints|fireworks|150100"]["ds"].max() + pd.Timedelta(days=1)


def test_declared_coverage(sf: sessionmaker[Session], tmp_path: Path) -> None:
    rows = _daily_rows("d", "fireworks", "150100", dt.date(2024, 1, 10), 10, every=3)
    path = _write(tmp_path / "d.csv", rows)
    summary = _import(sf, path, "declared", coverage="2024-01-01..2024-01-31")
    assert summary.coverage == "2024-01-01..2024-01-31"
    with sf() as s:
        frame = daily_frame(session=s, signal="complaints")
        row = s.scalars(select(SourceCoverage)).one()
    assert (row.source, row.declared, row.day_from, row.day_to) == (
        "declared", True, dt.date(2024, 1, 1), dt.date(2024, 1, 31))
    # zero-filled over the declared days, not only first..last record
    assert frame["ds"].min() == pd.Timestamp("2024-01-01")
    assert frame["ds"].max() == pd.Timestamp("2024-01-31")
    assert len(frame) == 31 and frame["y"].sum() == 4
    # a record outside the declared coverage: refused, naming the row and its day
    late = _write(tmp_path / "late.csv", [
        ("x1", "2024-02-02 10:00", "fireworks", "150100"),
        ("x2", "2024-02-20 10:00", "fireworks", "150100"),
        ("x3", "2024-03-01 10:00", "fireworks", "150100")])
    with pytest.raises(UnprocessableContent) as err:
        _import(sf, late, "declared", coverage="2024-02-01..2024-02-29")
    assert "data row 3" in err.value.detail and "2024-03-01" in err.value.detail
    assert "outside the declared coverage 2024-02-01..2024-02-29" in err.value.detail
    with sf() as s:  # nothing of the refused batch was written
        assert s.scalar(select(func.count()).select_from(Complaint)) == 4
        assert s.scalar(select(func.count()).select_from(SourceCoverage)) == 1
        assert s.scalars(select(ImportBatch.status).order_by(
            ImportBatch.started_at.desc())).first() == "failed"
    for bad in ("2024-02-01", "2024-02-30..2024-03-01", "2024-03-01..2024-02-01"):
        with pytest.raises(BadRequest, match="coverage"):
            _import(sf, late, "declared", coverage=bad)
    # a declared coverage with no record at all still counts for the source
    empty = _write(tmp_path / "empty.csv", [])
    _import(sf, empty, "declared", coverage="2024-02-01..2024-02-10")
    with sf() as s:
        frame = daily_frame(session=s, signal="complaints")
    assert frame["ds"].max() == pd.Timestamp("2024-02-10") and len(frame) == 41


def test_listing_pages_in_sql(sf: sessionmaker[Session], engine: Engine, settings: Settings,
                              tmp_path: Path) -> None:
    regions = ["150100", "150200", "152900"]
    rows = [r for cat in ("fireworks", "food_safety", "gas_safety") for reg in regions
            for r in _daily_rows("p", cat, reg, dt.date(2024, 1, 1), 5)]
    _import(sf, _write(tmp_path / "p.csv", rows), "p")
    _import(sf, _write(tmp_path / "q.csv", _daily_rows("q", "fireworks", "150100",
                                                       dt.date(2024, 2, 1), 3)), "q")
    with sf() as s:
        everything = list_series(session=s)
        assert [x["id"] for x in everything] == sorted(x["id"] for x in everything)
        assert len(everything) == 9
        first = series_page(session=s, limit=4)
        rest = series_page(session=s, after=first[-1]["id"], limit=100)
        assert [x["id"] for x in first + rest] == [x["id"] for x in everything]
        fw = next(x for x in everything if x["id"] == "complaints|fireworks|150100")
        assert (fw["first_date"], fw["last_date"], fw["total"]) == (
            dt.date(2024, 1, 1), dt.date(2024, 2, 3), 8)
        assert [src["name"] for src in fw["sources"]] == ["p", "q"]
        assert fw["coverage"] == [{"from": dt.date(2024, 1, 1), "to": dt.date(2024, 1, 5)},
                                  {"from": dt.date(2024, 2, 1), "to": dt.date(2024, 2, 3)}]
        assert series_page(session=s, signal="violations") == []
        _, key = create_key(session=s, name="r", scopes=["read"])
    with TestClient(create_app(settings)) as client:
        h = {"X-API-Key": key}
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            r = client.get("/v1/series", params=params, headers=h)
            assert r.status_code == 200, r.text
            doc = r.json()
            seen += [x["id"] for x in doc["items"]]
            pages += 1
            cursor = doc["next_cursor"]
            if cursor is None:
                break
        assert seen == [x["id"] for x in everything] and pages == 5
        item = client.get("/v1/series", params={"limit": 1}, headers=h).json()["items"][0]
        assert item["id"] == "complaints|fireworks|150100"
        assert item["coverage"] == [{"from": "2024-01-01", "to": "2024-01-05"},
                                    {"from": "2024-02-01", "to": "2024-02-03"}]
        assert client.get("/v1/series", params={"signal": "violations"},
                          headers=h).json()["items"] == []
        assert client.get("/v1/series", params={"cursor": "nope"}, headers=h).status_code == 422


def test_api_import_declares_coverage(engine: Engine, settings: Settings) -> None:
    factory = make_sessionmaker(engine)
    with factory() as s:
        load_reference(session=s, categories_file=settings.categories_file,
                       regions_file=settings.regions_file)
        _, key = create_key(session=s, name="i", scopes=["import", "read"])
    records = [{"external_id": f"r{i}", "received_at": f"2024-05-{i + 10:02d} 09:00",
                "category": "fireworks", "region": "150100"} for i in range(3)]
    with TestClient(create_app(settings)) as client:
        h = {"X-API-Key": key}
        assert client.get("/v1/series", headers=h).json()["items"] == []
        r = client.post("/v1/complaints/import", headers=h, json={
            "records": records, "source": "api", "coverage": "2024-05-01..2024-05-31"})
        assert r.status_code == 201, r.text
        # the cached listing shows the import at once (its version was reset)
        listed = client.get("/v1/series", headers=h).json()["items"]
        assert [(x["id"], x["total"]) for x in listed] == [("complaints|fireworks|150100", 3)]
        assert listed[0]["coverage"] == [{"from": "2024-05-01", "to": "2024-05-31"}]
        assert r.json()["coverage"] == "2024-05-01..2024-05-31"
        r = client.post("/v1/complaints/import", headers=h, json={
            "records": [{**records[0], "external_id": "late",
                         "received_at": "2024-07-01 09:00"}],
            "source": "api", "coverage": "2024-06-01..2024-06-30"})
        assert r.status_code == 422 and r.headers["content-type"].startswith(
            "application/problem+json")
        assert "data row 1" in r.json()["detail"] and "2024-07-01" in r.json()["detail"]
        r = client.post("/v1/complaints/import", headers=h, json={
            "records": records, "source": "api", "coverage": "May"})
        assert r.status_code == 400 and "FROM..TO" in r.json()["detail"]
        counts = client.get("/v1/series/complaints|fireworks|150100/counts", headers=h).json()
    assert len(counts["points"]) == 31
    assert sum(p["count"] for p in counts["points"]) == 3
    assert np.all([p["days"] == 1 for p in counts["points"]])


def test_migration_backfills_existing_databases(db_url: str, settings: Settings) -> None:
    from service.db import make_engine
    from service.migrate import head_revision, upgrade

    eng = make_engine(db_url)
    try:
        upgrade(eng, "0002_recipient_webhook_secrets")  # the revision before the summary
        factory = make_sessionmaker(eng)
        # plain SQL: the ORM classes describe the head schema, not this older one
        with eng.begin() as conn:
            insert_reference_sql(conn, {"150100": "a", "150200": "b"})
            conn.execute(text(
                "INSERT INTO import_batches (id, kind, source, status, received, inserted, "
                "duplicates, rejected, options, started_at) VALUES ('b1', 'complaints', "
                "'old', 'completed', 8, 8, 0, 0, '{}', '2024-03-01 00:00:00+00')"))
        with factory() as s:
            day = dt.date(2024, 1, 1)
            s.execute(sa_insert(Complaint), [
                {"source": "old" if i % 3 else "older", "external_id": f"c{i}",
                 "received_at": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
                 "day": day + dt.timedelta(days=i), "category": "fireworks",
                 "region": "150100" if i % 2 else "150200", "batch_id": "b1" if i < 8 else None}
                for i in range(12)])
            s.execute(sa_insert(EnforcementAction), [
                {"source": "insp", "external_id": f"e{i}",
                 "occurred_at": dt.datetime(2024, 2, 1, tzinfo=dt.UTC),
                 "day": dt.date(2024, 2, 1 + i), "category": "fireworks", "region": "150100",
                 "action": "inspection", "violation_found": i == 2} for i in range(4)])
            s.commit()
        upgrade(eng)
        assert head_revision() is not None
        with factory() as s:
            assert _summary(s) == _group_by(s)
            assert ("violations|fireworks|150100", "insp", "violations", "fireworks",
                    "150100", dt.date(2024, 2, 3), dt.date(2024, 2, 3), 1) in _summary(s)
            cover = series_coverage(s, signal="violations")
            assert cover == {"violations|fireworks|150100": [(dt.date(2024, 2, 1),
                                                             dt.date(2024, 2, 4))]}
            frame = daily_frame(session=s, signal="complaints")
        assert frame["ds"].min() == pd.Timestamp("2024-01-01")
        assert frame["ds"].max() == pd.Timestamp("2024-01-12")
    finally:
        eng.dispose()


def test_cli_coverage_and_series_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from typer.testing import CliRunner

    from service.cli import app

    fixtures = Path(__file__).resolve().parents[1] / "fixtures"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FOREWARN_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("FOREWARN_CATEGORIES_FILE", str(fixtures / "categories.yaml"))
    monkeypatch.setenv("FOREWARN_REGIONS_FILE", str(fixtures / "regions.yaml"))
    monkeypatch.setenv("FOREWARN_LOG_JSON", "false")
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(app, ["reference", "load"]).exit_code == 0
    path = _write(tmp_path / "c.csv", _daily_rows("c", "fireworks", "150100",
                                                  dt.date(2024, 1, 5), 10))
    r = runner.invoke(app, ["import", "complaints", str(path), "--source", "hotline",
                            "--coverage", "2024-01-06..2024-01-31"])
    assert r.exit_code == 2
    assert "data row 1" in r.output and "outside the declared coverage" in r.output
    r = runner.invoke(app, ["import", "complaints", str(path), "--source", "hotline",
                            "--coverage", "2024-01-01..2024-01-31"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["series", "list"])
    assert r.exit_code == 0
    assert "complaints|fireworks|150100" in r.output and "hotline" in r.output
    listed = json.loads(runner.invoke(app, ["series", "list", "--json"]).output)
    assert listed[0]["coverage"] == [{"from": "2024-01-01", "to": "2024-01-31"}]
    assert listed[0]["total"] == 10
    bad = runner.invoke(app, ["series", "list", "--signal", "nope"])
    assert bad.exit_code != 0

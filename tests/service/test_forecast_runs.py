"""Forecast runs end to end through the service: records → run → stored forecasts and peaks.

Short synthetic series (plumbing), real Prophet fits, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from models.hysteresis import DEFAULT_OPEN_FACTORS, open_probability
from service.api.app import create_app
from service.config import Settings
from service.db import make_sessionmaker
from service.errors import PROBLEM_JSON
from service.forecasting import create_run, execute_run, list_peaks, series_forecast
from service.forecasting.executor import RunExecutor
from service.store.keys import create_key
from service.store.reference import load_reference
from service.store.summary import rebuild
from service.store.tables import (
    Complaint,
    DecisionBacktest,
    FittedModel,
    ForecastPoint,
    ForecastRun,
    ForecastWeek,
)

pytestmark = pytest.mark.slow

START = dt.date(2021, 1, 1)
DAYS = 1095


def _seed(engine: Engine, settings: Settings) -> None:
    """Two complaint series with a yearly surge every late January, and a sparse one."""
    rng = np.random.default_rng(7)
    factory = make_sessionmaker(engine)
    with factory() as s:
        load_reference(session=s, categories_file=settings.categories_file,
                       regions_file=settings.regions_file)
        rows: list[dict[str, object]] = []
        for cat, region, base in (("fireworks", "150100", 3.0), ("food_safety", "150200", 2.0),
                                  ("gas_safety", "152900", 0.05)):
            for i in range(DAYS):
                day = START + dt.timedelta(days=i)
                lam = base * (4.0 if day.month == 1 and day.day > 14 else 1.0)
                at = dt.datetime(day.year, day.month, day.day, 3, tzinfo=dt.UTC)
                rows.extend({"source": "t", "external_id": f"{cat}-{i}-{k}", "day": day,
                             "received_at": at, "category": cat, "region": region}
                            for k in range(int(rng.poisson(lam))))
        s.execute(insert(Complaint), rows)
        rebuild(s.connection())  # records written outside an import: summary + coverage
        s.commit()


@pytest.fixture
def seeded(engine: Engine, settings: Settings) -> Engine:
    _seed(engine, settings)
    return engine


def test_execute_run_stores_everything(seeded: Engine, settings: Settings) -> None:
    factory = make_sessionmaker(seeded)
    seen: list[tuple[int, int]] = []
    with factory() as s:
        run = create_run(session=s, settings=settings, horizon_days=56, engine="serial",
                         signals=["complaints"], train_until=dt.date(2023, 11, 30))
    done = execute_run(session_factory=factory, run_id=run.id, settings=settings,
                       on_progress=lambda d, t: seen.append((d, t)))
    assert done.status in ("succeeded", "partial")
    assert done.total == 3 and done.done == 3
    assert done.train_until == dt.date(2023, 11, 30)
    assert seen and seen[-1] == (3, 3)
    assert {"load_seconds", "fit_seconds", "store_seconds", "total_seconds"} <= set(done.durations)
    with factory() as s:
        n_points = s.scalar(select(func.count()).select_from(ForecastPoint)
                            .where(ForecastPoint.run_id == run.id))
        assert n_points == 3 * 56
        first = s.scalar(select(func.min(ForecastPoint.ds)).where(ForecastPoint.run_id == run.id))
        assert first == dt.date(2023, 12, 1)
        negatives = s.scalar(select(func.count()).select_from(ForecastPoint).where(
            ForecastPoint.run_id == run.id, ForecastPoint.yhat_lower < 0))
        assert negatives == 0
        weeks = s.scalars(select(ForecastWeek).where(ForecastWeek.run_id == run.id)).all()
        assert all(0.0 <= w.p_spike <= 1.0 and w.threshold >= 5.0 for w in weeks)
        assert all(len(w.samples) == min(settings.forecast.n_samples,
                                         settings.forecast.stored_samples) for w in weeks)
        models = s.scalars(select(FittedModel).where(FittedModel.run_id == run.id)).all()
        prophet_models = [m for m in models if m.model_type == "prophet"]
        assert prophet_models, "fitted Prophet models are kept in the registry"
        assert all("__prophet_version" in json.loads(m.artifact) for m in prophet_models)
        # the January surge of the busy series is predicted as a peak window
        peaks = list_peaks(session=s, run_id=run.id, category="fireworks")
        assert peaks, "the yearly January surge should be a predicted peak"
        assert any(p.start <= dt.date(2024, 1, 31) and p.end >= dt.date(2024, 1, 15)
                   for p in peaks)
        fc = series_forecast(session=s, series_id="complaints|fireworks|150100")
        assert fc["run_id"] == run.id and len(fc["points"]) == 56
        # every peak is a campaign window of its category's decision
        decided = done.decisions["categories"]
        assert done.decisions["mode"] == "learned" and done.decisions["origins"]
        assert set(decided) == {"fireworks", "food_safety", "gas_safety"}
        assert decided["gas_safety"]["basis"] == "cost_loss"  # reminder 1, miss 4
        assert decided["gas_safety"]["threshold"] == pytest.approx(0.25)
        assert decided["fireworks"]["max_campaign_weeks"] == 4
        assert decided["gas_safety"]["open_factor"] == 1.0  # the cost/loss rule never waits
        assert all(d["open_factor"] in DEFAULT_OPEN_FACTORS for d in decided.values())
        window_peak: dict[tuple[str, object], float] = {}
        for p in list_peaks(session=s, run_id=run.id):
            assert p.p_min is not None
            assert p.p_min == pytest.approx(decided[p.category]["threshold"])
            assert p.max_probability >= p.p_min
            key = (p.series_id, p.window_start)
            window_peak[key] = max(window_peak.get(key, 0.0), p.max_probability)
        for p in list_peaks(session=s, run_id=run.id):  # every window reached its opening
            need = open_probability(float(p.p_min or 0.0), decided[p.category]["open_factor"])
            assert window_peak[(p.series_id, p.window_start)] >= float(need) - 1e-9
        for p in list_peaks(session=s, run_id=run.id):
            assert p.onset is not None and p.onset <= p.start
            assert p.window_start is not None and p.window_end is not None
            assert p.window_start <= p.start <= p.end <= p.window_end
            assert p.part is not None and p.parts is not None and 1 <= p.part <= p.parts
            assert (p.end - p.start).days + 1 <= 7 * decided[p.category]["max_campaign_weeks"]
    assert {"backtest_seconds", "decision_seconds"} <= set(done.durations)


def test_failed_run_is_recorded(engine: Engine, settings: Settings) -> None:
    factory = make_sessionmaker(engine)
    with factory() as s:
        run = create_run(session=s, settings=settings, horizon_days=28, engine="serial")
    with pytest.raises(Exception, match="no records"):
        execute_run(session_factory=factory, run_id=run.id, settings=settings)
    with factory() as s:
        row = s.get(ForecastRun, run.id)
        assert row is not None and row.status == "failed" and "no records" in (row.error or "")


@pytest.fixture
def api(seeded: Engine, settings: Settings) -> Iterator[tuple[TestClient, dict[str, str]]]:
    factory = make_sessionmaker(seeded)
    with factory() as s:
        keys = {sc: create_key(session=s, name=sc, scopes=[sc])[1] for sc in ("read", "plan")}
    with TestClient(create_app(settings)) as client:
        yield client, keys


def test_api_run_lifecycle(api: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = api
    read, plan = {"X-API-Key": keys["read"]}, {"X-API-Key": keys["plan"]}
    r = client.post("/v1/forecast-runs", json={"horizon_days": 35, "engine": "serial",
                                                "signals": ["complaints"]}, headers=read)
    assert r.status_code == 403
    r = client.post("/v1/forecast-runs", json={"horizon_days": 3}, headers=plan)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM_JSON
    r = client.post("/v1/forecast-runs", json={"horizon_days": 35, "engine": "serial",
                                                "signals": ["complaints"]}, headers=plan)
    assert r.status_code == 202 and r.json()["status"] == "queued"  # as accepted
    location = r.headers["Location"]
    assert location == f"/v1/forecast-runs/{r.json()['id']}"
    client.app.state.run_executor.wait(timeout=120)  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    body = client.get(location, headers=read).json()
    while body["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
        body = client.get(location, headers=read).json()
    assert body["status"] in ("succeeded", "partial"), body
    assert body["done"] == body["total"] == 3
    fc = client.get("/v1/series/complaints|fireworks|150100/forecast", headers=read).json()
    assert len(fc["points"]) == 35 and fc["run_id"] == body["id"]
    assert all(p["yhat_lower"] <= p["yhat"] <= p["yhat_upper"] for p in fc["points"])
    assert fc["weeks"] and all(0 <= w["p_spike"] <= 1 for w in fc["weeks"])
    r = client.get("/v1/forecasts", params={"category": "fireworks"}, headers=read)
    assert {row["series_id"] for row in r.json()["items"]} == {"complaints|fireworks|150100"}
    # the run shows every category's decision, explained
    decided = {d["category"]: d for d in body["decisions"]}
    assert set(decided) == {"fireworks", "food_safety", "gas_safety"}
    assert body["decision_backtests"]["mode"] == "learned"
    assert len(body["decision_backtests"]["origins"]) == 2
    assert decided["gas_safety"]["basis"] == "cost_loss"
    assert "cost/loss" in decided["gas_safety"]["explanation"]
    for d in decided.values():  # the level a window opens at, as the run's rule computes it
        assert d["opens_at"] == pytest.approx(float(open_probability(d["threshold"],
                                                                     d["open_factor"])))
        assert d["opens_at"] >= d["threshold"]
    assert decided["gas_safety"]["opens_at"] == pytest.approx(decided["gas_safety"]["threshold"])
    assert all(d["origins"] == body["decision_backtests"]["origins"]
               for d in decided.values())
    zh_run = client.get(location, headers={**read, "Accept-Language": "zh"})
    assert zh_run.headers["content-language"] == "zh"
    assert all(d["explanation"].startswith("当 P(高发) ≥") for d in zh_run.json()["decisions"])
    peaks = client.get("/v1/peaks", params={"min_probability": 0.0}, headers=read).json()
    assert peaks["items"], "the January surge is a predicted window"
    for p in peaks["items"]:
        assert p["run_id"] == body["id"] and p["max_probability"] >= p["p_min"]
        assert p["start"] <= p["peak_week"] <= p["end"]
        assert p["onset"] <= p["start"] and p["window_start"] <= p["start"]
        assert 1 <= p["part"] <= p["parts"]
        assert p["decision"] == decided[p["category"]]
        assert p["p_min"] == p["decision"]["threshold"]
    zh = client.get("/v1/peaks", params={"min_probability": 0.0},
                    headers={**read, "Accept-Language": "zh-CN"})
    assert zh.headers["content-language"] == "zh"
    assert zh.json()["items"][0]["decision"]["explanation"].startswith("当 P(高发) ≥")
    # cached per language: English again
    again = client.get("/v1/peaks", params={"min_probability": 0.0}, headers=read).json()
    assert again["items"][0]["decision"]["explanation"].startswith("Warns when")
    assert client.get("/v1/series/complaints|nope|1/forecast", headers=read).status_code == 404
    assert client.get("/v1/forecast-runs/zzz", headers=read).status_code == 404


def test_second_run_warm_starts_from_registry(seeded: Engine, settings: Settings) -> None:
    from service.forecasting.runs import _warm_start

    factory = make_sessionmaker(seeded)
    with factory() as s:
        first = create_run(session=s, settings=settings, horizon_days=28, engine="serial",
                           signals=["complaints"])
    execute_run(session_factory=factory, run_id=first.id, settings=settings)
    init = _warm_start(factory, {"complaints|fireworks|150100", "complaints|x|y"})
    assert set(init) == {"complaints|fireworks|150100"}
    assert {"k", "m", "sigma_obs", "delta", "beta"} <= set(init["complaints|fireworks|150100"])
    with factory() as s:
        second = create_run(session=s, settings=settings, horizon_days=28, engine="serial",
                            signals=["complaints"])
    done = execute_run(session_factory=factory, run_id=second.id, settings=settings)
    assert done.status in ("succeeded", "partial")
    with factory() as s:
        a = series_forecast(session=s, series_id="complaints|fireworks|150100", run_id=first.id)
        b = series_forecast(session=s, series_id="complaints|fireworks|150100", run_id=second.id)
    # warm start converges to (nearly) the same optimum
    ya = np.array([p["yhat"] for p in a["points"]])
    yb = np.array([p["yhat"] for p in b["points"]])
    assert np.allclose(ya, yb, rtol=0.05, atol=0.2)


def test_run_metrics_are_counted(seeded: Engine, settings: Settings) -> None:
    from prometheus_client import REGISTRY

    def value(name: str, labels: dict[str, str] | None = None) -> float:
        return REGISTRY.get_sample_value(name, labels or {}) or 0.0

    before_runs = value("forewarn_forecast_runs_total", {"status": "succeeded"}) + value(
        "forewarn_forecast_runs_total", {"status": "partial"})
    before_fits = value("forewarn_series_fit_seconds_count")
    factory = make_sessionmaker(seeded)
    with factory() as s:
        run = create_run(session=s, settings=settings, horizon_days=28, engine="serial",
                         signals=["complaints"])
    execute_run(session_factory=factory, run_id=run.id, settings=settings)
    after_runs = value("forewarn_forecast_runs_total", {"status": "succeeded"}) + value(
        "forewarn_forecast_runs_total", {"status": "partial"})
    assert after_runs == before_runs + 1
    assert value("forewarn_series_fit_seconds_count") >= before_fits + 2


def _run(factory: sessionmaker[Session], settings: Settings, *, warm: bool = False,
         **kw: object) -> ForecastRun:
    with factory() as s:
        run = create_run(session=s, settings=settings, engine="serial",
                         signals=["complaints"], **kw)  # type: ignore[arg-type]
        run.params = {**run.params, "warm_start": warm}  # identical fits, run after run
        s.commit()
    return execute_run(session_factory=factory, run_id=run.id, settings=settings)


def _evidence(run: ForecastRun) -> dict[str, tuple[object, ...]]:
    keys = ("threshold", "basis", "n_windows", "n_campaigns", "recall", "precision")
    return {c: tuple(d[k] for k in keys) + (tuple(d["origins"]),)
            for c, d in run.decisions["categories"].items()}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_thresholds_never_see_records_after_the_cutoff(seeded: Engine,
                                                       settings: Settings) -> None:
    factory = make_sessionmaker(seeded)
    cut = dt.date(2023, 11, 30)
    before = _run(factory, settings, horizon_days=56, train_until=cut)
    assert before.decisions["backtests"]["fitted"] == 3
    # plant a huge spike in every series right after the cut-off
    with factory() as s:
        rows = [{"source": "planted", "external_id": f"{cat}-{d}-{k}", "day": day,
                 "received_at": dt.datetime(day.year, day.month, day.day, 3, tzinfo=dt.UTC),
                 "category": cat, "region": region}
                for cat, region in (("fireworks", "150100"), ("food_safety", "150200"),
                                    ("gas_safety", "152900"))
                for d in range(1, 120) for day in [cut + dt.timedelta(days=d)]
                for k in range(40)]
        s.execute(insert(Complaint), rows)
        rebuild(s.connection())  # the planted source's coverage extends the data end
        s.execute(delete(DecisionBacktest))  # no reuse: the second run backtests again
        s.commit()
    after = _run(factory, settings, horizon_days=56, train_until=cut)
    assert after.decisions["backtests"]["fitted"] == 3
    assert after.decisions["backtests"]["reused"] == 0
    assert after.train_until == cut
    assert _evidence(after) == _evidence(before)
    # the planted records are there: a run that may see them decides on other origins
    seeing = _run(factory, settings, horizon_days=56)
    assert seeing.train_until is not None and seeing.train_until > cut
    assert seeing.decisions["origins"] != before.decisions["origins"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_weekly_refits_reuse_the_stored_backtests(seeded: Engine, settings: Settings) -> None:
    factory = make_sessionmaker(seeded)
    first = _run(factory, settings, horizon_days=56, train_until=dt.date(2023, 11, 26))
    with factory() as s:
        stored = s.scalar(select(func.count()).select_from(DecisionBacktest))
    assert stored == first.decisions["backtests"]["pairs"] == 6  # 3 series x 2 origins
    # the next weekly refit: same origins (anchored), same counts before them
    second = _run(factory, settings, horizon_days=56, train_until=dt.date(2023, 12, 3))
    assert second.decisions["origins"] == first.decisions["origins"]
    assert second.decisions["backtests"] == {"pairs": 6, "reused": 6, "stored": 0,
                                             "fitted": 0}
    assert second.durations["backtest_seconds"] == 0.0
    assert _evidence(second) == _evidence(first)
    # a late correction before an origin's horizon end changes that series' fingerprint
    with factory() as s:
        s.execute(insert(Complaint), [{
            "source": "late", "external_id": f"late-{k}", "day": dt.date(2023, 3, 1),
            "received_at": dt.datetime(2023, 3, 1, 3, tzinfo=dt.UTC),
            "category": "fireworks", "region": "150100"} for k in range(3)])
        s.commit()
    third = _run(factory, settings, horizon_days=56, train_until=dt.date(2023, 12, 3))
    assert third.decisions["backtests"]["fitted"] == 1
    assert third.decisions["backtests"]["reused"] == 4  # both fireworks pairs changed


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_pinned_p_min_is_used_everywhere(seeded: Engine, settings: Settings) -> None:
    pinned = settings.model_copy(update={
        "forecast": settings.forecast.model_copy(update={"p_min": 0.3})})
    factory = make_sessionmaker(seeded)
    run = _run(factory, pinned, horizon_days=56, train_until=dt.date(2023, 11, 30))
    assert run.decisions["mode"] == "pinned" and run.decisions["origins"] == []
    assert {d["basis"] for d in run.decisions["categories"].values()} == {"pinned"}
    assert {d["threshold"] for d in run.decisions["categories"].values()} == {0.3}
    assert {d["open_factor"] for d in run.decisions["categories"].values()} == {1.0}
    assert run.durations["backtest_seconds"] == 0.0
    with factory() as s:
        peaks = list_peaks(session=s, run_id=run.id)
        assert peaks and {p.p_min for p in peaks} == {0.3}
        assert s.scalar(select(func.count()).select_from(DecisionBacktest)) == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_shutdown_marks_the_runs_it_never_started_interrupted(engine: Engine,
                                                               settings: Settings) -> None:
    """A run still queued when the API stops is marked failed, so that it does not hold the
    one waiting place (409 for every new run) until it goes stale; the running one is left
    to finish."""
    factory = make_sessionmaker(engine)
    with factory() as s:
        running = create_run(session=s, settings=settings, requested_by="test").id
        queued = create_run(session=s, settings=settings, requested_by="test").id
    executor = RunExecutor(factory, settings)
    started, release = threading.Event(), threading.Event()

    def hold(run_id: str) -> None:  # stands in for execute_run: starts, then holds the worker
        with factory() as s:
            row = s.get(ForecastRun, run_id)
            assert row is not None
            row.status = "running"
            s.commit()
        started.set()
        release.wait(30)

    executor._run = hold  # type: ignore[method-assign]
    executor.submit(running)
    executor.submit(queued)
    assert started.wait(30)
    executor.shutdown()
    release.set()
    t0 = time.monotonic()
    executor.wait(timeout=60)
    assert time.monotonic() - t0 < 60  # the run it cancelled is not waited out to the end
    with factory() as s:
        left = s.get(ForecastRun, queued)
        assert left is not None and left.status == "failed"
        assert left.error is not None and left.error.startswith("interrupted")
        assert left.finished_at is not None
        still = s.get(ForecastRun, running)
        assert still is not None and still.status == "running"  # left to finish
    with factory() as s:  # the waiting place is free again
        assert create_run(session=s, settings=settings, bounded=True).status == "queued"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_runs_of_dead_processes_become_interrupted(engine: Engine) -> None:
    """Same host: a dead pid is interrupted at once; another host (or a row from before
    owners were recorded): only after ``stale_after`` without progress."""
    import os

    from service.forecasting import recover_interrupted_runs
    from service.store.owners import HOST, PROCESS_TOKEN

    host, now = HOST, dt.datetime.now(dt.UTC)
    ours = f"{host}:{os.getpid()}:{PROCESS_TOKEN}"
    old = now - dt.timedelta(hours=13)
    rows = {  # id: (status, owner, heartbeat, expected status)
        "dead": ("running", f"{host}:{2**22 + 12345}:x", now, "failed"),  # above pid_max
        "restarted": ("running", f"{host}:{os.getpid()}:other", now, "failed"),
        "mine": ("running", ours, old, "running"),
        "mine-queued": ("queued", ours, old, "queued"),
        "far-recent": ("running", "elsewhere:1:y", now, "running"),
        "far-silent": ("queued", "elsewhere:1:y", old, "failed"),
        # the same host name in another pid namespace (a container on host networking)
        "twin": ("running", f"{HOST.split('/')[0]}/1:{2**22 + 12345}:x", now, "running"),
        "legacy": ("running", None, None, "failed"),  # created 13 h ago, no owner
        "done": ("succeeded", f"{host}:{2**22 + 12345}:x", old, "succeeded"),
    }
    factory = make_sessionmaker(engine)
    with factory() as s:
        s.add_all(ForecastRun(id=rid, status=status, engine="serial", horizon_days=7,
                              owner=owner, heartbeat_at=beat, created_at=old)
                  for rid, (status, owner, beat, _) in rows.items())
        s.commit()
    dead = recover_interrupted_runs(factory, stale_after=dt.timedelta(hours=12))
    assert sorted(dead) == ["dead", "far-silent", "legacy", "restarted"]
    with factory() as s:
        got = {r.id: r for r in s.scalars(select(ForecastRun))}
    assert {rid: got[rid].status for rid in rows} == {rid: r[3] for rid, r in rows.items()}
    assert all((got[rid].error or "").startswith("interrupted") and got[rid].finished_at
               for rid in dead)

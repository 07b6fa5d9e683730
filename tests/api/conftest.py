"""Fixtures of the API-wide tests: an app on the shared ``settings`` with reference data and
one key per scope."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from models.series import SeriesId
from service.api.app import create_app
from service.config import Settings
from service.db import make_engine, make_sessionmaker
from service.migrate import upgrade
from service.store.keys import SCOPES, create_key
from service.store.reference import load_reference
from service.store.tables import ForecastPoint, ForecastRun, ForecastWeek, Peak

CATEGORIES = ("fireworks", "food_safety")
REGIONS = ("150100", "150200", "152900")


def seed_run(factory: sessionmaker[Session], *, n_series: int = 6, days: int = 28,
             start: dt.date | None = None) -> tuple[str, list[str]]:
    """A finished forecast run (daily points, weekly P(spike), two peaks per series) over
    category × region series of the test reference data; returns (run id, series ids)."""
    rng = np.random.default_rng(0)
    start = start or dt.date.today() + dt.timedelta(days=1)
    series = [f"complaints|{CATEGORIES[i % 2]}|{REGIONS[(i // 2) % 3]}"
              for i in range(n_series)]
    with factory() as s:
        run = ForecastRun(status="succeeded", engine="serial", horizon_days=days,
                          train_until=start - dt.timedelta(days=1), total=n_series,
                          done=n_series, finished_at=dt.datetime.now(dt.UTC))
        s.add(run)
        s.flush()
        points, weeks, peaks = [], [], []
        for sid in series:
            parsed = SeriesId.parse(sid)
            cat, reg = parsed.category, parsed.region
            y = rng.gamma(2.0, 2.0, days)
            points += [{"run_id": run.id, "series_id": sid, "ds": start + dt.timedelta(d),
                        "yhat": float(y[d]), "yhat_lower": float(y[d] * 0.5),
                        "yhat_upper": float(y[d] * 1.6), "model": "prophet"}
                       for d in range(days)]
            monday = start - dt.timedelta(days=start.weekday())
            weeks += [{"run_id": run.id, "series_id": sid,
                       "week": monday + dt.timedelta(days=7 * w), "expected": 20.0,
                       "p_spike": float(rng.uniform()), "threshold": 25.0,
                       "samples": [round(float(v), 2) for v in rng.gamma(4, 5, 50)]}
                      for w in range(days // 7)]
            for k in range(2):
                first = monday + dt.timedelta(days=7 * (1 + k))
                peaks.append({"run_id": run.id, "series_id": sid, "signal": "complaints",
                              "category": cat, "region": reg, "start": first,
                              "end": first + dt.timedelta(days=6), "peak_week": first,
                              "expected_count": 40.0, "expected_excess": float(k % 2) * 5,
                              "max_probability": 0.8, "threshold": 25.0})
        s.execute(insert(ForecastPoint), points)
        s.execute(insert(ForecastWeek), weeks)
        s.execute(insert(Peak), peaks)
        s.commit()
        return run.id, series


def seed_keys_and_reference(settings: Settings) -> dict[str, str]:
    """Migrate, load the reference files of ``settings`` and create one key per scope."""
    engine = make_engine(settings.database_url)
    upgrade(engine)
    with make_sessionmaker(engine)() as s:
        load_reference(session=s, categories_file=settings.categories_file,
                       regions_file=settings.regions_file)
        keys = {scope: create_key(session=s, name=f"{scope}-robot", scopes=[scope])[1]
                for scope in SCOPES}
    engine.dispose()
    return keys


@pytest.fixture
def api(settings: Settings) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """A client of the app on ``settings`` (both backends) and one key per scope."""
    keys = seed_keys_and_reference(settings)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client, keys


@dataclass(frozen=True)
class Served:
    """The ``api`` app with one finished run seeded (:func:`seed_run`)."""

    client: TestClient
    app: Any
    keys: dict[str, str]
    run_id: str
    series: list[str]

    @property
    def read(self) -> dict[str, str]:
        """Headers of the read key."""
        return {"X-API-Key": self.keys["read"]}


@pytest.fixture
def served(api: tuple[TestClient, dict[str, str]]) -> Served:
    client, keys = api
    app: Any = client.app
    run_id, series = seed_run(app.state.sessionmaker)
    return Served(client, app, keys, run_id, series)


def finish_newer_run(app: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """Let the app's run executor finish a queued run, as a newer finished run seeded by
    :func:`seed_run`; its id."""
    import service.forecasting.executor as executor

    new: list[str] = []

    def finish(*, session_factory: Any, run_id: str, settings: Any) -> Any:
        new.append(seed_run(session_factory)[0])
        return type("Run", (), {"status": "succeeded", "total": 6, "failed": 0})()

    monkeypatch.setattr(executor, "execute_run", finish)  # what RunExecutor calls
    app.state.run_executor.submit("queued-run")
    app.state.run_executor.wait(timeout=60)
    assert len(new) == 1
    return new[0]

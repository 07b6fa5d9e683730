"""Campaign fixtures: reference data, forecast runs with peaks inserted directly (no fits)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from models.series import SeriesId
from service.config import Settings
from service.db import make_sessionmaker
from service.store.reference import load_reference
from service.store.tables import Category, EnforcementAction, ForecastRun, ForecastWeek, Peak

#: The "today" of the planning and lifecycle tests (a Wednesday).
TODAY = dt.date(2025, 1, 1)

_clock = itertools.count()


@dataclass(frozen=True)
class P:
    """A predicted peak to insert: category, region, start (Monday), weeks, excess, p."""

    category: str
    region: str
    start: dt.date
    weeks: int = 2
    excess: float = 10.0
    prob: float = 0.8
    signal: str = "complaints"
    onset: dt.date | None = None
    p_min: float | None = None


def monday(d: dt.date) -> dt.date:
    return d - dt.timedelta(days=d.weekday())


#: A run's decision document (service.forecasting.decisions) deciding fireworks only.
DECISIONS: dict[str, Any] = {
    "mode": "learned", "p_min": None, "horizon_weeks": 26,
    "origins": ["2024-06-30", "2024-12-29"], "min_windows": 8, "lead_days": 14,
    "backtests": {"pairs": 4, "reused": 0, "fitted": 2, "stored": 4},
    "categories": {"fireworks": {
        "category": "fireworks", "threshold": 0.25, "objective": "f_beta",
        "basis": "category", "beta": 1.0, "cost_loss": None, "max_campaign_weeks": 4,
        "origins": ["2024-06-30", "2024-12-29"], "n_series": 1, "n_windows": 9,
        "n_campaigns": 11, "recall": 0.78, "precision": 0.64, "f1": 0.7, "f_beta": 0.7,
        "in_time": 0.6}}}


def add_run(session: Session, peaks: Sequence[P], *, train_until: dt.date,
            horizon_days: int = 364, decisions: dict[str, Any] | None = None) -> str:
    """A finished forecast run holding ``peaks`` (and their weekly rows), newest of all."""
    finished = dt.datetime(2030, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=next(_clock))
    run = ForecastRun(status="succeeded", engine="serial", horizon_days=horizon_days,
                      train_until=train_until, finished_at=finished, params={},
                      decisions=decisions or {})
    session.add(run)
    session.flush()
    for p in peaks:
        sid = str(SeriesId(p.signal, p.category, p.region))
        end = p.start + dt.timedelta(days=7 * p.weeks - 1)
        session.add(Peak(run_id=run.id, series_id=sid, signal=p.signal, category=p.category,
                         region=p.region, start=p.start, end=end, peak_week=p.start,
                         expected_count=30.0 + p.excess, expected_excess=p.excess,
                         max_probability=p.prob, threshold=30.0, onset=p.onset or p.start,
                         p_min=p.p_min, window_start=p.start, window_end=end, part=1,
                         parts=1))
        for k in range(p.weeks):
            session.add(ForecastWeek(run_id=run.id, series_id=sid,
                                     week=p.start + dt.timedelta(days=7 * k),
                                     expected=30.0 + p.excess, p_spike=p.prob, threshold=30.0,
                                     samples=[]))
    session.commit()
    return run.id


@pytest.fixture
def factory(engine: Engine, settings: Settings) -> sessionmaker[Session]:
    f = make_sessionmaker(engine)
    with f() as s:
        load_reference(session=s, categories_file=settings.categories_file,
                       regions_file=settings.regions_file)
        s.add(Category(code="noise", name_zh="噪声扰民", lead_days=14, legal_basis=[],
                       templates={}))
        s.add(Category(code="fire_hazard", name_zh="消防安全隐患", lead_days=14,
                       sector="公共安全", legal_basis=[{"title": "《中华人民共和国消防法》"}],
                       templates={}))
        for i, (entity, region) in enumerate([("E1", "150100"), ("E2", "150100"),
                                              ("E3", "150102"), ("E9", "150200")]):
            s.add(EnforcementAction(source="t", external_id=f"a{i}", day=dt.date(2024, 3, 1),
                                    occurred_at=dt.datetime(2024, 3, 1, tzinfo=dt.UTC),
                                    category="fireworks", region=region, action="inspection",
                                    violation_found=True, entity_id=entity, sector="公共安全"))
        s.commit()
    return f


@pytest.fixture
def session(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as s:
        yield s

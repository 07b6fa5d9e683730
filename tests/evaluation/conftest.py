"""Evaluation fixtures: weekly records with a yearly season in three regions, a forecast run
with known sample paths inserted directly (no fit), and campaigns in several states.

The treated series ``complaints|fireworks|150100`` has a campaign (sent) over the two weeks
``WINDOW``; its actual counts there are 7 and 9 and the frozen forecast's five sample paths
have weekly sums ``[13..17]`` and ``[11..15]``: path totals 24, 26, 28, 30, 32 (mean 28), so
the effect is 16 − 28 = −12 and every bound is computable by hand.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.api.app import create_app
from service.campaigns.tables import Campaign
from service.config import EvaluationSettings, Settings
from service.db import make_sessionmaker
from service.dispatch.tables import Outbox
from service.store.keys import create_key
from service.store.reference import load_reference
from service.store.summary import rebuild
from service.store.tables import Complaint, ForecastRun, ForecastWeek

START = dt.date(2022, 1, 3)  # a Monday
N_WEEKS = 120
WINDOW_WEEK = 110  # 2024-02-12, at the yearly peak
WINDOW = (START + dt.timedelta(weeks=WINDOW_WEEK),
          START + dt.timedelta(weeks=WINDOW_WEEK + 2, days=-1))
TREATED = "complaints|fireworks|150100"
LEVELS = {"150100": 5.0, "150200": 8.0, "152900": 4.0}
ACTUAL = (7, 9)
SAMPLES = ([13.0, 14.0, 15.0, 16.0, 17.0], [11.0, 12.0, 13.0, 14.0, 15.0])
LAST_DAY = START + dt.timedelta(weeks=N_WEEKS, days=-1)


def weekly_counts(region: str) -> list[int]:
    """Deterministic weekly counts: level × (1 + 2 × a bump around ISO week 7) + small noise."""
    rng = np.random.default_rng(int(region))
    out = []
    for k in range(N_WEEKS):
        week = START + dt.timedelta(weeks=k)
        woy = week.isocalendar().week
        mu = LEVELS[region] * (1 + 2 * np.exp(-0.5 * ((woy - 7) / 1.5) ** 2))
        out.append(int(max(0, round(mu + rng.normal(0, 0.6)))))
    if region == "150100":
        out[WINDOW_WEEK], out[WINDOW_WEEK + 1] = ACTUAL
    return out


@dataclass
class Seeded:
    factory: sessionmaker[Session]
    run_id: str
    sent_id: str
    draft_id: str
    pending_id: str
    send_date: dt.date


def _records(region: str, category: str = "fireworks") -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for k, n in enumerate(weekly_counts(region)):
        for i in range(n):
            day = START + dt.timedelta(weeks=k, days=i % 7)
            rows.append({"source": "t", "external_id": f"{category}-{region}-{k}-{i}",
                         "day": day, "category": category, "region": region,
                         "received_at": dt.datetime(day.year, day.month, day.day, 2,
                                                    tzinfo=dt.UTC)})
    return rows


def _campaign(**kw: object) -> Campaign:
    base: dict[str, object] = {"category": "fireworks", "region": "150100",
                               "signal": "complaints", "title": "【执法事项提示】测试",
                               "lead_days": 21}
    base.update(kw)
    return Campaign(**base)


def seed(engine: Engine, settings: Settings) -> Seeded:
    factory = make_sessionmaker(engine)
    with factory() as s:
        load_reference(session=s, categories_file=settings.categories_file,
                       regions_file=settings.regions_file)
        rows = [r for region in LEVELS for r in _records(region)]
        rows += _records("150200", "food_safety")
        s.execute(insert(Complaint), rows)
        rebuild(s.connection())  # records written outside an import: summary + coverage
        run = ForecastRun(status="succeeded", engine="serial", horizon_days=182,
                          train_until=WINDOW[0] - dt.timedelta(days=35),
                          finished_at=dt.datetime(2024, 1, 8, tzinfo=dt.UTC), params={})
        s.add(run)
        s.flush()
        for k, samples in enumerate(SAMPLES):
            week = WINDOW[0] + dt.timedelta(weeks=k)
            s.add(ForecastWeek(run_id=run.id, series_id=TREATED, week=week,
                               expected=float(np.mean(samples)), p_spike=0.8, threshold=6.0,
                               samples=samples))
        # a window after the last record day: nothing observed yet
        late = LAST_DAY + dt.timedelta(days=8)
        late = late - dt.timedelta(days=late.weekday())
        for k in range(2):
            s.add(ForecastWeek(run_id=run.id, series_id="complaints|food_safety|150200",
                               week=late + dt.timedelta(weeks=k), expected=20.0, p_spike=0.7,
                               threshold=10.0, samples=[18.0, 20.0, 22.0]))
        send = WINDOW[0] - dt.timedelta(days=21)
        sent = _campaign(status="sent", window_start=WINDOW[0], window_end=WINDOW[1],
                         send_date=send, planned_send_date=send, run_id=run.id,
                         approved_run_id=run.id, probability=0.8)
        draft = _campaign(status="draft", window_start=WINDOW[0] + dt.timedelta(weeks=52),
                          window_end=WINDOW[1] + dt.timedelta(weeks=52),
                          send_date=send + dt.timedelta(weeks=52),
                          planned_send_date=send + dt.timedelta(weeks=52), run_id=run.id)
        pending = _campaign(status="partially_failed", category="food_safety",
                            region="150200", window_start=late,
                            window_end=late + dt.timedelta(days=13),
                            send_date=late - dt.timedelta(days=14),
                            planned_send_date=late - dt.timedelta(days=14), run_id=run.id,
                            approved_run_id=run.id, title="【执法事项提示】食品")
        s.add_all([sent, draft, pending])
        s.flush()
        for i, (cid, status) in enumerate([(sent.id, "delivered"), (sent.id, "dead"),
                                           (pending.id, "dead"), (pending.id, "dead"),
                                           (pending.id, "delivered")]):
            s.add(Outbox(idempotency_key=f"k{i}", campaign_id=cid, channel="webhook",
                         recipient_id=f"r{i}", destination="https://example.org/h",
                         status=status))
        s.commit()
        return Seeded(factory, run.id, sent.id, draft.id, pending.id, send)


@pytest.fixture
def seeded(engine: Engine, settings: Settings) -> Seeded:
    return seed(engine, settings)


@pytest.fixture
def api(seeded: Seeded, settings: Settings) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with seeded.factory() as s:
        keys = {sc: create_key(session=s, name=sc, scopes=[sc])[1]
                for sc in ("read", "import", "approve")}
    # the evaluation worker on the API's background thread (a child process per refresh is
    # what deployments get; tests/evaluation/test_materialised.py runs that one too)
    threaded = settings.model_copy(update={"evaluation": EvaluationSettings(worker="thread")})
    with TestClient(create_app(threaded)) as client:
        yield client, keys

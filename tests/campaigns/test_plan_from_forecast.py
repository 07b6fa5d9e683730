"""Planning from a real (short) forecast run: records → Prophet → peaks → campaigns."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from service.campaigns.service import plan_campaigns, preview
from service.campaigns.tables import Campaign
from service.config import Settings
from service.forecasting import create_run, execute_run
from service.store.summary import rebuild
from service.store.tables import Complaint

pytestmark = pytest.mark.slow


def test_plan_from_a_real_forecast_run(factory: sessionmaker[Session],
                                       settings: Settings) -> None:
    rng = np.random.default_rng(11)
    start = dt.date(2021, 1, 1)
    rows: list[dict[str, object]] = []
    for i in range(1064):  # up to 2023-11-30
        day = start + dt.timedelta(days=i)
        lam = 3.0 * (5.0 if day.month == 1 and day.day > 7 else 1.0)
        at = dt.datetime(day.year, day.month, day.day, 3, tzinfo=dt.UTC)
        rows.extend({"source": "t", "external_id": f"{i}-{k}", "day": day, "received_at": at,
                     "category": "fireworks", "region": "150100"}
                    for k in range(int(rng.poisson(lam))))
    with factory() as s:
        s.execute(insert(Complaint), rows)
        rebuild(s.connection())  # records written outside an import: summary + coverage
        s.commit()
        run = create_run(session=s, settings=settings, horizon_days=91, engine="serial",
                         signals=["complaints"])
    execute_run(session_factory=factory, run_id=run.id, settings=settings)
    with factory() as s:
        result = plan_campaigns(session=s, settings=settings, today=dt.date(2023, 12, 1))
        assert result.run_id == run.id and result.created, result.as_dict()
        camps = list(s.scalars(select(Campaign).where(Campaign.category == "fireworks")))
        jan = [c for c in camps if c.window_start <= dt.date(2024, 1, 31)
               and c.window_end >= dt.date(2024, 1, 8)]
        assert jan, [(c.window_start, c.window_end) for c in camps]
        c = jan[0]
        assert c.send_date >= dt.date(2023, 12, 1)
        assert c.send_date <= c.window_start - dt.timedelta(days=1)
        assert c.probability is not None and c.probability >= 0.5
        assert c.evidence and c.evidence[0]["weeks"]
        body = preview(session=s, settings=settings, campaign_id=c.id, channel="public").body
        assert "烟花爆竹安全管理条例" in body

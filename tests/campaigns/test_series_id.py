"""A campaign's series id: composed on every flush, backfilled by migration 0007."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text
from sqlalchemy.orm import Session

from models.series import SeriesId
from service.campaigns.service import create_campaign
from service.config import Settings
from service.db import make_engine
from service.migrate import upgrade
from tests.conftest import insert_reference_sql


def test_manual_campaign_gets_the_complaints_series_and_follows_its_signal(
        session: Session, settings: Settings) -> None:
    c = create_campaign(session=session, settings=settings, actor="key:plan0001",
                        category="fireworks", region="150100",
                        window_start=dt.date(2025, 5, 5), window_end=dt.date(2025, 5, 18),
                        today=dt.date(2025, 1, 1))
    assert c.series_id == "complaints|fireworks|150100"
    c.signal = "violations"
    session.flush()
    assert SeriesId.parse(c.series_id) == SeriesId("violations", "fireworks", "150100")


def test_migration_0007_backfills_existing_campaigns(db_url: str) -> None:
    eng = make_engine(db_url)
    try:
        upgrade(eng, "0006_decision_thresholds")
        with eng.begin() as conn:  # plain SQL: the ORM describes the head schema
            insert_reference_sql(conn, {"150100": "a"})
            for cid, signal in (("c1", "'violations'"), ("c2", "NULL")):
                conn.execute(text(
                    "INSERT INTO campaigns (id, status, origin, category, region, signal, "
                    "window_start, window_end, lead_days, planned_send_date, send_date, "
                    "evidence, constraint_notes, review, public, notify_entities, audience, "
                    "title, content_overrides, locked_fields, frozen_content, created_by, "
                    "created_at, updated_at, status_changed_at) VALUES "
                    f"('{cid}', 'draft', 'manual', 'fireworks', '150100', {signal}, "
                    "'2025-05-05', '2025-05-18', 14, '2025-04-21', '2025-04-21', '[]', '[]', "
                    "'{}', true, true, '{}', 't', '{}', '[]', '{}', 'x', "
                    "'2025-01-01 00:00:00+00', '2025-01-01 00:00:00+00', "
                    "'2025-01-01 00:00:00+00')"))
        upgrade(eng)
        with eng.connect() as conn:
            rows = conn.execute(text("SELECT id, series_id FROM campaigns")).all()
        got = {str(cid): str(sid) for cid, sid in rows}
        assert got == {"c1": "violations|fireworks|150100", "c2": "complaints|fireworks|150100"}
    finally:
        eng.dispose()

"""Migrations: head matches the tables, upgrade is idempotent, on both backends."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine

from service.migrate import current_revision, head_revision, is_current, upgrade
from service.schema import metadata


def test_upgrade_reaches_head_and_matches_models(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()
    assert is_current(engine)
    upgrade(engine)  # idempotent
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == [], f"tables and migrations differ: {diff}"


def test_randomised_timing_columns_reach_a_database_with_data(tmp_path: Path) -> None:
    """0004_randomised_timing adds its columns to tables that already hold rows (SQLite
    enforces the foreign keys of existing campaigns, so no table may be rebuilt)."""
    from sqlalchemy import text

    from service.db import make_engine

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO categories (code, name_zh, aliases, lead_days, "
                          "legal_basis, templates, registered_by_import) VALUES ('c', 'c', "
                          "'[]', 14, '[]', '{}', 0)"))
        conn.execute(text("INSERT INTO regions (code, name_zh, level, aliases, "
                          "registered_by_import) VALUES ('r', 'r', 'league', '[]', 0)"))
        conn.execute(text(
            "INSERT INTO campaigns (id, status, origin, category, region, window_start, "
            "window_end, lead_days, planned_send_date, send_date, evidence, constraint_notes, "
            "review, public, notify_entities, audience, title, content_overrides, "
            "locked_fields, frozen_content, created_by, created_at, updated_at, "
            "status_changed_at) VALUES ('x', 'draft', 'planned', 'c', 'r', '2025-03-03', "
            "'2025-03-16', 14, '2025-02-17', '2025-02-17', '[]', '[]', '{}', 1, 1, '{}', 't', "
            "'{}', '[]', '{}', 'p', '2025-01-01', '2025-01-01', '2025-01-01')"))
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT timing FROM campaigns")).scalar_one() == "{}"
        assert conn.execute(text("SELECT randomised_timing FROM categories")).scalar_one() == "{}"
    engine.dispose()


def test_0009_marks_answers_of_earlier_code_stale(tmp_path: Path) -> None:
    """Answers stored before 0009 (by code before the Student-t DiD interval) are recomputed:
    the input generation steps once, and is created at 2 when nothing was ever marked."""
    from sqlalchemy import text

    from service.db import make_engine
    from service.evaluation.storage import read, state

    for start in (None, 3):
        engine = make_engine(f"sqlite:///{tmp_path / f'g{start}.db'}")
        upgrade(engine, "0008_materialised_evaluation")
        with engine.begin() as conn:
            if start is not None:
                conn.execute(text("INSERT INTO evaluation_state (id, generation, changed_at) "
                                  "VALUES ('evaluation', :g, '2026-01-01 00:00:00.000000')"),
                             {"g": start})
            conn.execute(text("INSERT INTO evaluation_results (kind, key, generation, body, "
                              "requested_at) VALUES ('effect', 'c1|', :g, '{}', "
                              "'2026-01-01 00:00:00.000000')"), {"g": start or 1})
        with engine.connect() as conn:
            stored = read(conn, "effect", "c1|")
            assert stored is not None and stored.generation == stored.state.generation
        upgrade(engine)
        with engine.connect() as conn:
            now = state(conn)
            stored = read(conn, "effect", "c1|")
        assert now.generation == (start or 1) + 1 and now.reason is not None
        assert now.changed_at is not None and now.changed_at.tzinfo is not None
        assert stored is not None and stored.generation < stored.state.generation  # stale
        engine.dispose()

"""Shared fixtures: settings and database URLs on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine

from service.config import ApiSettings, Settings
from service.db import make_engine

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data" / "samples"
SHARED = ROOT.parent / "shared"
CHICAGO = SHARED / "data" / "chicago_311"
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def insert_reference_sql(conn: Connection, regions: dict[str, str]) -> None:
    """Category ``fireworks`` and the league ``regions`` (code: name) in plain SQL, for a
    database at an older revision (the ORM classes describe the head schema)."""
    conn.execute(text(
        "INSERT INTO categories (code, name_zh, aliases, lead_days, legal_basis, "
        "templates, registered_by_import) VALUES ('fireworks', 'f', '[]', 14, '[]', "
        "'{}', false)"))
    conn.execute(text("INSERT INTO regions (code, name_zh, level, aliases, registered_by_import) "
                      "VALUES (:code, :name, 'league', '[]', false)"),
                 [{"code": code, "name": name} for code, name in regions.items()])


def _pg_admin() -> Engine:
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_available() -> bool:
    admin = _pg_admin()
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        admin.dispose()


@pytest.fixture
def new_pg_database(pg_available: bool) -> Iterator[Callable[[], str]]:
    """Factory of fresh, empty PostgreSQL databases (dropped after the test)."""
    if not pg_available:
        pytest.fail("PostgreSQL at 127.0.0.1:5432 is not reachable (make pg starts it)")
    created: list[str] = []
    admin = _pg_admin()

    def make() -> str:
        name = f"fw_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"

    yield make
    with admin.connect() as conn:
        for name in created:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.external_service)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh empty database on each backend (SQLite file, then PostgreSQL)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'forewarn.db'}"
    factory: Callable[[], str] = request.getfixturevalue("new_pg_database")
    return factory()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    # keys are re-checked on every request (no key cache) so revocation tests see it at once
    return Settings(_env_file=None, database_url=db_url,
                    categories_file=FIXTURES / "categories.yaml",
                    regions_file=FIXTURES / "regions.yaml", log_json=False,
                    api=ApiSettings(key_cache_seconds=0))


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    from service.migrate import upgrade

    eng = make_engine(settings.database_url)
    upgrade(eng)
    yield eng
    eng.dispose()

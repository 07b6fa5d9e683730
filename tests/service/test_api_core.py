"""API shell: problem details, keys and scopes, series and counts, readiness — on both backends."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from service.api.app import create_app
from service.config import Settings
from service.db import make_sessionmaker
from service.errors import PROBLEM_JSON, AssetMissing, installed_package_dir
from service.store.keys import create_key, revoke_key
from service.store.reference import load_reference
from service.store.summary import rebuild
from service.store.tables import Complaint, EnforcementAction, utcnow


def _add_records(engine: Engine, settings: Settings) -> None:
    factory = make_sessionmaker(engine)
    with factory() as s:
        load_reference(session=s, categories_file=settings.categories_file,
                       regions_file=settings.regions_file)
        days = [dt.date(2024, 1, 1), dt.date(2024, 1, 1), dt.date(2024, 1, 3),
                dt.date(2024, 1, 10)]
        for i, d in enumerate(days):
            s.add(Complaint(source="t", external_id=f"c{i}", day=d,
                            received_at=dt.datetime(d.year, d.month, d.day, 2, tzinfo=dt.UTC),
                            category="fireworks", region="150100"))
        s.add(Complaint(source="t", external_id="other", day=dt.date(2024, 1, 20),
                        received_at=dt.datetime(2024, 1, 20, 2, tzinfo=dt.UTC),
                        category="food_safety", region="150200"))
        for i, found in enumerate([True, False, True]):
            s.add(EnforcementAction(source="t", external_id=f"e{i}", day=dt.date(2024, 1, 5 + i),
                                    occurred_at=dt.datetime(2024, 1, 5 + i, tzinfo=dt.UTC),
                                    category="fireworks", region="150100", action="inspection",
                                    violation_found=found))
        s.flush()
        rebuild(s.connection())  # records written outside an import: summary + coverage
        s.commit()


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    _add_records(engine, settings)
    app = create_app(settings)
    with TestClient(app) as c:
        yield c


@pytest.fixture
def keys(engine: Engine) -> dict[str, str]:
    factory = make_sessionmaker(engine)
    out = {}
    with factory() as s:
        for scope in ("read", "import", "admin"):
            out[scope] = create_key(session=s, name=f"test-{scope}", scopes=[scope])[1]
    return out


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    body = client.get("/readyz").json()
    assert body["status"] == "ready"
    assert body["checks"] == {"database": "ok", "migrations": "current",
                              "scheduler": {"holder": None, "expires_at": None, "alive": False}}


def test_missing_key_is_401_problem(client: TestClient) -> None:
    r = client.get("/v1/series")
    assert r.status_code == 401
    assert r.headers["content-type"] == PROBLEM_JSON
    assert r.headers["www-authenticate"].startswith("ApiKey")
    assert r.json()["status"] == 401 and r.json()["instance"] == "/v1/series"


@pytest.mark.parametrize("bad", ["nope", "fw_deadbeef_xxx", ""])
def test_bad_key_is_401(client: TestClient, bad: str) -> None:
    assert client.get("/v1/series", headers={"X-API-Key": bad}).status_code == 401


def test_wrong_scope_is_403_and_admin_implies_all(client: TestClient,
                                                   keys: dict[str, str]) -> None:
    r = client.get("/v1/series", headers={"X-API-Key": keys["import"]})
    assert r.status_code == 403 and "read" in r.json()["detail"]
    assert client.get("/v1/series", headers={"X-API-Key": keys["admin"]}).status_code == 200


def test_revoked_and_expired_keys_are_refused(client: TestClient, engine: Engine) -> None:
    factory = make_sessionmaker(engine)
    with factory() as s:
        row, key = create_key(session=s, name="r", scopes=["read"])
        _, old = create_key(session=s, name="o", scopes=["read"],
                            expires_at=utcnow() - dt.timedelta(seconds=1))
        assert client.get("/v1/series", headers={"X-API-Key": key}).status_code == 200
        revoke_key(session=s, prefix=row.prefix)
    assert client.get("/v1/series", headers={"X-API-Key": key}).status_code == 401
    assert client.get("/v1/series", headers={"X-API-Key": old}).status_code == 401


def test_series_list(client: TestClient, keys: dict[str, str]) -> None:
    items = client.get("/v1/series", headers={"X-API-Key": keys["read"]}).json()["items"]
    by_id = {s["id"]: s for s in items}
    assert by_id["complaints|fireworks|150100"]["total"] == 4
    assert by_id["complaints|fireworks|150100"]["first_date"] == "2024-01-01"
    assert by_id["complaints|food_safety|150200"]["total"] == 1
    # violations count only actions that found a violation
    assert by_id["violations|fireworks|150100"]["total"] == 2
    assert by_id["complaints|fireworks|150100"]["sources"] == [
        {"name": "t", "first_date": "2024-01-01", "last_date": "2024-01-10", "total": 4}]
    assert by_id["complaints|fireworks|150100"]["coverage"] == [
        {"from": "2024-01-01", "to": "2024-01-20"}]


def test_series_counts_daily_zero_filled(client: TestClient, keys: dict[str, str]) -> None:
    r = client.get("/v1/series/complaints|fireworks|150100/counts",
                   headers={"X-API-Key": keys["read"]})
    assert r.status_code == 200
    points = r.json()["points"]
    # zero-filled over the days its source "t" covers (2024-01-01 .. 2024-01-20)
    assert len(points) == 20
    assert points[0] == {"date": "2024-01-01", "count": 2, "days": 1}
    assert points[1] == {"date": "2024-01-02", "count": 0, "days": 1}
    assert sum(p["count"] for p in points) == 4


def test_series_counts_weekly_and_range(client: TestClient, keys: dict[str, str]) -> None:
    r = client.get("/v1/series/complaints|fireworks|150100/counts",
                   params={"freq": "W", "from": "2024-01-01", "to": "2024-01-14"},
                   headers={"X-API-Key": keys["read"]})
    assert r.json()["points"] == [{"date": "2024-01-01", "count": 3, "days": 7},
                                  {"date": "2024-01-08", "count": 1, "days": 7}]


def test_series_errors(client: TestClient, keys: dict[str, str]) -> None:
    h = {"X-API-Key": keys["read"]}
    r = client.get("/v1/series/complaints|nope|150100/counts", headers=h)
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM_JSON
    r = client.get("/v1/series/bad-id/counts", headers=h)
    assert r.status_code == 422 and "signal|category|region" in r.json()["detail"]
    r = client.get("/v1/series/complaints|fireworks|150100/counts", params={"freq": "M"},
                   headers=h)
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM_JSON
    assert r.json()["errors"][0]["loc"] == ["query", "freq"]


def test_unknown_route_and_method_are_problems(client: TestClient) -> None:
    r = client.get("/nope")
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM_JSON
    r = client.post("/healthz")
    assert r.status_code == 405 and r.headers["content-type"] == PROBLEM_JSON


def test_openapi_documents_security_and_problems(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    op = doc["paths"]["/v1/series"]["get"]
    assert op["security"] == [{"APIKeyHeader": ["read"]}]
    assert PROBLEM_JSON in op["responses"]["401"]["content"]


def test_a_missing_package_asset_is_a_503_service_unavailable_problem() -> None:
    with pytest.raises(AssetMissing) as err:
        installed_package_dir("forewarn_no_such_module", dist="no-such-dist",
                              needed_by="the test needs it")
    body = err.value.problem()
    assert body["status"] == 503
    assert body["type"] == "urn:forewarn:problem:service-unavailable"
    assert "pip install no-such-dist" in body["detail"]

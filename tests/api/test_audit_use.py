"""Every use of the import, plan, approve and admin scopes lands in the audit log: who, what,
when, from where — and never a secret, a body, a query string or personal data."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.audit import AuditEntry

PHONE = "13912345678"
ID_NUMBER = "150102198807071234"


def _entries(client: TestClient) -> list[AuditEntry]:
    factory = client.app.state.sessionmaker  # type: ignore[attr-defined]
    with factory() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.entity_type == "route")
                              .order_by(AuditEntry.id)))


def test_write_scope_uses_are_audited_without_personal_data(
    api: tuple[TestClient, dict[str, str]],
) -> None:
    client, keys = api
    h = {scope: {"X-API-Key": k} for scope, k in keys.items()}
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    record = {"external_id": "A-1", "received_at": "2024-03-01 10:00", "category": "fireworks",
              "region": "150100", "text": f"投诉人电话{PHONE}，身份证{ID_NUMBER}",
              "complainant": "张三", "phone": PHONE}
    r = client.post("/v1/complaints/import", json={"records": [record], "source": "hotline"},
                    headers=h["import"])
    assert r.status_code == 201, r.text
    assert client.post("/v1/campaigns/plan", json={}, headers=h["plan"]).status_code == 404
    assert client.post("/v1/campaigns/nope/approve", json={"note": PHONE},
                       headers=h["approve"]).status_code == 404
    # admin lets a read operation in: that is a use of the admin scope
    assert client.get("/v1/series", params={"category": PHONE},
                      headers={**h["admin"], "X-Request-ID": "rid-admin"}).status_code == 200
    # a key refused for a write scope is recorded as well; reads and anonymous calls are not
    assert client.post("/v1/campaigns/plan", json={}, headers=h["read"]).status_code == 403
    assert client.get("/v1/series", headers=h["read"]).status_code == 200
    assert client.post("/v1/campaigns/plan", json={}).status_code == 401

    rows = _entries(client)
    got = [(e.action, e.entity_id, e.detail["status"]) for e in rows]
    assert got == [
        ("scope.import", "POST /v1/complaints/import", 201),
        ("scope.plan", "POST /v1/campaigns/plan", 404),
        ("scope.approve", "POST /v1/campaigns/{campaign_id}/approve", 404),
        ("scope.admin", "GET /v1/series", 200),
        ("scope.plan", "POST /v1/campaigns/plan", 403),
    ]
    prefixes = {scope: k.split("_")[1] for scope, k in keys.items()}
    assert [e.actor for e in rows] == [f"key:{prefixes[s]}" for s in
                                       ("import", "plan", "approve", "admin", "read")]
    assert rows[0].detail["key_name"] == "import-robot"
    assert rows[3].detail["granted_by"] == "admin" and rows[3].detail["scope"] == "admin"
    assert rows[3].detail["request_id"] == "rid-admin"
    assert all(e.remote_addr == "testclient" for e in rows)
    now = dt.datetime.now(dt.UTC)
    assert all(before <= (e.at if e.at.tzinfo else e.at.replace(tzinfo=dt.UTC)) <= now
               for e in rows)
    dump = repr([(e.actor, e.action, e.entity_id, e.detail, e.remote_addr) for e in rows])
    for secret in (*keys.values(), PHONE, ID_NUMBER, "张三", "hotline", "nope"):
        assert secret not in dump


def test_unhandled_error_is_audited_as_500(api: tuple[TestClient, dict[str, str]],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    client, keys = api
    import service.api.routes.campaigns as routes

    def boom(**_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(routes, "plan_campaigns", boom)
    r = client.post("/v1/campaigns/plan", json={}, headers={"X-API-Key": keys["plan"]})
    assert r.status_code == 500
    assert [(e.action, e.detail["status"]) for e in _entries(client)] == [("scope.plan", 500)]

"""REST: scopes, planning, listing with cursors, manual campaigns, edits, approval, 409s,
preview, audit, and the public JSON and iCalendar output."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import icalendar
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from service.api.app import create_app
from service.campaigns.service import create_recipient, local_today
from service.config import CampaignSettings, Settings
from service.errors import PROBLEM_JSON
from service.store.keys import create_key
from tests.campaigns.conftest import DECISIONS, P, add_run, monday

Client = tuple[TestClient, dict[str, dict[str, str]]]


@pytest.fixture
def api(factory: sessionmaker[Session], settings: Settings) -> Iterator[Client]:
    cfg = CampaignSettings(blackout_holiday_blocks=[])  # dates relative to the real today
    settings = settings.model_copy(update={"campaigns": cfg})
    today = local_today(settings)
    start = monday(today + dt.timedelta(days=70))
    with factory() as s:
        keys = {sc: {"X-API-Key": create_key(session=s, name=sc, scopes=[sc])[1]}
                for sc in ("read", "plan", "approve", "import")}
        add_run(s, [P("fireworks", "150100", start, excess=30),
                    P("food_safety", "150200", start + dt.timedelta(days=28), excess=20),
                    P("gas_safety", "152900", start + dt.timedelta(days=56), excess=10),
                    P("noise", "150100", start, excess=50)],
                train_until=today - dt.timedelta(days=1), decisions=DECISIONS)
        create_recipient(session=s, actor="test", name="呼和浩特市应急管理局",
                         kind="department", region="150100", may_contact=True,
                         webhook_url="https://dept.example/hook", email="dept@example.com")
    with TestClient(create_app(settings)) as client:
        yield client, keys


def _problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    return body


def test_auth_on_every_campaign_endpoint(api: Client) -> None:
    client, keys = api
    calls = [("get", "/v1/campaigns", "read"), ("post", "/v1/campaigns/plan", "plan"),
             ("post", "/v1/campaigns", "plan"), ("get", "/v1/campaigns/x", "read"),
             ("patch", "/v1/campaigns/x", "plan"), ("post", "/v1/campaigns/x/approve", "approve"),
             ("post", "/v1/campaigns/x/cancel", "approve"),
             ("get", "/v1/campaigns/x/preview", "read"), ("get", "/v1/campaigns/x/audit", "read")]
    for method, path, scope in calls:
        r = client.request(method, path, json={})
        _problem(r, 401)
        wrong = "import" if scope == "read" else "read"
        r = client.request(method, path, json={}, headers=keys[wrong])
        assert scope in _problem(r, 403)["detail"]


def test_plan_list_detail_and_pagination(api: Client) -> None:
    client, keys = api
    r = client.post("/v1/campaigns/plan", headers=keys["plan"])
    assert r.status_code == 200, r.text
    plan = r.json()
    assert len(plan["created"]) == 3 and plan["windows"] == 3
    assert [e["category"] for e in plan["errors"]] == ["noise"]
    r = client.post("/v1/campaigns/plan", json={"categories": ["noise"]}, headers=keys["plan"])
    assert "noise" in _problem(r, 422)["detail"]
    r = client.post("/v1/campaigns/plan", json={"today": "2020-01-01"}, headers=keys["plan"])
    assert "past" in _problem(r, 422)["detail"]
    listed = client.get("/v1/campaigns", headers=keys["read"]).json()
    assert listed["next_cursor"] is None and len(listed["items"]) == 3
    dates = [i["send_date"] for i in listed["items"]]
    assert dates == sorted(dates)
    page1 = client.get("/v1/campaigns", params={"limit": 2}, headers=keys["read"]).json()
    assert len(page1["items"]) == 2 and page1["next_cursor"]
    page2 = client.get("/v1/campaigns", params={"limit": 2, "cursor": page1["next_cursor"]},
                       headers=keys["read"]).json()
    assert page2["next_cursor"] is None
    assert [i["id"] for i in page1["items"] + page2["items"]] == [i["id"] for i in
                                                                  listed["items"]]
    _problem(client.get("/v1/campaigns", params={"cursor": "!!"}, headers=keys["read"]), 422)
    only = client.get("/v1/campaigns", params={"category": "food_safety", "status": "draft"},
                      headers=keys["read"]).json()["items"]
    assert [i["category"] for i in only] == ["food_safety"]
    first = listed["items"][0]
    window = client.get("/v1/campaigns", params={"from": first["send_date"],
                                                 "to": first["send_date"]},
                        headers=keys["read"]).json()["items"]
    assert [i["id"] for i in window] == [first["id"]]
    _problem(client.get("/v1/campaigns", params={"status": "bogus"}, headers=keys["read"]), 422)
    detail = client.get(f"/v1/campaigns/{first['id']}", headers=keys["read"]).json()
    assert detail["peak"]["series_id"] == "complaints|fireworks|150100"
    assert detail["evidence"][0]["weeks"] and detail["audience"]["recipients"] == 1
    assert detail["send_date"] == (dt.date.fromisoformat(detail["window_start"])
                                   - dt.timedelta(days=21)).isoformat()
    assert detail["onset"] == detail["window_start"] and (detail["part"], detail["parts"]) \
        == (1, 1)
    assert detail["peak"]["window_start"] == detail["window_start"]
    # the decision of the run, with its evidence, in plain words (Chinese on request)
    decision = detail["decision"]
    assert decision["threshold"] == 0.25 and decision["basis"] == "category"
    assert decision["origins"] == ["2024-06-30", "2024-12-29"] and decision["recall"] == 0.78
    assert decision["explanation"].startswith("Warns when P(spike) ≥ 0.25")
    assert "caught 78 % of the spike windows" in decision["explanation"]
    zh = client.get(f"/v1/campaigns/{first['id']}",
                    headers={**keys["read"], "Accept-Language": "zh-CN,zh;q=0.9"}).json()
    assert zh["decision"]["explanation"].startswith("当 P(高发) ≥ 0.25 时预警")
    by_category = {i["category"]: i["decision"] for i in listed["items"]}
    assert by_category["fireworks"]["threshold"] == 0.25
    assert by_category["food_safety"] is None  # the run decided nothing for it
    _problem(client.get("/v1/campaigns/nope", headers=keys["read"]), 404)


def test_manual_edit_approve_cancel_preview_audit(api: Client) -> None:
    client, keys = api
    today = dt.date.fromisoformat(client.post("/v1/campaigns/plan",
                                              headers=keys["plan"]).json()["today"])
    start = monday(today + dt.timedelta(days=35))
    body = {"category": "gas_safety", "region": "150100", "window_start": start.isoformat(),
            "window_end": (start + dt.timedelta(days=13)).isoformat()}
    r = client.post("/v1/campaigns", json=body, headers=keys["plan"])
    assert r.status_code == 201, r.text
    c = r.json()
    assert r.headers["Location"] == f"/v1/campaigns/{c['id']}" and c["origin"] == "manual"
    _problem(client.post("/v1/campaigns", json={**body, "category": "noise"},
                         headers=keys["plan"]), 422)
    r = client.patch(f"/v1/campaigns/{c['id']}", json={"content_overrides": {
        "email": "{{ category.name_zh }}：{{ evidence }}"}, "title": "燃气安全提示"},
        headers=keys["plan"])
    assert r.status_code == 200 and r.json()["title"] == "燃气安全提示"
    r = client.patch(f"/v1/campaigns/{c['id']}", json={"content_overrides": {
        "email": "{{ oops"}}, headers=keys["plan"])
    problem = _problem(r, 422)
    assert problem["category"] == "gas_safety" and problem["template"] == "campaign:email"
    _problem(client.patch(f"/v1/campaigns/{c['id']}", json={"status": "sent"},
                          headers=keys["plan"]), 422)
    pv = client.get(f"/v1/campaigns/{c['id']}/preview", params={"channel": "email"},
                    headers=keys["read"]).json()
    assert pv["body"].startswith("燃气安全：预计") and pv["frozen"] is False
    pv = client.get(f"/v1/campaigns/{c['id']}/preview", headers=keys["read"]).json()
    assert "《城镇燃气管理条例》" in pv["body"] and pv["channel"] == "public"
    r = client.post(f"/v1/campaigns/{c['id']}/approve", json={"note": "依法提示"},
                    headers=keys["approve"])
    assert r.status_code == 200 and r.json()["status"] == "approved"
    assert r.json()["approved_by"].startswith("key:")
    frozen = client.get(f"/v1/campaigns/{c['id']}/preview", params={"channel": "email"},
                        headers=keys["read"]).json()
    assert frozen["frozen"] is True and frozen["body"].startswith("燃气安全：预计")
    _problem(client.post(f"/v1/campaigns/{c['id']}/approve", headers=keys["approve"]), 409)
    _problem(client.patch(f"/v1/campaigns/{c['id']}", json={"title": "x"},
                          headers=keys["plan"]), 409)
    r = client.post(f"/v1/campaigns/{c['id']}/cancel", json={"reason": "重复"},
                    headers=keys["approve"])
    assert r.json()["status"] == "cancelled" and r.json()["cancel_reason"] == "重复"
    assert "approved" not in _problem(client.post(f"/v1/campaigns/{c['id']}/approve",
                                                  headers=keys["approve"]), 409)["allowed"]
    trail = client.get(f"/v1/campaigns/{c['id']}/audit", headers=keys["read"]).json()["items"]
    assert [e["action"] for e in trail] == ["campaign.created", "campaign.edited",
                                            "campaign.approved", "campaign.cancelled"]
    assert len({e["actor"] for e in trail}) == 2  # the plan key and the approve key
    assert trail[2]["detail"]["reason"] == "依法提示"


def test_public_output_has_no_contacts_and_parses_as_icalendar(api: Client) -> None:
    client, keys = api
    plan = client.post("/v1/campaigns/plan", headers=keys["plan"]).json()
    ids = plan["created"]
    # approve two; the third stays a draft and must not be published
    for cid in ids[:2]:
        c = client.get(f"/v1/campaigns/{cid}", headers=keys["read"]).json()
        client.patch(f"/v1/campaigns/{cid}", json={"send_date": plan["today"]},
                     headers=keys["plan"])
        assert client.post(f"/v1/campaigns/{cid}/approve",
                           headers=keys["approve"]).status_code == 200, c
    r = client.get("/v1/public/reminders")
    assert r.status_code == 200
    items = r.json()["items"]
    assert sorted(i["id"] for i in items) == sorted(ids[:2])
    assert all(i["legal_basis"] and i["text"] for i in items)
    raw = r.text
    for secret in ("example", "dept@", "https://", "E1", "E2", "E3", "应急管理局", "recipients",
                   "entities", "key:", "approved_by"):
        assert secret not in raw, secret
    r = client.get("/v1/public/calendar.ics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/calendar")
    data = r.content
    assert data.endswith(b"\r\n") and b"\n" not in data.replace(b"\r\n", b"")
    assert all(len(line) <= 75 for line in data.split(b"\r\n"))
    for marker in (b"example", b"E1", "应急管理局".encode()):
        assert marker not in data
    cal = icalendar.Calendar.from_ical(data)
    events = list(cal.walk("VEVENT"))
    assert len(events) == 2 and cal["VERSION"] == "2.0" and "PRODID" in cal
    by_uid = {str(e["UID"]).split("@")[0]: e for e in events}
    assert set(by_uid) == set(ids[:2])
    for item in items:
        ev = by_uid[item["id"]]
        assert ev.decoded("DTSTART") == dt.date.fromisoformat(item["window_start"])
        assert ev.decoded("DTEND") == (dt.date.fromisoformat(item["window_end"])
                                       + dt.timedelta(days=1))
        assert "DTSTAMP" in ev and str(ev["SUMMARY"]).startswith("执法事项提示：")
        assert str(ev["DESCRIPTION"]) == item["text"]  # folding and escaping round-trip
    assert b"DTSTART;VALUE=DATE:" in data
    r = client.get("/v1/public/reminders", params={"category": "gas_safety"})
    assert json.loads(r.text)["items"] == []

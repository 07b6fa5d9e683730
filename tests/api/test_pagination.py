"""Cursor pagination on every list endpoint: pages partition the list in a stable order,
bad cursors are 422 problems naming the cursor, and cached peak pages stay correct (both
backends)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.api.pagination import InvalidCursor, decode_cursor, encode_cursor
from service.campaigns.lookups import local_today
from service.config import Settings
from service.errors import PROBLEM_JSON
from service.store.pagination import KeyValue
from tests.api.conftest import CATEGORIES, REGIONS, seed_run


def _walk(client: TestClient, path: str, headers: dict[str, str], limit: int,
          **params: Any) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    cursor, pages = None, 0
    while True:
        q = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        r = client.get(path, params=q, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= limit
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


def test_every_list_pages_through_in_a_stable_order(
    api: tuple[TestClient, dict[str, str]],
) -> None:
    client, keys = api
    read = {"X-API-Key": keys["read"]}
    state = client.app.state  # type: ignore[attr-defined]
    records = [{"external_id": f"E{i}", "received_at": f"2024-0{1 + i % 5}-1{i % 9} 09:00",
                "category": CATEGORIES[i % 2], "region": REGIONS[i % 3]} for i in range(30)]
    assert client.post("/v1/complaints/import", json={"records": records, "source": "t"},
                       headers={"X-API-Key": keys["import"]}).status_code == 201
    seed_run(state.sessionmaker, n_series=6)

    # series: by id
    full = client.get("/v1/series", headers=read).json()
    assert full["next_cursor"] is None and len(full["items"]) == 6
    items, pages = _walk(client, "/v1/series", read, 4)
    assert pages == 2 and items == full["items"]
    assert [s["id"] for s in items] == sorted(s["id"] for s in items)

    # forecasts: (series_id, week), 6 series × 4 weeks
    full = client.get("/v1/forecasts", params={"limit": 1000}, headers=read).json()
    assert len(full["items"]) == 24 and full["next_cursor"] is None
    items, pages = _walk(client, "/v1/forecasts", read, 5)
    assert pages == 5 and items == full["items"]
    keys_ = [(w["series_id"], w["week"]) for w in items]
    assert keys_ == sorted(keys_) and len(set(keys_)) == 24
    fw = _walk(client, "/v1/forecasts", read, 3, category="fireworks")[0]
    assert fw and all("|fireworks|" in w["series_id"] for w in fw)

    # peaks: (start, expected_excess desc, id); 12 peaks with ties on start
    full = client.get("/v1/peaks", params={"limit": 1000}, headers=read).json()
    assert len(full["items"]) == 12 and full["next_cursor"] is None
    for limit in (1, 5, 7):
        items, _ = _walk(client, "/v1/peaks", read, limit)
        assert items == full["items"]
    order = [(p["start"], -p["expected_excess"], p["id"]) for p in full["items"]]
    assert order == sorted(order)
    # served again from the per-run cache: same pages
    again, _ = _walk(client, "/v1/peaks", read, 5)
    assert again == full["items"]
    assert any(k[0] == "peaks" and k[-2] == 5 for k in state.response_cache._data)


def test_campaign_audit_and_public_reminders_page(
    api: tuple[TestClient, dict[str, str]], settings: Settings,
) -> None:
    client, keys = api
    plan, read = {"X-API-Key": keys["plan"]}, {"X-API-Key": keys["read"]}
    today = local_today(settings)  # the deployment's date (UTC's is a day behind after 16:00)
    ids = []
    for i, (cat, reg) in enumerate([(c, r) for c in CATEGORIES for r in REGIONS[:2]]):
        start = today + dt.timedelta(days=30 + 7 * (i % 2))
        r = client.post("/v1/campaigns", headers=plan, json={
            "category": cat, "region": reg, "window_start": str(start),
            "window_end": str(start + dt.timedelta(days=13)), "send_date": str(today)})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
        r = client.post(f"/v1/campaigns/{ids[-1]}/approve", json={},
                        headers={"X-API-Key": keys["approve"]})
        assert r.status_code == 200, r.text
    for n in range(3):
        r = client.patch(f"/v1/campaigns/{ids[0]}", json={"notes": f"n{n}"}, headers=plan)
        assert r.status_code in (200, 409)

    full = client.get(f"/v1/campaigns/{ids[0]}/audit", headers=read).json()
    assert len(full["items"]) >= 2 and full["next_cursor"] is None
    items, pages = _walk(client, f"/v1/campaigns/{ids[0]}/audit", read, 1)
    assert items == full["items"] and pages == len(items)

    full = client.get("/v1/public/reminders").json()
    assert len(full["items"]) == 4 and full["next_cursor"] is None
    items, pages = _walk(client, "/v1/public/reminders", {}, 3)
    assert pages == 2 and items == full["items"]
    order = [(i["window_start"], i["id"]) for i in items]
    assert order == sorted(order)


@pytest.mark.parametrize("path", ["/v1/series", "/v1/forecasts", "/v1/peaks",
                                  "/v1/campaigns/x/audit", "/v1/public/reminders",
                                  "/v1/campaigns", "/v1/dispatches", "/v1/forecast-runs",
                                  "/v1/import-batches", "/v1/scheduler/runs"])
def test_foreign_cursor_is_a_422_problem_naming_the_cursor(api: tuple[TestClient, dict[str, str]],
                                         path: str) -> None:
    client, keys = api
    # also keys no list issues (found by fuzzing the OpenAPI schema; each was a 500): nulls
    # of every length, an integer beyond 64 bits, an instant that overflows on the way to UTC
    odd = [encode_cursor([None] * n) for n in range(1, 5)] + [
        encode_cursor([10**23]), encode_cursor(["0001-01-01T00:00:00+05:00", "x"])]
    for bad in ("not-a-cursor!", encode_cursor(("a", "b", "c", "d", "e")), "e30", *odd):
        r = client.get(path, params={"cursor": bad}, headers={"X-API-Key": keys["read"]})
        if path.endswith("/audit"):
            assert r.status_code == 404  # the campaign is checked first
            continue
        assert r.status_code == 422, (bad, r.text)
        assert r.headers["content-type"] == PROBLEM_JSON
        assert r.json()["errors"][0]["loc"] == ["query", "cursor"]
    r = client.get(path, params={"limit": 0}, headers={"X-API-Key": keys["read"]})
    assert r.status_code == 422


def test_cursor_round_trip_and_validation() -> None:
    key: list[str | dt.date | float | int] = ["run1", dt.date(2026, 1, 5), 2.5, 7]
    assert decode_cursor(encode_cursor(key), (str, dt.date, float, int)) == key
    with pytest.raises(InvalidCursor):
        decode_cursor(encode_cursor(["x", "2026-13-01", 1.0, 1]), (str, dt.date, float, int))
    with pytest.raises(InvalidCursor):
        decode_cursor(encode_cursor([True]), (int,))
    cases: list[tuple[list[KeyValue], tuple[type, ...]]] = [
        ([None], (int,)), ([2**63], (int,)), (["a", None], (str, str)),
        (["0001-01-01T00:00:00+05:00", "x"], (dt.datetime, str)),
        (["x", "2026-01-05", float("inf"), 1], (str, dt.date, float, int))]
    for odd, types in cases:
        with pytest.raises(InvalidCursor):
            decode_cursor(encode_cursor(odd), types)
    assert decode_cursor(encode_cursor([2**63 - 1]), (int,)) == [2**63 - 1]
    assert decode_cursor(encode_cursor(["2026-01-05T08:00:00+08:00"]), (dt.datetime,)) == [
        dt.datetime(2026, 1, 5, 0, 0, tzinfo=dt.UTC)]

"""What analysts meet at the API boundary: unknown filter values are 422 naming the value
and where the known ones are; floats are rounded to 6 significant digits; problem details
come in Chinese for ``Accept-Language: zh`` with the same stable ``type``."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import update

from service.api.i18n import preferred_language
from service.api.numbers import round_floats, round_number
from service.config import Settings
from service.db import make_engine, make_sessionmaker
from service.store.tables import Peak
from tests.api.conftest import seed_run

UNKNOWN = "urn:forewarn:problem:unknown-filter-value"


def test_unknown_filter_values_are_422(api: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = api
    h = {"X-API-Key": keys["read"]}
    for url, param, value, where in [
        ("/v1/peaks?region=999999", "region", "999999", "GET /v1/regions"),
        ("/v1/peaks?category=nonexistent", "category", "nonexistent", "GET /v1/categories"),
        ("/v1/forecasts?region=999999", "region", "999999", "GET /v1/regions"),
        ("/v1/campaigns?category=nonexistent", "category", "nonexistent",
         "GET /v1/categories"),
        ("/v1/public/reminders?region=999999", "region", "999999", "GET /v1/regions"),
    ]:
        r = client.get(url, headers=h)
        assert r.status_code == 422, (url, r.text)
        doc = r.json()
        assert r.headers["content-type"].startswith("application/problem+json")
        assert doc["type"] == UNKNOWN and doc["parameter"] == param and doc["value"] == value
        assert value in doc["detail"] and where in doc["detail"]
    # known values still answer 200 (an empty page is a real "nothing there")
    assert client.get("/v1/peaks?region=150100&category=fireworks", headers=h).status_code \
        == 200
    cats = client.get("/v1/categories", headers=h).json()["items"]
    assert {c["code"] for c in cats} >= {"fireworks", "food_safety"}
    regions = client.get("/v1/regions", headers=h).json()["items"]
    depth = {r["code"]: r["depth"] for r in regions}
    codes = [r["code"] for r in regions]
    # hierarchy order: a parent comes right before its children, siblings by number
    for r in regions:
        if r["parent"]:
            assert codes.index(r["parent"]) < codes.index(r["code"])
            assert depth[r["code"]] == depth[r["parent"]] + 1


def test_problem_details_follow_accept_language(api: tuple[TestClient, dict[str, str]]
                                                ) -> None:
    client, keys = api
    h = {"X-API-Key": keys["read"]}
    en = client.get("/v1/campaigns/nope", headers=h)
    zh = client.get("/v1/campaigns/nope", headers={**h, "Accept-Language": "zh-CN,zh;q=0.9"})
    assert en.status_code == zh.status_code == 404
    assert en.json()["type"] == zh.json()["type"] == "urn:forewarn:problem:not-found"
    assert en.json()["detail"] == "campaign nope does not exist"
    assert zh.json()["detail"] == "提示活动 nope 不存在" and zh.json()["title"] == "未找到"
    assert zh.headers["content-language"] == "zh" and en.headers["content-language"] == "en"
    anon = client.get("/v1/peaks", headers={"Accept-Language": "zh"})
    assert anon.status_code == 401 and "X-API-Key" in anon.json()["detail"]
    assert anon.json()["title"] == "未认证" and anon.json()["type"].endswith(":unauthorized")
    bad = client.get("/v1/peaks?limit=0", headers={**h, "Accept-Language": "zh-CN"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("请求参数无效")
    assert bad.json()["type"].endswith(":invalid-request") and bad.json()["errors"]
    unknown = client.get("/v1/peaks?region=999999", headers={**h, "Accept-Language": "zh"})
    assert unknown.json()["title"] == "未知的筛选值"
    assert "未知的地区“999999”" in unknown.json()["detail"]
    forbidden = client.post("/v1/campaigns/plan", json={},
                            headers={**h, "Accept-Language": "zh"})
    assert forbidden.status_code == 403 and "plan" in forbidden.json()["detail"]
    assert "权限" in forbidden.json()["detail"]
    # q-values decide; English wins when preferred
    assert preferred_language("en-US,en;q=0.9,zh-CN;q=0.8") == "en"
    assert preferred_language("en;q=0.5, zh-Hans;q=0.9") == "zh"
    assert preferred_language(None) == "en"


def test_floats_are_rounded_at_the_boundary(api: tuple[TestClient, dict[str, str]],
                                            settings: Settings) -> None:
    client, keys = api
    engine = make_engine(settings.database_url)
    factory = make_sessionmaker(engine)
    seed_run(factory, n_series=1)
    with factory() as s:
        s.execute(update(Peak).values(expected_excess=2.0999999999999996,
                                      threshold=18.700000000000003, max_probability=0.1 + 0.2))
        s.commit()
    engine.dispose()
    r = client.get("/v1/peaks", headers={"X-API-Key": keys["read"]})
    assert '"expected_excess":2.1,' in r.text and '"threshold":18.7' in r.text
    assert '"max_probability":0.3,' in r.text
    assert "0.30000000000000004" not in r.text and "2.0999999999999996" not in r.text
    assert round_number(123456.789) == 123457.0 and round_number(0.000123456789) == 0.000123457
    assert round_number(12345678.9) == 12345679.0 and round_number(0.0) == 0.0
    assert round_floats({"a": [1, 2.0000000000000004, {"b": 1e-20 + 1}]}) == {"a": [1, 2.0,
                                                                                   {"b": 1.0}]}

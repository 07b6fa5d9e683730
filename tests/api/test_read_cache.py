"""The read cache in front of ``GET /v1/peaks`` and ``GET /v1/series/{id}/forecast`` (issue 13,
service/api/read_cache.py): byte-identical answers, never stale after a run or an import,
never past the key check, one entry per query and language, bounded."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from service.api.cache import ResponseCache
from service.api.read_cache import Entry, ReadCache, canonical_query
from service.audit import AuditEntry
from service.store.freshness import mark_stale
from service.store.tables import ForecastRun
from tests.api.conftest import Served, finish_newer_run


class _NoRouteCache(ResponseCache):
    """The routes' own cache of finished runs' bodies, failing when asked: a request that
    reaches a route fails the test."""

    def get(self, key: Any) -> bytes | None:
        raise AssertionError(f"the route was entered for {key!r}")


def _without_cache(client: TestClient, path: str, **kw: Any) -> Any:
    app: Any = client.app
    kept = app.state.read_cache
    app.state.read_cache = ReadCache(ttl=0, max_bytes=0)  # off
    try:
        return client.get(path, **kw)
    finally:
        app.state.read_cache = kept


_HEADERS = ("content-type", "content-length", "content-language", "vary")


def _route_headers(r: Any) -> dict[str, str | None]:
    return {h: r.headers.get(h) for h in _HEADERS}


def test_a_cached_answer_is_the_uncached_one_byte_for_byte(served: Served) -> None:
    client, app, read, run_id, series = (served.client, served.app, served.read,
                                         served.run_id, served.series)
    cases = [("/v1/peaks", {}, {}),
             ("/v1/peaks", {"category": "fireworks", "limit": "3"},
              {"Accept-Language": "zh-CN,zh;q=0.9"}),
             (f"/v1/series/{series[0]}/forecast", {}, {}),
             (f"/v1/series/{series[1]}/forecast", {"run_id": run_id}, {})]
    plain = [_without_cache(client, p, params=q, headers={**read, **h}) for p, q, h in cases]
    first = [client.get(p, params=q, headers={**read, **h}) for p, q, h in cases]
    cache: ReadCache = app.state.read_cache
    assert len(cache) == len(cases) and cache.hits == 0
    app.state.response_cache = _NoRouteCache()  # from now on a route would fail
    again = [client.get(p, params=q, headers={**read, **h}) for p, q, h in cases]
    assert cache.hits == len(cases)
    for p, f, a in zip(plain, first, again, strict=True):
        assert p.status_code == f.status_code == a.status_code == 200
        assert p.content == f.content == a.content
        assert _route_headers(p) == _route_headers(f) == _route_headers(a)
    assert again[1].headers["content-language"] == "zh"
    assert len(again[1].json()["items"]) == 3
    assert all(a.headers["x-request-id"] for a in again)  # the outer middleware still ran


def test_a_hit_is_audited_and_labelled_as_the_route(served: Served) -> None:
    """An admin key reading is a use of the admin scope, audited on a hit as on a miss, with
    the route's template."""
    client, app, keys = served.client, served.app, served.keys
    for _ in range(2):
        assert client.get("/v1/peaks", headers={"X-API-Key": keys["admin"]}).status_code == 200
    assert app.state.read_cache.hits == 1
    with app.state.sessionmaker() as s:
        got = [(e.action, e.entity_id, e.detail["status"]) for e in s.scalars(
            select(AuditEntry).where(AuditEntry.entity_type == "route"))]
    assert got == [("scope.admin", "GET /v1/peaks", 200)] * 2


def test_a_run_finished_by_the_app_changes_the_answer_at_once(
    served: Served, monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, app, read, old_run, series = (served.client, served.app, served.read,
                                          served.run_id, served.series)
    paths = ["/v1/peaks", f"/v1/series/{series[0]}/forecast"]
    for _ in range(2):  # the second time from the cache
        assert {p["run_id"] for p in client.get(paths[0], headers=read).json()["items"]} \
            == {old_run}
        assert client.get(paths[1], headers=read).json()["run_id"] == old_run
    assert app.state.read_cache.hits == 2
    app.state.latest_run_memo = (float("inf"), old_run)  # remembered for good, unless dropped
    new = finish_newer_run(app, monkeypatch)
    assert {p["run_id"] for p in client.get(paths[0], headers=read).json()["items"]} \
        == {new}
    assert client.get(paths[1], headers=read).json()["run_id"] == new


def test_an_import_changes_the_key_at_once(served: Served) -> None:
    """An import marks the evaluation's inputs stale (service/ingest/publish.py); the mark is
    part of the data version, so no answer cached before it is served after it."""
    client, app, read = served.client, served.app, served.read
    cache: ReadCache = app.state.read_cache
    client.get("/v1/peaks", headers=read)
    client.get("/v1/peaks", headers=read)
    assert (cache.hits, cache.misses) == (1, 1)
    with app.state.sessionmaker() as s:
        mark_stale(s, "import")
        s.commit()
    assert client.get("/v1/peaks", headers=read).status_code == 200
    assert (cache.hits, cache.misses) == (1, 2)
    assert len(cache) == 2


def test_a_refused_key_gets_the_same_problem_and_never_a_cached_body(served: Served) -> None:
    client, app, keys, series = served.client, served.app, served.keys, served.series
    paths = ["/v1/peaks", f"/v1/series/{series[0]}/forecast"]
    for p in paths:  # cached for a read key
        client.get(p, headers={"X-API-Key": keys["read"]})
        assert client.get(p, headers={"X-API-Key": keys["read"]}).status_code == 200
    cache: ReadCache = app.state.read_cache
    hits = cache.hits
    refused = [({}, 401), ({"X-API-Key": "fw_nope_notakey"}, 401),
               ({"X-API-Key": keys["read"] + "x"}, 401), ({"X-API-Key": keys["import"]}, 403),
               ({"X-API-Key": keys["import"], "Accept-Language": "zh"}, 403)]
    for p in paths:
        for headers, status in refused:
            got = client.get(p, headers=headers)
            plain = _without_cache(client, p, headers=headers)
            assert got.status_code == plain.status_code == status
            assert got.headers["content-type"] == "application/problem+json"
            assert got.json() == plain.json()
    assert cache.hits == hits
    assert len(cache) == len(paths)


def test_queries_and_languages_never_share_an_entry(served: Served) -> None:
    client, app, read, run_id = served.client, served.app, served.read, served.run_id
    cache: ReadCache = app.state.read_cache
    one = client.get("/v1/peaks?limit=1", headers=read)
    two = client.get("/v1/peaks?limit=2", headers=read)
    zh = client.get("/v1/peaks?limit=1", headers={**read, "Accept-Language": "zh"})
    # a repeated name: the route takes the last value, so the order of its values matters
    last2 = client.get("/v1/peaks?limit=1&limit=2", headers=read)
    last1 = client.get("/v1/peaks?limit=2&limit=1", headers=read)
    assert cache.hits == 0 and len(cache) == 5
    assert len(one.json()["items"]) == 1 and len(two.json()["items"]) == 2
    assert zh.headers["content-language"] == "zh" and one.headers["content-language"] == "en"
    assert last2.content == two.content and last1.content == one.content
    # the same parameters in another order are the same query
    a = client.get(f"/v1/peaks?limit=2&run_id={run_id}", headers=read)
    b = client.get(f"/v1/peaks?run_id={run_id}&limit=2", headers=read)
    assert a.content == b.content == two.content
    assert cache.hits == 1
    assert canonical_query(b"b=2&a=1&b=1&c=%20") == (("a", "1"), ("b", "2"), ("b", "1"),
                                                     ("c", " "))


def test_running_runs_and_problems_are_not_cached(served: Served) -> None:
    client, app, read, run_id, series = (served.client, served.app, served.read,
                                         served.run_id, served.series)
    with app.state.sessionmaker() as s:
        s.execute(update(ForecastRun).where(ForecastRun.id == run_id).values(status="running"))
        s.commit()
    cache: ReadCache = app.state.read_cache
    for path, params, status in [
            (f"/v1/series/{series[0]}/forecast", {"run_id": run_id}, 200),  # running: partial
            ("/v1/peaks", {"run_id": run_id}, 200),
            (f"/v1/series/{series[0]}/forecast", {}, 404),  # no finished run covers it
            ("/v1/peaks", {"limit": "0"}, 422),
            ("/v1/peaks", {"category": "nonexistent"}, 422)]:
        for _ in range(2):
            assert client.get(path, params=params, headers=read).status_code == status
    assert len(cache) == 0 and cache.hits == 0


def test_the_cache_is_bounded_and_entries_expire() -> None:
    now = [0.0]
    cache = ReadCache(ttl=5.0, max_bytes=1000, timer=lambda: now[0])
    for i in range(50):
        cache.put(("k", i), Entry((), b"x" * 100))
        assert cache.size_bytes <= 1000
    assert len(cache) == 10
    assert cache.get(("k", 49)) is not None and cache.get(("k", 0)) is None
    cache.put(("big",), Entry((), b"x" * 1001))  # larger than the whole cache: not kept
    assert cache.get(("big",)) is None
    now[0] = 5.0 + 1e-6
    assert cache.get(("k", 49)) is None and len(cache) == 0
    assert not ReadCache(ttl=0, max_bytes=1000).enabled


def test_the_latest_answer_from_an_older_run_never_answers_for_the_newest_run(
        served: Served) -> None:
    """The newest run covers only some series; the latest forecast of another series comes
    from the older run and is cached. Asking the newest run by id for that series must not
    get the older run's cached answer (both used to share one cache key)."""
    from service.api.routes.forecasts import forget_latest_run
    from tests.api.conftest import seed_run

    client, app, read, old_run, series = (served.client, served.app, served.read,
                                          served.run_id, served.series)
    app.state.read_cache = ReadCache(ttl=0, max_bytes=0)  # the route's own cache only
    new_run, covered = seed_run(app.state.sessionmaker, n_series=2)
    forget_latest_run(app.state)
    uncovered = series[5]
    assert uncovered not in covered
    latest = client.get(f"/v1/series/{uncovered}/forecast", headers=read)
    assert latest.status_code == 200 and latest.json()["run_id"] == old_run
    assert app.state.latest_run_memo[1] == new_run  # the newest run, remembered
    by_id = client.get(f"/v1/series/{uncovered}/forecast", params={"run_id": new_run},
                       headers=read)
    assert by_id.status_code == 404 or by_id.json()["run_id"] == new_run, by_id.text
    again = client.get(f"/v1/series/{uncovered}/forecast", headers=read)  # from the cache
    assert again.content == latest.content


def test_a_run_ending_during_the_lookup_does_not_leave_the_old_id_remembered(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """The newest run is read, a run ends (its executor drops the memo), then the read's
    result arrives: it answers this request but is not remembered, so the next request
    reads the run that just ended instead of the older one for another second."""
    from service.api.routes import forecasts

    client, app, read, series = served.client, served.app, served.read, served.series
    real = forecasts.latest_run  # type: ignore[attr-defined]

    def a_run_ends_meanwhile(**kw: Any) -> Any:
        got = real(**kw)
        if "series_id" not in kw:  # the lookup of the newest run, not the route's own read
            forecasts.forget_latest_run(app.state)
        return got

    forecasts.forget_latest_run(app.state)
    monkeypatch.setattr(forecasts, "latest_run", a_run_ends_meanwhile)
    assert client.get(f"/v1/series/{series[0]}/forecast", headers=read).status_code == 200
    assert app.state.latest_run_memo == (float("-inf"), None)  # not written back

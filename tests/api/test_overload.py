"""Overload answers 503 with Retry-After, never 500 (RFC 9457 problem details): a pool with
no connection free, a lock not granted in time (SQLite and PostgreSQL), too many requests in
progress; a GET whose client left is cancelled; one forecast run waits at most."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from service.api.app import create_app
from service.api.middleware import InFlightMiddleware
from service.config import ApiSettings, Settings
from service.db import make_engine, make_sessionmaker
from service.errors import PROBLEM_JSON, Conflict
from service.forecasting import create_run
from service.store.tables import ForecastRun
from tests.api.conftest import seed_keys_and_reference


def _settings(settings: Settings, **api: Any) -> Settings:
    return settings.model_copy(update={"api": ApiSettings(key_cache_seconds=0, **api)})


@pytest.fixture
def keys(settings: Settings) -> dict[str, str]:
    return seed_keys_and_reference(settings)


def _is_503(r: Any, problem: str) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == PROBLEM_JSON
    assert int(r.headers["Retry-After"]) >= 1
    body = r.json()
    assert body["type"] == f"urn:forewarn:problem:{problem}" and body["status"] == 503


def test_pool_exhaustion_is_503_not_500(settings: Settings, keys: dict[str, str]) -> None:
    s = _settings(settings, pool_size=1, pool_max_overflow=0, pool_timeout_seconds=0.2)
    app = create_app(s)
    with TestClient(app, raise_server_exceptions=False) as client:
        h = {"X-API-Key": keys["read"]}
        assert client.get("/v1/series", headers=h).status_code == 200
        held = app.state.engine.connect()  # the only connection of the pool
        try:
            r = client.get("/v1/series", headers=h)
            _is_503(r, "overloaded")
            assert "no database connection free" in r.json()["detail"]
            zh = client.get("/v1/series", headers={**h, "Accept-Language": "zh-CN"})
            assert zh.status_code == 503 and "数据库连接已全部占用" in zh.json()["detail"]
        finally:
            held.close()
        assert client.get("/v1/series", headers=h).status_code == 200


@contextmanager
def locked_by_other(settings: Settings) -> Iterator[None]:
    """Another client holds the write lock (SQLite) or an exclusive lock on forecast_runs
    (PostgreSQL) while the test runs."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(str(url.database), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as c:
            c.execute(text("LOCK TABLE forecast_runs IN EXCLUSIVE MODE"))
            try:
                yield
            finally:
                c.rollback()
    finally:
        engine.dispose()


def test_a_lock_not_granted_in_time_is_503(settings: Settings, keys: dict[str, str]) -> None:
    s = _settings(settings, lock_timeout_seconds=0.3)
    with TestClient(create_app(s), raise_server_exceptions=False) as client:
        with locked_by_other(settings):
            r = client.post("/v1/forecast-runs", json={}, headers={"X-API-Key": keys["plan"]})
        _is_503(r, "database-busy")
        assert "the database is busy" in r.json()["detail"]


def test_one_run_waits_at_most(settings: Settings, keys: dict[str, str]) -> None:
    engine = make_engine(settings.database_url)
    factory = make_sessionmaker(engine)
    with factory() as s:
        running = ForecastRun(status="running", engine="serial", horizon_days=28, params={})
        s.add(running)
        s.commit()
        first = create_run(session=s, settings=settings, bounded=True)  # one may wait
        with pytest.raises(Conflict) as exc:
            create_run(session=s, settings=settings, bounded=True)
        assert exc.value.extensions == {"queued_run": first.id, "running_run": running.id}
        assert s.query(ForecastRun).count() == 2  # the refused run was not stored
        run_ids = (running.id, first.id)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        r = client.post("/v1/forecast-runs", json={}, headers={"X-API-Key": keys["plan"]})
        assert r.status_code == 409 and r.headers["content-type"] == PROBLEM_JSON
        body = r.json()
        assert body["queued_run"] == run_ids[1] and body["running_run"] == run_ids[0]
        assert run_ids[1] in body["detail"]
    engine.dispose()


async def _slow_app(scope: Any, receive: Any, send: Any) -> None:
    await scope["gate"].wait()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_requests_beyond_the_limit_get_503_at_once() -> None:
    mw = InFlightMiddleware(_slow_app, max_in_flight=1, retry_after=3)

    async def main() -> list[dict[str, Any]]:
        gate = anyio.Event()
        sent: list[list[dict[str, Any]]] = [[], []]

        def scope() -> dict[str, Any]:
            return {"type": "http", "method": "POST", "path": "/v1/x", "headers": [],
                    "gate": gate}

        async def receive() -> dict[str, Any]:
            await anyio.sleep_forever()
            raise AssertionError

        async with anyio.create_task_group() as tg:
            tg.start_soon(mw, scope(), receive, lambda m: _append(sent[0], m))
            await anyio.wait_all_tasks_blocked()
            assert mw.in_flight == 1
            await mw(scope(), receive, lambda m: _append(sent[1], m))  # answered at once
            gate.set()
        assert mw.in_flight == 0
        return sent[0] + sent[1]

    out = anyio.run(main)
    assert out[0]["status"] == 200
    assert out[2]["status"] == 503 and (b"retry-after", b"3") in out[2]["headers"]
    assert b"urn:forewarn:problem:overloaded" in out[3]["body"]


async def _append(box: list[dict[str, Any]], message: Any) -> None:
    box.append(message)


def test_a_get_whose_client_left_is_cancelled() -> None:
    mw = InFlightMiddleware(_slow_app, max_in_flight=8, retry_after=1)

    async def main() -> tuple[list[dict[str, Any]], int]:
        gate = anyio.Event()
        left = anyio.Event()
        sent: list[dict[str, Any]] = []
        messages = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await left.wait()
            return {"type": "http.disconnect"}

        async with anyio.create_task_group() as tg:
            tg.start_soon(mw, {"type": "http", "method": "GET", "path": "/v1/series",
                               "headers": [], "gate": gate}, receive,
                          lambda m: _append(sent, m))
            await anyio.wait_all_tasks_blocked()
            assert mw.in_flight == 1
            left.set()  # the client goes away before an answer
        return sent, mw.in_flight

    sent, in_flight = anyio.run(main)
    assert sent == [] and in_flight == 0 and mw.abandoned == 1

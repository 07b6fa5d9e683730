"""Request ids, access logs, metrics, body limit, rate limits, security headers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from service.api.app import create_app
from service.api.middleware import RateLimitMiddleware
from service.config import ApiSettings, Settings
from service.db import make_engine, make_sessionmaker
from service.errors import PROBLEM_JSON
from service.migrate import upgrade
from service.store.keys import create_key
from tests.servers import free_port


def _settings(tmp_path: Path, **api: object) -> tuple[Settings, str]:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with make_sessionmaker(engine)() as s:
        _, key = create_key(session=s, name="t", scopes=["read"])
    engine.dispose()
    settings = Settings(_env_file=None, database_url=url, api=ApiSettings.model_validate(api))
    return settings, key


def _client(tmp_path: Path, **api: object) -> tuple[TestClient, str]:
    settings, key = _settings(tmp_path, **api)
    return TestClient(create_app(settings)), key


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    c, key = _client(tmp_path)
    with c:
        yield c, key


def test_request_id_is_echoed_or_created(client: tuple[TestClient, str]) -> None:
    c, _ = client
    assert c.get("/healthz", headers={"X-Request-ID": "abc"}).headers["x-request-id"] == "abc"
    assert len(c.get("/healthz").headers["x-request-id"]) == 32
    assert c.get("/healthz").headers["x-content-type-options"] == "nosniff"


def test_metrics_needs_a_key_and_counts_requests(client: tuple[TestClient, str]) -> None:
    c, key = client
    assert c.get("/metrics").status_code == 401
    c.get("/v1/series", headers={"X-API-Key": key})
    r = c.get("/metrics", headers={"X-API-Key": key})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert 'forewarn_http_requests_total{method="GET",route="/v1/series",status="200"}' in r.text
    assert "forewarn_http_request_duration_seconds_bucket" in r.text


def test_body_limit_413_problem(tmp_path: Path) -> None:
    c, key = _client(tmp_path, max_body_bytes=100)
    with c:
        r = c.post("/v1/forecast-runs", content=b"x" * 500, headers={"X-API-Key": key})
    assert r.status_code == 413 and r.headers["content-type"] == PROBLEM_JSON
    assert r.json()["type"] == "urn:forewarn:problem:payload-too-large"
    assert "100 bytes" in r.json()["detail"]


def test_rate_limit_429_with_retry_after(tmp_path: Path) -> None:
    c, key = _client(tmp_path, rate_limit_per_minute=3)
    with c:
        codes = [c.get("/v1/series", headers={"X-API-Key": key}).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3] == 429
        r = c.get("/v1/series", headers={"X-API-Key": key})
        assert r.headers["content-type"] == PROBLEM_JSON and int(r.headers["retry-after"]) >= 1
        assert r.json()["type"] == "urn:forewarn:problem:too-many-requests"  # as documented
        assert c.get("/healthz").status_code == 200  # health is never limited


def test_access_log_has_request_id_and_no_query_or_secrets(
    client: tuple[TestClient, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from service.logging import configure_logging

    configure_logging("INFO", json=True)
    c, key = client
    c.get("/v1/series/complaints|a|b/counts", params={"from": "2024-01-01"},
          headers={"X-API-Key": key, "X-Request-ID": "rid-1"})
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if '"request"' in ln)
    assert '"request_id": "rid-1"' in line and '"status": 404' in line
    assert "2024-01-01" not in line and key not in err
    assert '"route": "/v1/series/{series_id}/counts"' in line


def test_key_cache_keeps_db_off_the_hot_path_and_honours_revocation(tmp_path: Path) -> None:
    from service.api.deps import KeyCache
    from service.store.keys import revoke_key

    c, key = _client(tmp_path, key_cache_seconds=0.5)
    assert c.app.state.key_cache.ttl == 0.5  # type: ignore[attr-defined]  # the setting
    now = [0.0]  # the cache's clock, moved by hand: no race with a slow machine
    c.app.state.key_cache = KeyCache(ttl=0.5, timer=lambda: now[0])  # type: ignore[attr-defined]
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    with c:
        assert c.get("/v1/series", headers={"X-API-Key": key}).status_code == 200
        with make_sessionmaker(engine)() as s:
            revoke_key(session=s, prefix=key.split("_")[1])
        now[0] = 0.4
        # within the cache time the verified key is still accepted …
        assert c.get("/v1/series", headers={"X-API-Key": key}).status_code == 200
        now[0] = 0.6
        # … and refused once it has run out
        assert c.get("/v1/series", headers={"X-API-Key": key}).status_code == 401
    engine.dispose()


def test_inventing_key_prefixes_does_not_escape_the_rate_limit(tmp_path: Path) -> None:
    c, _ = _client(tmp_path, rate_limit_per_minute=2)
    with c:
        # per-address allowance is 4 × the per-key one: 8 requests, then 429 whatever the key
        codes = [c.get("/v1/series", headers={"X-API-Key": f"fw_{i:08x}_x"}).status_code
                 for i in range(10)]
    assert codes[:8] == [401] * 8
    assert codes[8:] == [429, 429]


def test_a_request_without_a_key_counts_against_its_address(tmp_path: Path) -> None:
    c, key = _client(tmp_path, rate_limit_per_minute=2)
    with c:
        # without a key: per_minute a minute per address (each counts 4 × against its 8)
        codes = [c.get("/v1/series").status_code for _ in range(3)]
        # the address's allowance is used up, whatever key comes next
        keyed = c.get("/v1/series", headers={"X-API-Key": key})
    assert codes == [401, 401, 429]
    assert keyed.status_code == 429 and 1 <= int(keyed.headers["retry-after"]) <= 60


REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own in the local Redis (its keys deleted afterwards);
    skips if that Redis is not reachable."""
    import redis

    r = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        r.ping()
    except redis.RedisError as exc:
        r.close()
        pytest.skip(f"Redis at 127.0.0.1:6379 is not reachable ({type(exc).__name__})")
    prefix = f"fwtest-{uuid.uuid4().hex}"
    yield prefix
    for k in r.scan_iter(f"LIMITS:LIMITER/{prefix}/*"):
        r.delete(k)
    r.close()


def _two_apps(tmp_path: Path, **api: object) -> tuple[TestClient, TestClient, str]:
    """Two API apps (as two processes would be) on one database, with the same settings."""
    settings, key = _settings(tmp_path, **api)
    return TestClient(create_app(settings)), TestClient(create_app(settings)), key


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_rate_limit_storage_shared_or_per_process(tmp_path: Path, storage: str,
                                                  request: pytest.FixtureRequest) -> None:
    """Two app instances: with a Redis storage one combined limit holds across them; with
    the memory storage each keeps its own."""
    api: dict[str, object] = {"rate_limit_per_minute": 3}
    if storage == "redis":
        # the service's 0.5 s socket timeouts, lengthened through the URL (it overrides
        # them): a stalled call on a busy machine would let a request through as "storage down"
        api |= {"rate_limit_storage": REDIS_URL + "?socket_timeout=10&socket_connect_timeout=10",
                "rate_limit_key_prefix": request.getfixturevalue("redis_prefix")}
    a, b, key = _two_apps(tmp_path, **api)
    h = {"X-API-Key": key}
    with a, b:
        codes = [(a if i % 2 == 0 else b).get("/v1/series", headers=h).status_code
                 for i in range(8)]
        last = b.get("/v1/series", headers=h)
    if storage == "redis":  # 3 in all, whichever process answers
        assert codes == [200, 200, 200, 429, 429, 429, 429, 429]
        assert last.status_code == 429 and last.headers["content-type"] == PROBLEM_JSON
        assert 1 <= int(last.headers["retry-after"]) <= 60
        assert last.json()["status"] == 429
    else:  # 3 per process
        assert codes == [200, 200, 200, 200, 200, 200, 429, 429]


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def test_unreachable_rate_limit_storage_lets_requests_through() -> None:
    """Nothing listens on the storage's port: requests pass (the limit is not enforced) and
    the storage is not tried again on every request."""
    mw = RateLimitMiddleware(_ok, per_minute=1,
                             storage=f"redis://127.0.0.1:{free_port()}/0")

    async def call() -> int:
        sent: list[Message] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b""}

        async def send(message: Message) -> None:
            sent.append(message)

        await mw({"type": "http", "path": "/v1/series", "headers": [],
                  "client": ("192.0.2.1", 1)}, receive, send)
        return int(sent[0]["status"])

    async def three() -> list[int]:
        return [await call() for _ in range(3)]

    assert asyncio.run(three()) == [200, 200, 200]
    assert mw._down_until is not None  # the next try waits

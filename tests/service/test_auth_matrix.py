"""Every operation × {no key, key without the scope, key with the scope} (SQLite).

The operations and their scopes come from the app's own OpenAPI document, where each guarded
operation lists its scope in ``security``; open operations list none.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.config import Settings
from service.db import make_engine, make_sessionmaker
from service.migrate import upgrade
from service.store.keys import SCOPES, create_key

OPEN_PATHS = ("/v1/public/", "/healthz", "/readyz")


def _operations() -> list[tuple[str, str, str | None]]:
    app = create_app(Settings(_env_file=None, database_url="sqlite://"), migrate=False)
    ops = []
    for path, item in app.openapi()["paths"].items():
        for method, op in item.items():
            scopes = [sc for req in op.get("security", []) for sc in req.get("APIKeyHeader", [])]
            ops.append((method.upper(), path, scopes[0] if scopes else None))
    return ops


OPERATIONS = _operations()
GUARDED = [op for op in OPERATIONS if op[2] is not None]


@pytest.fixture(scope="module")
def app_and_keys(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    path: Path = tmp_path_factory.mktemp("auth") / "a.db"
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade(engine)
    with make_sessionmaker(engine)() as s:
        keys = {scope: create_key(session=s, name=scope, scopes=[scope])[1] for scope in SCOPES}
    engine.dispose()
    app = create_app(Settings(_env_file=None, database_url=url))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, keys


def test_only_public_and_health_operations_are_open() -> None:
    open_ops = [(m, p) for m, p, scope in OPERATIONS if scope is None]
    assert all(p.startswith(OPEN_PATHS) for _, p in open_ops), open_ops
    assert len(GUARDED) >= 10


@pytest.mark.parametrize(("method", "path", "scope"), GUARDED,
                         ids=[f"{m} {p}" for m, p, _ in GUARDED])
def test_auth_matrix(app_and_keys: tuple[TestClient, dict[str, str]], method: str, path: str,
                     scope: str) -> None:
    client, keys = app_and_keys
    url = re.sub(r"\{[^}]+\}", "x1", path)
    kwargs: dict[str, object] = {"json": {}} if method in ("POST", "PATCH", "PUT") else {}
    r = client.request(method, url, **kwargs)  # type: ignore[arg-type]
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    other = next(s for s in SCOPES if s not in (scope, "admin"))
    r = client.request(method, url, headers={"X-API-Key": keys[other]}, **kwargs)  # type: ignore[arg-type]
    assert r.status_code == 403, r.text
    for allowed in (scope, "admin"):
        r = client.request(method, url, headers={"X-API-Key": keys[allowed]}, **kwargs)  # type: ignore[arg-type]
        assert r.status_code not in (401, 403), (allowed, r.text)
        assert r.status_code < 500, r.text

"""The dashboard's static page and assets (served offline, no key needed for the page)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.config import Settings
from service.dashboard import STATIC_DIR


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    path: Path = tmp_path_factory.mktemp("dash") / "d.db"
    with TestClient(create_app(Settings(_env_file=None, database_url=f"sqlite:///{path}",
                                        log_json=False))) as c:
        yield c


def test_page_is_served_with_security_headers(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert '<script src="/dashboard/vendor/plotly.min.js"></script>' in r.text
    assert "违法高发预警" in r.text


def test_assets_and_bundled_plotly(client: TestClient) -> None:
    r = client.get("/dashboard/app.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert "sessionStorage" in r.text and "localStorage.setItem" not in r.text
    assert client.get("/dashboard/app.css").headers["content-type"].startswith("text/css")
    r = client.get("/dashboard/vendor/plotly.min.js")
    assert r.status_code == 200 and len(r.content) > 1_000_000
    assert b"plotly" in r.content[:2000].lower()
    assert client.get("/dashboard/secrets.txt").status_code == 404
    assert client.get("/dashboard/..%2Fapp.py").status_code == 404


def test_nothing_is_loaded_from_elsewhere() -> None:
    for name in ("index.html", "app.js", "app.css"):
        text = (STATIC_DIR / name).read_text(encoding="utf-8")
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text), name
        assert "cdn" not in text.lower(), name


def test_key_never_goes_into_a_url() -> None:
    js = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    assert "X-API-Key" in js
    assert not re.search(r"[?&](api_?key|key)=", js, re.IGNORECASE)

"""``/docs`` renders in a real Chromium with every request outside the server refused (an
offline intranet): Swagger UI comes from the installed ``fastapi-offline`` package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.evaluation.test_dashboard_browser import ARGS, CHROMIUM, _browser_or_fail
from tests.servers import UVICORN_APP, free_port, running_server, service_env

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = service_env(FOREWARN_DATABASE_URL=f"sqlite:///{tmp_path / 'docs.db'}",
                      FOREWARN_LOG_LEVEL="WARNING")
    with running_server([*UVICORN_APP, "--port", str(port)], port, env=env, cwd=tmp_path,
                        log_path=tmp_path / "uvicorn.log") as base:
        yield base


def test_docs_render_with_the_network_off(server: str) -> None:
    _browser_or_fail()
    from playwright.sync_api import Route, sync_playwright

    outside: list[str] = []

    def only_local(route: Route) -> None:
        url = route.request.url
        if url.startswith(server) or url.startswith("data:"):
            route.continue_()
        else:  # the network is off: anything else fails, as on an offline intranet
            outside.append(url)
            route.abort("internetdisconnected")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/*", only_local)
            page.goto(server + "/docs")
            page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
            text = page.locator(".swagger-ui").inner_text()
            assert "Forewarn" in text
            assert "/v1/recipients" in text and "/v1/keys" in text
            assert page.locator(".swagger-ui .opblock").count() >= 30
            page.goto(server + "/redoc")
            page.wait_for_selector("[role=navigation], .menu-content", timeout=30_000)
            assert "recipients" in page.content()
        finally:
            browser.close()
    assert outside == []
    html = httpx.get(server + "/docs").text
    assert "cdn" not in html.lower() and "/docs/assets/swagger-ui-bundle.js" in html

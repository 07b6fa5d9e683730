"""The dashboard in a real headless Chromium against a running uvicorn server.

Needs Debian's ``chromium`` (``apt-get install -y chromium``) and the ``playwright`` Python
package; Playwright's own browser download is not used. Without them the test FAILS with the
install line (``make test`` installs both), it does not skip.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete

from models.hysteresis import open_probability
from service.campaigns.tables import Campaign
from service.config import Settings
from service.db import make_engine
from service.forecasting import create_run, execute_run
from service.migrate import upgrade
from service.store.keys import create_key
from service.store.tables import Category
from tests.conftest import FIXTURES
from tests.evaluation.conftest import LAST_DAY, Seeded, seed
from tests.servers import UVICORN_APP, free_port, running_server, service_env

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOT_COPY = Path("/tmp/forewarn-dashboard.png")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], Seeded, str]]:
    """Seeded SQLite DB with a real quick forecast, a draft campaign in its horizon, and a
    uvicorn server on a free loopback port."""
    url = f"sqlite:///{tmp_path / 'dash.db'}"
    settings = Settings(_env_file=None, database_url=url, log_json=False,
                        categories_file=FIXTURES / "categories.yaml",
                        regions_file=FIXTURES / "regions.yaml")
    engine = make_engine(url)
    upgrade(engine)
    seeded = seed(engine, settings)
    with seeded.factory() as s:
        s.execute(delete(Campaign).where(Campaign.id == seeded.draft_id))  # far in the future
        s.commit()
        run = create_run(session=s, settings=settings, horizon_days=56, engine="serial",
                         signals=["complaints"])
    execute_run(session_factory=seeded.factory, run_id=run.id, settings=settings)
    start = LAST_DAY + dt.timedelta(days=15)  # a Monday, inside the forecast horizon
    with seeded.factory() as s:
        draft = Campaign(status="draft", category="fireworks", region="150100",
                         signal="complaints", title="【执法事项提示】呼和浩特市·烟花爆竹",
                         window_start=start, window_end=start + dt.timedelta(days=13),
                         send_date=start - dt.timedelta(days=21),
                         planned_send_date=start - dt.timedelta(days=21), run_id=run.id,
                         probability=0.7, lead_days=21)
        s.add(draft)
        fireworks = s.get(Category, "fireworks")
        assert fireworks is not None  # a Mongolian variant (a marked placeholder)
        fireworks.templates = {**(fireworks.templates or {}), "languages": {"mn": {
            "tag": "mn-Mong", "status": "placeholder", "note": "非官方译文",
            "default": "ᠮᠣᠩᠭᠣᠯ ᠪᠢᠴᠢᠭ {{ region.name_zh }} {{ window_start_iso }}"}}}
        s.commit()
        draft_id = draft.id
        keys = {sc: create_key(session=s, name=sc, scopes=[sc])[1] for sc in ("read", "approve")}
        keys["both"] = create_key(session=s, name="analyst", scopes=["read", "approve"])[1]
    engine.dispose()
    port = free_port()
    env = service_env(FOREWARN_DATABASE_URL=url, FOREWARN_LOG_JSON="false",
                      FOREWARN_LOG_LEVEL="WARNING")
    with running_server([*UVICORN_APP, "--port", str(port)], port, env=env, cwd=tmp_path,
                        log_path=tmp_path / "uvicorn.log", ready="/readyz") as base:
        yield base, keys, seeded, draft_id


def _browser_or_fail() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get update && apt-get install -y chromium "
                    "(make test installs it)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("the playwright package is missing: pip install playwright "
                    "(never `playwright install`; Debian's chromium is used)")


def test_dashboard_draws_and_approves(stack: tuple[str, dict[str, str], Seeded, str],
                                      tmp_path: Path) -> None:
    _browser_or_fail()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # a busy 2-core machine: not Playwright's 5 s
    base, keys, seeded, draft_id = stack
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.set_default_timeout(60_000)
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("response", lambda r: problems.append(f"{r.status} {r.url}")
                    if r.status >= 400 else None)
            page.on("request", lambda r: problems.append(f"external request {r.url}")
                    if not r.url.startswith(base) and not r.url.startswith(("data:", "blob:"))
                    else None)
            # "today" is injected: three days after the data end, so both seeded campaigns
            # (food safety in Baotou from LAST_DAY + 8, the fireworks draft from + 15) are ahead
            page.clock.set_fixed_time(dt.datetime.combine(
                LAST_DAY + dt.timedelta(days=3), dt.time(10), tzinfo=dt.UTC))
            page.goto(base + "/")
            expect(page.locator("#status")).to_contain_text("API 密钥")
            page.fill("#api-key", keys["both"])
            page.click("#key-save")
            expect(page.locator("#whoami")).to_contain_text("analyst")
            page.wait_for_selector("#chart .main-svg", timeout=20_000)
            # it opens on the most urgent upcoming campaign window, with the list of them
            upcoming = page.locator("#upcoming li")
            expect(upcoming).to_have_count(2)
            expect(upcoming.first).to_have_attribute("data-series",
                                                     "complaints|food_safety|150200")
            expect(upcoming.nth(1)).to_have_attribute("data-id", draft_id)
            expect(page.locator("#chart-title")).to_contain_text("包头市", timeout=20_000)
            # the region picker holds only regions with a series of the chosen category
            assert page.locator("#region option").evaluate_all(
                "os => os.map(o => o.value)") == ["150200"]
            # today and the data end are marked on the chart
            marks = " ".join(page.locator("#chart .annotation-text").evaluate_all(
                "els => els.map(e => e.textContent)"))
            assert "今天" in marks and "数据截至" in marks, marks
            page.select_option("#category", "fireworks")
            # by the region hierarchy (league / city codes as numbers), with names
            options = page.locator("#region option")
            assert options.evaluate_all("os => os.map(o => o.value)") == [
                "150100", "150200", "152900"]
            assert "呼和浩特市" in options.first.inner_text()
            page.select_option("#region", "150100")
            # the chart draws: plotly's svg with the history, forecast and P(spike) traces
            page.wait_for_selector("#chart .main-svg", timeout=20_000)
            expect(page.locator("#chart-title")).to_contain_text("呼和浩特市", timeout=20_000)
            assert page.locator("#chart .scatterlayer .trace").count() >= 3
            assert page.locator("#chart .barlayer .trace").count() == 1
            # the run's decision threshold: a line on the P(spike) panel, explained in Chinese
            note = page.locator("#decision-note")
            expect(note).to_contain_text("预警规则：当 P(高发) ≥")
            threshold = float(note.get_attribute("data-threshold") or "nan")
            assert 0 < threshold < 1
            marks = " ".join(page.locator("#chart .annotation-text").evaluate_all(
                "els => els.map(e => e.textContent)"))
            shown = marks.split("预警阈值 ")[1:]
            assert shown and abs(float(shown[0].split()[0]) - threshold) < 1e-3, marks
            assert page.evaluate("window.forewarnDashboard.state.chart.decision.threshold") \
                == threshold
            # with an open factor above 1, the level a window must reach is drawn too
            k = page.evaluate("window.forewarnDashboard.state.chart.decision.open_factor") or 1
            opens = note.get_attribute("data-opens")
            if k > 1:
                assert opens is not None and "开启 " in marks, marks
                assert abs(float(opens) - float(open_probability(threshold, k))) < 1e-9
            else:
                assert opens is None and "开启 " not in marks, marks
            assert page.evaluate("sessionStorage.getItem('forewarn.apiKey')") == keys["both"]
            assert keys["both"] not in page.url
            row = page.locator(f"#campaigns tr[data-id='{draft_id}']")
            expect(row).to_have_attribute("data-status", "draft")
            assert row.locator("button.effect-btn").count() == 0  # a draft has no effect
            # the reminder preview: every language of the category side by side, the
            # Mongolian one in traditional script (vertical), marked as a placeholder
            row.locator("button.preview-btn").click()
            variants = page.locator("#preview .variant")
            expect(variants).to_have_count(2, timeout=15_000)
            assert variants.evaluate_all("vs => vs.map(v => v.dataset.language)") == [
                "zh", "mn"]
            expect(page.locator("#preview")).to_have_attribute("data-frozen", "false")
            expect(variants.first).to_contain_text("依据《烟花爆竹安全管理条例》")
            mn = page.locator("#preview .text.lang-mn")
            expect(mn).to_have_attribute("lang", "mn-Mong")
            expect(mn).to_contain_text("ᠮᠣᠩᠭᠣᠯ ᠪᠢᠴᠢᠭ 呼和浩特市")
            expect(page.locator("#preview .variant[data-language='mn'] .placeholder-note")
                   ).to_contain_text("非官方")
            assert mn.evaluate("e => getComputedStyle(e).writingMode") == "vertical-lr"
            left, right = variants.evaluate_all(
                "vs => vs.map(v => v.getBoundingClientRect())")
            assert left["right"] <= right["left"] and abs(left["top"] - right["top"]) < 1
            # repeated clicks cancel the previous request: three loads in a row, two aborted
            before = page.evaluate("window.forewarnDashboard.state.aborted")
            page.evaluate("() => { const d = window.forewarnDashboard; d.showSeries(); "
                          "d.showSeries(); return d.showSeries(); }")
            assert page.evaluate("window.forewarnDashboard.state.aborted") == before + 2
            page.wait_for_selector("#chart .main-svg")
            expect(page.locator("#chart-title")).to_contain_text("呼和浩特市")
            row.locator("button.approve").click()
            expect(page.locator("#status")).to_contain_text("已批准", timeout=15_000)
            expect(page.locator(f"#campaigns tr[data-id='{draft_id}']")).to_have_attribute(
                "data-status", "approved")
            page.wait_for_selector("#chart .main-svg")
            # once approved the preview shows the copies frozen at approval, both languages
            page.locator(f"#campaigns tr[data-id='{draft_id}'] button.preview-btn").click()
            expect(page.locator("#preview")).to_have_attribute("data-frozen", "true",
                                                               timeout=15_000)
            expect(page.locator("#preview h3")).to_contain_text("已冻结")
            expect(page.locator("#preview .variant")).to_have_count(2)
            # the sent campaign's measured effect (actual 16 against the frozen 28)
            page.locator(f"#campaigns tr[data-id='{seeded.sent_id}'] button.effect-btn").click()
            expect(page.locator("#effect")).to_contain_text("实际 16 件", timeout=15_000)
            expect(page.locator("#effect")).to_contain_text("双重差分")
            expect(page.locator("#effect")).to_contain_text("最小可检测效应")
            # states in Chinese: pending with its dates; not sent -> no number (a 409)
            page.check("#all-campaigns")
            page.wait_for_selector(f"#campaigns tr[data-id='{seeded.pending_id}']")
            page.locator(f"#campaigns tr[data-id='{seeded.pending_id}'] button.effect-btn"
                         ).click()
            expect(page.locator("#effect")).to_contain_text("尚待评估", timeout=15_000)
            expect(page.locator("#effect")).to_contain_text("起可出中期估计")
            # an approved campaign that has not been sent offers no effect either (the API
            # answers 409 for it, tests/evaluation/test_api.py)
            approved = page.locator(f"#campaigns tr[data-id='{draft_id}']")
            expect(approved).to_have_attribute("data-status", "approved")
            assert approved.locator("button.effect-btn").count() == 0
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            # the scorecard view
            page.click("button[data-tab='score-view']")
            page.wait_for_selector("#scorecard tbody tr.total", timeout=20_000)
            expect(page.locator("#scorecard tbody")).to_contain_text("违规销售燃放烟花爆竹")
            expect(page.locator("#scorecard tbody")).to_contain_text("双重差分，1 个活动")
            page.screenshot(path=str(tmp_path / "scorecard.png"), full_page=True)
            # a read-only key sees no approve / cancel buttons
            page.click("#key-clear")
            page.click("button[data-tab='series-view']")
            page.fill("#api-key", keys["read"])
            page.click("#key-save")
            expect(page.locator("#whoami")).to_contain_text("read")
            page.wait_for_selector(f"#campaigns tr[data-id='{seeded.sent_id}']")
            assert page.locator("#campaigns button.approve, #campaigns button.cancel").count() == 0
            # a server error shows in Chinese (the client asks for zh; the dashboard relies
            # on the problem's type code, not its text)
            page.click("#key-clear")
            page.fill("#api-key", "fw_00000000_bogus")
            page.click("#key-save")
            expect(page.locator("#status")).to_contain_text("API 密钥无效")
            problems[:] = [p for p in problems
                           if not p.startswith("401 ") and "status of 401" not in p]
        finally:
            browser.close()
    assert shot.stat().st_size > 20_000
    shutil.copyfile(shot, SHOT_COPY)
    r = httpx.get(f"{base}/v1/campaigns/{draft_id}", headers={"X-API-Key": keys["read"]})
    assert r.status_code == 200 and r.json()["status"] == "approved"
    assert r.json()["approved_run_id"] is not None
    assert not problems, problems

"""``forewarn plan`` and ``forewarn campaigns list|show|approve|cancel``."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import typer
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from service.audit import list_entries
from service.cli.campaigns import campaigns_app, plan, plan_summary
from service.config import Settings
from tests.campaigns.conftest import P, add_run

app = typer.Typer()
app.command("plan")(plan)
app.add_typer(campaigns_app, name="campaigns")


def test_cli_plan_show_approve_cancel(factory: sessionmaker[Session], settings: Settings,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREWARN_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("FOREWARN_LOG_JSON", "false")
    monkeypatch.setenv("FOREWARN_CAMPAIGNS__BLACKOUT_HOLIDAY_BLOCKS", "[]")
    today = dt.date(2025, 1, 1)
    with factory() as s:
        add_run(s, [P("fireworks", "150100", dt.date(2025, 5, 5)),
                    P("food_safety", "150200", dt.date(2025, 6, 2)),
                    P("noise", "150100", dt.date(2025, 6, 2))], train_until=today)
    runner = CliRunner()
    r = runner.invoke(app, ["plan", "--today", "2025-01-01"])
    assert r.exit_code == 0, r.output
    assert "2 windows = 2 created + 0 updated + 0 unchanged + 0 flagged" in r.output
    assert "noise" in r.output
    again = runner.invoke(app, ["plan", "--today", "2025-01-01"])
    assert "2 windows = 0 created + 0 updated + 2 unchanged + 0 flagged" in again.output
    r = runner.invoke(app, ["campaigns", "list", "--json"])
    items = json.loads(r.output)
    assert [i["category"] for i in items] == ["fireworks", "food_safety"]
    cid = items[0]["id"]
    r = runner.invoke(app, ["campaigns", "show", cid])
    assert r.exit_code == 0 and "《烟花爆竹安全管理条例》" in r.output
    r = runner.invoke(app, ["campaigns", "approve", cid, "--note", "ok"])
    assert r.exit_code == 0 and "approved" in r.output and "cli:" in r.output
    r = runner.invoke(app, ["campaigns", "approve", cid])
    assert r.exit_code == 3 and "only draft" in r.output
    r = runner.invoke(app, ["campaigns", "cancel", cid, "--reason", "test"])
    assert r.exit_code == 0
    r = runner.invoke(app, ["campaigns", "list", "--status", "cancelled", "--json"])
    assert [i["id"] for i in json.loads(r.output)] == [cid]
    with factory() as s:
        actors = {e.actor for e in list_entries(session=s, entity_id=cid)}
    assert all(a.startswith("cli:") for a in actors)


def test_plan_summary_adds_up() -> None:
    result = {"run_id": "r", "today": "2025-01-01", "windows": 31, "created": ["a", "b"],
              "updated": [], "unchanged": [f"u{i}" for i in range(27)], "untouched": ["m"],
              "flagged": ["f1", "f2"], "superseded": ["s"], "dropped": ["a"]}
    lines = plan_summary(result)
    # 2 + 0 + 27 + 1 window flagged + 1 left alone = 31; the other flagged one lost its window
    assert "31 windows = 2 created + 0 updated + 27 unchanged + 1 flagged for review " \
           "(window moved) + 1 left alone" in lines[0]
    assert "of these, 1 dropped by constraints" in lines[1]
    assert lines[2].startswith("no longer predicted: 1 drafts superseded, 1 approved")

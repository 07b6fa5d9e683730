"""``forewarn plan`` and ``forewarn campaigns list|show|approve|cancel``."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import typer
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from service.audit import list_entries
from service.campaigns.cli import campaigns_app, plan
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
    assert "created 2" in r.output and "noise" in r.output
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

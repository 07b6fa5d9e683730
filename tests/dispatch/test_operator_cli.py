"""``forewarn dispatch run-once`` sends due deliveries in-process; ``forewarn dispatches list
--status dead`` shows the dead letters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from service.cli import app
from service.config import Settings
from service.dispatch.tables import Outbox
from tests.dispatch.conftest import add_rows


def test_run_once_and_dead_letters(factory: sessionmaker[Session], settings: Settings,
                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    add_rows(factory, n=3, channel="file", destination="public")
    add_rows(factory, n=1, channel="webhook", destination="http://10.0.0.1/h", start=10)
    with factory() as s:  # one row that already failed for good
        s.execute(update(Outbox).where(Outbox.recipient_id == "r0").values(
            status="dead", last_error="HTTP 410: gone"))
        s.commit()
    monkeypatch.setenv("FOREWARN_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("FOREWARN_CHANNELS__FILE_DIR", str(tmp_path / "outbox"))
    monkeypatch.setenv("FOREWARN_CHANNELS__ENABLED", '["file","webhook"]')
    monkeypatch.setenv("FOREWARN_CHANNELS__WEBHOOK__SECRETS", '["whsec_QUJDREVGR0g="]')
    runner = CliRunner()
    r = runner.invoke(app, ["dispatch", "run-once"])
    assert r.exit_code == 0, r.output
    # two file rows delivered; the webhook to a private address is refused for good
    assert "claimed 3: delivered 2" in r.stdout and "dead 1" in r.stdout
    written = [json.loads(line) for f in (tmp_path / "outbox").iterdir()
               for line in f.read_text(encoding="utf-8").splitlines()]
    assert sorted(w["recipient_id"] for w in written) == ["r1", "r2"]
    dead = json.loads(runner.invoke(app, ["dispatches", "list", "--status", "dead",
                                          "--json"]).stdout)
    assert sorted(d["recipient_id"] for d in dead) == ["r0", "r10"]
    assert any("private" in (d["last_error"] or "") for d in dead)
    human = runner.invoke(app, ["dispatches", "list", "--status", "dead"]).stdout
    assert "2 deliveries" in human and "retry" in human
    again = runner.invoke(app, ["dispatch", "run-once"])
    assert "claimed 0" in again.stdout

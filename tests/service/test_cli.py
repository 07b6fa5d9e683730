"""The ``forewarn`` CLI against a SQLite file (typer's runner; settings from the environment)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from models.series import SeriesId
from service.cli import app

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FOREWARN_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("FOREWARN_CATEGORIES_FILE", str(FIXTURES / "categories.yaml"))
    monkeypatch.setenv("FOREWARN_REGIONS_FILE", str(FIXTURES / "regions.yaml"))
    monkeypatch.setenv("FOREWARN_LOG_JSON", "false")
    return tmp_path


def test_db_upgrade_and_reference(env: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["db", "upgrade"])
    assert r.exit_code == 0, r.output
    assert "revision" in r.output
    r = runner.invoke(app, ["reference", "load"])
    assert r.exit_code == 0, r.output
    assert "3 categories and 5 regions" in r.output
    r = runner.invoke(app, ["series", "list", "--json"])
    assert r.exit_code == 0 and json.loads(r.output) == []


@pytest.mark.parametrize(("extra", "message"), [
    ({"reminder_cost": 1}, "reminder_cost is set but miss_cost is not"),
    ({"reminder_cost": 5, "miss_cost": 2}, "must be less than miss_cost"),
    ({"beta": "high"}, "beta must be a number"),
    ({"beta": 0}, "beta must be > 0"),
    ({"max_campaign_weeks": 2.5}, "max_campaign_weeks must be a whole number"),
])
def test_reference_load_refuses_bad_decision_fields(env: Path, extra: dict[str, object],
                                                    message: str) -> None:
    import yaml

    doc = yaml.safe_load((FIXTURES / "categories.yaml").read_text(encoding="utf-8"))
    doc["categories"][1] = {**doc["categories"][1], **extra}
    bad = env / "categories.yaml"
    bad.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    runner = CliRunner()
    r = runner.invoke(app, ["reference", "load", "--categories", str(bad)])
    assert r.exit_code == 2
    assert "category 'food_safety'" in r.output and message in r.output
    assert str(bad) in r.output
    # nothing was written: the good file loads, with the rules it sets
    assert runner.invoke(app, ["reference", "load"]).exit_code == 0
    from sqlalchemy import select

    from service.config import Settings
    from service.db import make_engine, make_sessionmaker
    from service.store.tables import Category

    engine = make_engine(Settings().database_url)
    with make_sessionmaker(engine)() as s:
        cats = {c.code: c for c in s.scalars(select(Category))}
    engine.dispose()
    assert (cats["food_safety"].beta, cats["food_safety"].max_campaign_weeks) == (2.0, 6)
    assert (cats["gas_safety"].reminder_cost, cats["gas_safety"].miss_cost) == (1.0, 4.0)
    assert cats["fireworks"].max_campaign_weeks == 4 and cats["fireworks"].beta == 1.0


def test_keys_lifecycle(env: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["keys", "create", "--name", "ana", "--scopes", "read,plan"])
    assert r.exit_code == 0, r.output
    key = r.stdout.strip().splitlines()[0]
    assert key.startswith("fw_")
    prefix = key.split("_")[1]
    listed = json.loads(runner.invoke(app, ["keys", "list", "--json"]).stdout)
    assert listed[0]["prefix"] == prefix and listed[0]["scopes"] == ["plan", "read"]
    assert key not in runner.invoke(app, ["keys", "list"]).output  # never prints secrets
    assert runner.invoke(app, ["keys", "revoke", prefix]).exit_code == 0
    assert runner.invoke(app, ["keys", "revoke", "zzzz"]).exit_code == 1
    bad = runner.invoke(app, ["keys", "create", "--name", "x", "--scopes", "root"])
    assert bad.exit_code != 0 and "unknown scope" in bad.output


def test_keys_bootstrap_is_created_once(env: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["keys", "bootstrap"])
    assert first.exit_code == 0, first.output
    key_file = env / "var" / "admin-key.txt"
    key = key_file.read_text().strip()
    assert key in first.output and oct(key_file.stat().st_mode & 0o777) == "0o600"
    second = runner.invoke(app, ["keys", "bootstrap"])
    assert key in second.output
    assert len(json.loads(runner.invoke(app, ["keys", "list", "--json"]).stdout)) == 1


def test_import_rejects_bad_map_argument(env: Path, tmp_path: Path) -> None:
    f = tmp_path / "x.csv"
    f.write_text("a,b\n1,2\n")
    r = CliRunner().invoke(app, ["import", "complaints", str(f), "--map", "nonsense"])
    assert r.exit_code != 0 and "FIELD=COLUMN" in r.output


def test_forecast_if_none_skips_when_a_run_exists(env: Path) -> None:
    import datetime as dt

    from service.config import Settings
    from service.db import make_engine, make_sessionmaker
    from service.migrate import upgrade
    from service.store.tables import ForecastRun

    settings = Settings()
    engine = make_engine(settings.database_url)
    upgrade(engine)
    with make_sessionmaker(engine)() as s:
        s.add(ForecastRun(status="succeeded", engine="serial", horizon_days=7,
                          finished_at=dt.datetime.now(dt.UTC)))
        s.commit()
    engine.dispose()
    r = CliRunner().invoke(app, ["forecast", "--if-none"])
    assert r.exit_code == 0, r.output
    assert "exists; not forecasting again" in r.output


def _two_seasonal_series(env: Path) -> None:
    """Two years of daily complaints with an August season, imported through the CLI."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    days = pd.date_range("2023-01-02", "2024-12-29", freq="D")
    season = 3.0 + 2.5 * np.sin(2 * np.pi * (np.arange(len(days)) - 136) / 365.25)
    rows: list[dict[str, object]] = []
    for category, region in (("fireworks", "150100"), ("gas_safety", "150200")):
        for day, n in zip(days, rng.poisson(season), strict=True):
            rows.extend({"source": "test", "external_id": f"{category}-{day:%Y%m%d}-{i}",
                         "received_at": f"{day:%Y-%m-%d}T10:00:00+08:00",
                         "category": category, "region": region} for i in range(n))
    pd.DataFrame(rows).to_csv(env / "records.csv", index=False)
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(app, ["reference", "load"]).exit_code == 0
    r = runner.invoke(app, ["import", "complaints", str(env / "records.csv")])
    assert r.exit_code == 0, r.output


@pytest.mark.slow
def test_forecast_prints_thresholds_and_peaks_show_the_decision(env: Path) -> None:
    _two_seasonal_series(env)
    runner = CliRunner()
    r = runner.invoke(app, ["forecast", "--horizon", "36w", "--engine", "serial",
                            "--signal", "complaints"])
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "decision thresholds learned per category on 1 backtest(s)" in out
    assert "fireworks" in out and "gas_safety" in out and "cost_loss" in out
    gas = next(line for line in out.splitlines() if line.strip().startswith("gas_safety"))
    assert "0.250" in gas  # reminder_cost 1 / miss_cost 4
    doc = json.loads(runner.invoke(app, ["peaks", "--json"]).stdout)
    assert doc, "the August season is predicted"
    for row in doc:
        cat = SeriesId.parse(row["series_id"]).category
        assert row["p_min"] == row["decision"]["threshold"]
        assert row["onset"] <= row["start"] and row["max_probability"] >= row["p_min"]
        assert row["decision"]["category"] == cat and row["decision"]["explanation"]
    text = runner.invoke(app, ["peaks"]).stdout
    assert "onset" in text and "p_min" in text and "campaign windows" in text
    assert any(line.startswith(f"{doc[0]['decision']['category']}: Warns when P(spike) ≥")
               for line in text.splitlines())
    zh = runner.invoke(app, ["peaks", "--lang", "zh"]).stdout
    assert "当 P(高发) ≥" in zh
    assert runner.invoke(app, ["peaks", "--lang", "fr"]).exit_code == 2


def test_backtest_prints_scores_by_p_min(env: Path) -> None:
    """``forewarn backtest --p-min-grid``: the curve re-scores the same backtest; at the
    configured p_min it equals the summary; a bad grid is refused."""
    _two_seasonal_series(env)
    runner = CliRunner()
    args = ["backtest", "--origins", "3", "--horizon", "13w", "--model", "seasonal_naive"]
    r = runner.invoke(app, [*args, "--p-min-grid", "0.2,0.5", "--learn", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    learned = {row["category"]: row for row in doc["learned_thresholds"]["seasonal_naive"]}
    assert set(learned) == {"fireworks", "gas_safety"}
    # gas_safety sets reminder_cost 1 and miss_cost 4 (tests/fixtures/categories.yaml)
    assert learned["gas_safety"]["basis"] == "cost_loss"
    assert learned["gas_safety"]["threshold"] == 0.25
    assert learned["fireworks"]["objective"] == "f_beta"
    assert 0.0 < learned["fireworks"]["threshold"] < 1.0
    assert len(learned["fireworks"]["origins"]) == 3
    assert "Warns when P(spike) ≥" in learned["fireworks"]["explanation"]
    for key in ("average_precision", "auc", "brier", "in_time", "f1"):
        assert key in doc["seasonal_naive"]
    curve = {row["p_min"]: row for row in doc["p_min_curve"]}
    assert set(curve) == {0.2, 0.5}
    assert {row["model"] for row in curve.values()} == {"seasonal_naive"}
    summary = doc["seasonal_naive"]
    assert curve[0.5]["n_actual"] == summary["n_actual"] > 0
    assert curve[0.5]["n_predicted"] == summary["n_predicted"]
    assert curve[0.2]["n_caught"] >= curve[0.5]["n_caught"] == summary["n_caught"]
    text = runner.invoke(app, [*args, "--p-min-grid", "0.3", "--learn"])
    assert text.exit_code == 0 and "spike windows by p_min" in text.output
    assert "p_min 0.5 (the default" in text.output
    assert "thresholds learned from these origins" in text.output
    assert "gas_safety: Warns when P(spike) ≥ 0.25 (the cost/loss rule" in text.output
    bad = runner.invoke(app, [*args, "--p-min-grid", "0.5,lots"])
    assert bad.exit_code == 2 and "--p-min-grid" in bad.output


def test_cli_logs_quiet_human_and_on_stderr(env: Path) -> None:
    """Logs never mix with a command's stdout: quiet by default, ``-v`` shows human lines
    on stderr, and an explicit FOREWARN_LOG_JSON=true still gives JSON lines."""
    import os

    from service.cli.support import cli_log_options, set_verbosity
    from service.config import Settings

    os.environ.pop("FOREWARN_LOG_JSON", None)
    assert cli_log_options(Settings(_env_file=None)) == ("WARNING", False)
    assert cli_log_options(Settings(_env_file=None, log_level="DEBUG", log_json=True)) == (
        "DEBUG", True)
    set_verbosity(1)
    try:
        assert cli_log_options(Settings(_env_file=None))[0] == "INFO"
    finally:
        set_verbosity(0)
    csv = env / "c.csv"
    csv.write_text("external_id,received_at,category,region\n"
                   "a1,2025-01-02 08:00,fireworks,150100\n", encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(app, ["reference", "load"]).exit_code == 0
    quiet = runner.invoke(app, ["import", "complaints", str(csv), "--source", "t", "--json"])
    assert quiet.exit_code == 0, quiet.output
    assert json.loads(quiet.stdout)["inserted"] == 1  # stdout is the JSON document alone
    assert "import_finished" not in quiet.stderr
    loud = runner.invoke(app, ["-v", "import", "complaints", str(csv), "--source", "t2",
                               "--force"])  # the same file again: forced
    assert loud.exit_code == 0, loud.output
    assert "import_finished" in loud.stderr and "import_finished" not in loud.stdout
    line = next(ln for ln in loud.stderr.splitlines() if "import_finished" in ln)
    assert not line.lstrip().startswith("{")  # a human line, not JSON
    os.environ["FOREWARN_LOG_JSON"] = "true"
    as_json = runner.invoke(app, ["-v", "import", "complaints", str(csv), "--source", "t3",
                                 "--force"])
    line = next(ln for ln in as_json.stderr.splitlines() if "import_finished" in ln)
    assert json.loads(line)["event"] == "import_finished"


def test_paused_gc_nests_and_restores_the_collector() -> None:
    import gc

    from service.gcpause import paused_gc

    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()  # it was off before: left off
    finally:
        gc.enable()


@pytest.mark.slow
def test_a_forecast_run_killed_mid_run_is_interrupted_at_the_next_start(env: Path) -> None:
    """kill -9 of ``forewarn forecast`` while it fits: the run row still says ``running``;
    the next start (here the API's) marks it failed -- interrupted, nothing stored -- so that
    the API does not show it running for 12 hours."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from fastapi.testclient import TestClient
    from sqlalchemy import func, select

    from service.api.app import create_app
    from service.config import Settings
    from service.db import make_engine, make_sessionmaker
    from service.store.tables import ForecastPoint, ForecastRun

    _two_seasonal_series(env)
    factory = make_sessionmaker(make_engine(Settings().database_url))

    def run_row() -> ForecastRun | None:
        with factory() as s:
            return s.scalars(select(ForecastRun)).first()

    proc = subprocess.Popen(
        [sys.executable, "-c", "from service.cli import app; app()", "forecast",
         "--engine", "serial", "--signal", "complaints"],
        cwd=env, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while ((row := run_row()) is None or row.status != "running") \
                and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert row is not None and row.status == "running" and proc.poll() is None, \
            "the CLI run never showed running while its process lived"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(30)
    left = run_row()
    assert left is not None and left.status == "running" and left.owner is not None
    assert str(proc.pid) in left.owner
    with TestClient(create_app(Settings())):  # the next start
        pass
    after = run_row()
    assert after is not None and after.status == "failed"
    assert (after.error or "").startswith("interrupted") and after.finished_at is not None
    with factory() as s:  # nothing of it was stored
        assert s.scalar(select(func.count()).select_from(ForecastPoint)) == 0

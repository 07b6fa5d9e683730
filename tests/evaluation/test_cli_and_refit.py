"""``forewarn evaluate``, and campaign windows kept out of later fits."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from service.campaigns.tables import Campaign
from service.cli.evaluation import evaluate
from service.config import Settings
from service.evaluation import mask_sent_campaigns
from service.forecasting import create_run, execute_run
from service.store.series import daily_frame
from service.store.tables import SeriesIssue
from tests.evaluation.conftest import LAST_DAY, TREATED, WINDOW, Seeded

app = typer.Typer()
app.command("evaluate")(evaluate)
app.command("noop")(lambda: None)  # a second command keeps "evaluate" a sub-command


def test_cli_evaluate(seeded: Seeded, settings: Settings,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREWARN_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("FOREWARN_LOG_JSON", "false")
    runner = CliRunner()
    r = runner.invoke(app, ["evaluate", "--campaign", seeded.sent_id])
    assert r.exit_code == 0, r.output
    assert "evaluation: complete" in r.output and "effect -12.0 (-43 %)" in r.output
    assert "calibration: UNCALIBRATED" in r.output
    assert "counterfactual (uncalibrated): actual 16" in r.output
    assert "difference-in-differences (2 controls)" in r.output
    r = runner.invoke(app, ["evaluate", "--group-by", "department", "--json"])
    assert r.exit_code == 0, r.output
    sc = json.loads(r.output)
    assert {g["key"] for g in sc["groups"]} >= {"公共安全", "餐饮"}
    r = runner.invoke(app, ["evaluate", "--from", "2024-01-01"])
    assert r.exit_code == 0 and "违规销售燃放烟花爆竹" in r.output and "合计" in r.output
    assert "counted: 0 by the calibrated counterfactual, 1 by difference-in-differences" \
        in r.output
    r = runner.invoke(app, ["evaluate", "--campaign", "nope"])
    assert r.exit_code == 2 and "does not exist" in r.output
    r = runner.invoke(app, ["evaluate", "--group-by", "sector"])
    assert r.exit_code == 2


def test_mask_sent_campaigns(seeded: Seeded) -> None:
    with seeded.factory() as s:
        frame = daily_frame(session=s, signal="complaints")
        # a sent campaign whose window runs past the last record day
        s.add(Campaign(status="sent", category="fireworks", region="150200",
                       signal="complaints", title="t",
                       window_start=LAST_DAY - dt.timedelta(days=3),
                       window_end=LAST_DAY + dt.timedelta(days=10),
                       send_date=LAST_DAY - dt.timedelta(days=20),
                       planned_send_date=LAST_DAY - dt.timedelta(days=20)))
        s.commit()
    masked = mask_sent_campaigns(session_factory=seeded.factory, frame=frame)
    assert len(masked) == len(frame)
    nan = masked[masked["y"].isna()]
    treated = nan[nan["unique_id"] == TREATED]
    assert list(treated["ds"]) == list(pd.date_range(WINDOW[0], WINDOW[1], freq="D"))
    other = nan[nan["unique_id"] == "complaints|fireworks|150200"]
    assert list(other["ds"]) == list(pd.date_range(LAST_DAY - dt.timedelta(days=3),
                                                   LAST_DAY - dt.timedelta(days=1), freq="D"))
    assert set(nan["unique_id"]) == {TREATED, "complaints|fireworks|150200"}
    # the draft and the not-yet-observed campaign mask nothing; the input is untouched
    assert frame["y"].notna().all()
    unmasked = masked[masked["y"].notna()].merge(frame, on=["unique_id", "ds"])
    assert (unmasked["y_x"] == unmasked["y_y"]).all()


@pytest.mark.slow
def test_forecast_run_leaves_sent_windows_out(seeded: Seeded, settings: Settings) -> None:
    with seeded.factory() as s:
        run = create_run(session=s, settings=settings, horizon_days=28, engine="serial",
                         signals=["complaints"])
    done = execute_run(session_factory=seeded.factory, run_id=run.id, settings=settings)
    assert done.status in ("succeeded", "partial") and done.train_until == LAST_DAY
    with seeded.factory() as s:
        gappy = {i.series_id: i.detail for i in s.scalars(select(SeriesIssue).where(
            SeriesIssue.run_id == run.id, SeriesIssue.code == "gappy"))}
    assert set(gappy) == {TREATED}
    assert gappy[TREATED].startswith("14 of ")

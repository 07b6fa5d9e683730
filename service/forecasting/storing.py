"""Storing a finished forecast run's results: daily points, weekly P(spike) with sample
paths, peak windows, series issues and fitted models, and the run row's outcome, in one
transaction."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pandas as pd
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from service.forecasting.decisions import Decider
from service.metrics import FORECAST_RUNS, PEAKS_FOUND, SERIES_FIT_SECONDS
from service.store.freshness import mark_stale
from service.store.series import parse_series_id
from service.store.tables import (
    FittedModel,
    ForecastPoint,
    ForecastRun,
    ForecastWeek,
    Peak,
    SeriesIssue,
    utcnow,
)

__all__ = ["store_results"]

_CHUNK = 5000  # rows per INSERT


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict("records")  # type: ignore[return-value]


def _day(v: Any) -> dt.date | None:
    return None if v is None or pd.isna(v) else pd.Timestamp(v).date()


def store_results(
    factory: sessionmaker[Session], run_id: str, result: Any, probs: pd.DataFrame,
    peaks: pd.DataFrame, t_load: float, t_fit: float, t0: float, decider: Decider,
    stored_samples: int,
) -> None:
    """Write the rows of ``result`` (a :class:`models.runner` result), ``probs`` and
    ``peaks``, and finish the run row (status, counts, decisions, durations); marks the
    evaluation stale in the same transaction."""
    out = result.output
    fit_seconds: dict[str, float] = getattr(result, "fit_seconds", {}) or {}
    peak_rows = _peak_rows(run_id, peaks)
    rows: list[tuple[Any, list[dict[str, Any]]]] = [
        (ForecastPoint, _point_rows(run_id, out.daily)),
        (ForecastWeek, _week_rows(run_id, probs, out.weekly_samples, stored_samples)),
        (Peak, peak_rows),
        (SeriesIssue, _issue_rows(run_id, out)),
        (FittedModel, [{"run_id": run_id, "series_id": uid, "model_type": "prophet",
                        "artifact": js, "fit_seconds": fit_seconds.get(uid)}
                       for uid, js in result.model_json.items()]),
    ]
    failed = int(out.failures["unique_id"].nunique()) if len(out.failures) else 0
    t_store = time.perf_counter()
    with factory() as s:
        for table, table_rows in rows:
            for i in range(0, len(table_rows), _CHUNK):
                s.execute(insert(table), table_rows[i:i + _CHUNK])
        run = s.get(ForecastRun, run_id)
        assert run is not None
        run.failed = failed
        run.done = run.total
        run.status = "partial" if failed else "succeeded"
        run.finished_at = utcnow()
        mark_stale(s, "forecast run finished")  # the worker recomputes the evaluation
        FORECAST_RUNS.labels(run.status).inc()
        PEAKS_FOUND.inc(len(peak_rows))
        for seconds in fit_seconds.values():
            SERIES_FIT_SECONDS.observe(seconds)
        run.decisions = decider.document()
        run.durations = {"load_seconds": round(t_load, 3), "fit_seconds": round(t_fit, 3),
                         "store_seconds": round(time.perf_counter() - t_store, 3),
                         "total_seconds": round(time.perf_counter() - t0, 3),
                         "series_fit_seconds_sum": round(sum(fit_seconds.values()), 3),
                         **{k: round(v, 3) for k, v in decider.seconds.items()}}
        s.commit()


def _point_rows(run_id: str, daily: pd.DataFrame) -> list[dict[str, Any]]:
    """``forecast_points``: the daily forecast with its interval."""
    frame = daily.assign(run_id=run_id, series_id=daily["unique_id"],
                         ds=pd.to_datetime(daily["ds"]).dt.date)
    return _records(frame[["run_id", "series_id", "ds", "yhat", "yhat_lower", "yhat_upper",
                           "model"]])


def _week_rows(run_id: str, probs: pd.DataFrame, weekly_samples: pd.DataFrame,
               stored_samples: int) -> list[dict[str, Any]]:
    """``forecast_weeks``: expected count, P(spike) and threshold per week, with the first
    ``stored_samples`` sample paths of the week."""
    samples = weekly_samples.iloc[:, :stored_samples]
    sample_lists = {
        (uid, pd.Timestamp(week).date()): [round(float(v), 3) for v in row]
        for (uid, week), row in zip(samples.index, samples.to_numpy(), strict=True)
    }
    weeks = probs.assign(run_id=run_id, series_id=probs["unique_id"],
                         week=pd.to_datetime(probs["week"]).dt.date)
    week_rows = _records(weeks[["run_id", "series_id", "week", "expected", "p_spike",
                                "threshold"]])
    for row in week_rows:
        row["samples"] = sample_lists.get((row["series_id"], row["week"]), [])
    return week_rows


def _peak_rows(run_id: str, peaks: pd.DataFrame) -> list[dict[str, Any]]:
    """``peaks``: the campaign windows with their series' signal, category and region."""
    peak_rows = []
    for p in _records(peaks):
        sid = parse_series_id(p["unique_id"])
        peak_rows.append({
            "run_id": run_id, "series_id": p["unique_id"], "signal": sid.signal,
            "category": sid.category, "region": sid.region,
            "start": pd.Timestamp(p["start"]).date(), "end": pd.Timestamp(p["end"]).date(),
            "peak_week": pd.Timestamp(p["peak_week"]).date(),
            "expected_count": float(p["expected_count"]),
            "expected_excess": float(p.get("expected_excess", 0.0)),
            "max_probability": float(p["max_probability"]), "threshold": float(p["threshold"]),
            "onset": _day(p["onset"]), "p_min": float(p["p_min"]),
            "window_start": _day(p["window_start"]), "window_end": _day(p["window_end"]),
            "part": int(p["part"]), "parts": int(p["parts"]),
        })
    return peak_rows


def _issue_rows(run_id: str, out: Any) -> list[dict[str, Any]]:
    """``series_issues``: failed series, then flags of the forecasters."""
    issues = [{"run_id": run_id, "series_id": r["unique_id"], "kind": "failure",
               "code": "error", "detail": str(r["error"])[:2000]}
              for r in _records(out.failures)]
    issues += [{"run_id": run_id, "series_id": r["unique_id"], "kind": "flag",
                "code": str(r["flag"]), "detail": str(r["detail"])}
               for r in _records(out.flags)]
    return issues

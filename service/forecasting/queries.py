"""Reading forecast runs and their results: the newest finished run, one series' forecast,
predicted peak windows. Plain Core selects where no ORM object is needed."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Select, desc, select
from sqlalchemy.orm import Session

from service.errors import NotFound
from service.store.series import parse_series_id
from service.store.tables import ForecastPoint, ForecastRun, ForecastWeek, Peak, SeriesIssue

__all__ = ["FINISHED", "get_run", "latest_run", "series_forecast", "peaks_query", "list_peaks"]

FINISHED = ("succeeded", "partial")


def get_run(*, session: Session, run_id: str) -> ForecastRun:
    run = session.get(ForecastRun, run_id)
    if run is None:
        raise NotFound(f"forecast run {run_id} does not exist")
    return run


def latest_run(*, session: Session, series_id: str | None = None) -> ForecastRun | None:
    """The newest finished run (that forecast ``series_id``, when given)."""
    stmt = (select(ForecastRun).where(ForecastRun.status.in_(FINISHED))
            .order_by(desc(ForecastRun.finished_at)))
    if series_id is None:
        return session.scalar(stmt.limit(1))
    # the newest runs usually cover every series: probe them through the primary key
    for run in session.scalars(stmt.limit(20)):
        if session.scalar(select(ForecastWeek.week).where(
                ForecastWeek.run_id == run.id, ForecastWeek.series_id == series_id).limit(1)):
            return run
    return None


def series_forecast(*, session: Session, series_id: str,
                    run_id: str | None = None) -> dict[str, Any]:
    """Daily points and weekly P(spike) of one series from the latest (or a given) run.

    Returns plain dicts (``points``: ds, yhat, yhat_lower, yhat_upper; ``weeks``: week,
    expected, p_spike, threshold; ``flags``) — read with Core selects, no ORM objects.
    """
    parse_series_id(series_id)
    run = get_run(session=session, run_id=run_id) if run_id else latest_run(
        session=session, series_id=series_id)
    if run is None:
        raise NotFound(f"no finished forecast run covers series '{series_id}'")
    fp, fw, si = ForecastPoint, ForecastWeek, SeriesIssue
    points = [r._asdict() for r in session.execute(
        select(fp.ds, fp.yhat, fp.yhat_lower, fp.yhat_upper)
        .where(fp.run_id == run.id, fp.series_id == series_id).order_by(fp.ds))]
    if not points:
        raise NotFound(f"run {run.id} has no forecast for series '{series_id}'")
    weeks = [r._asdict() for r in session.execute(
        select(fw.week, fw.expected, fw.p_spike, fw.threshold)
        .where(fw.run_id == run.id, fw.series_id == series_id).order_by(fw.week))]
    flags = [r._asdict() for r in session.execute(
        select(si.kind, si.code, si.detail).where(si.run_id == run.id,
                                                  si.series_id == series_id))]
    return {"series_id": series_id, "run_id": run.id, "train_until": run.train_until,
            "points": points, "weeks": weeks, "flags": flags}


def peaks_query(*, run_id: str, category: str | None = None, region: str | None = None,
                signal: str | None = None, date_from: dt.date | None = None,
                date_to: dt.date | None = None,
                min_probability: float | None = None) -> Select[Peak]:
    """Peaks of ``run_id`` that match the filters and overlap [from, to] (not yet ordered)."""
    stmt = select(Peak).where(Peak.run_id == run_id)
    if category:
        stmt = stmt.where(Peak.category == category)
    if region:
        stmt = stmt.where(Peak.region == region)
    if signal:
        stmt = stmt.where(Peak.signal == signal)
    if date_from:
        stmt = stmt.where(Peak.end >= date_from)
    if date_to:
        stmt = stmt.where(Peak.start <= date_to)
    if min_probability is not None:
        stmt = stmt.where(Peak.max_probability >= min_probability)
    return stmt


def list_peaks(*, session: Session, run_id: str | None = None, category: str | None = None,
               region: str | None = None, signal: str | None = None,
               date_from: dt.date | None = None, date_to: dt.date | None = None,
               min_probability: float | None = None) -> list[Peak]:
    """Predicted peak windows of the latest (or a given) run that overlap [from, to]."""
    if run_id is None:
        run = latest_run(session=session)
        if run is None:
            return []
        run_id = run.id
    stmt = peaks_query(run_id=run_id, category=category, region=region, signal=signal,
                       date_from=date_from, date_to=date_to, min_probability=min_probability)
    return list(session.scalars(stmt.order_by(Peak.start, desc(Peak.expected_excess))))

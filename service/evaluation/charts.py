"""What the dashboard chart and ``forecast.png`` draw for one series."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.series import to_weekly
from service.campaigns.tables import Campaign
from service.errors import NotFound
from service.forecasting import latest_run, list_peaks
from service.forecasting.decisions import public_decision
from service.store.series import daily_frame, parse_series_id
from service.store.tables import Category, ForecastRun, ForecastWeek, Region


def series_chart(*, session: Session, series_id: str, history_weeks: int = 104,
                 run_id: str | None = None, language: str = "zh") -> dict[str, Any]:
    """Everything a chart of one series shows.

    Returns
    -------
    dict ``series_id, signal, category, region, category_name, region_name, run_id,
    train_until, data_from, data_to`` (the days the series' own sources cover, first and
    last), ``history`` (``week, count``: complete weeks of the series' own data, the last
    ``history_weeks`` up to ``data_to``; ``count`` None for a week its sources do not cover
    completely),
    ``forecast`` (``week, expected, lower_80, upper_80, p_spike, threshold``: the run's
    weekly forecast, bands from the sample paths), ``threshold``, ``peaks`` (``start, end,
    peak_week, max_probability, expected_count, onset, p_min``), ``decision`` (the run's
    decision threshold for the category with its evidence and explanation in ``language``,
    service.forecasting.decisions; None for runs without one) and ``campaigns`` (``id,
    status, title, window_start, window_end, send_date``) of the series' category and
    region.

    Raises
    ------
    NotFound
        Neither records nor a forecast exist for the series.
    """
    sid = parse_series_id(series_id)
    cat = session.get(Category, sid.category)
    reg = session.get(Region, sid.region)
    out: dict[str, Any] = {
        "series_id": series_id, "signal": sid.signal, "category": sid.category,
        "region": sid.region, "category_name": cat.name_zh if cat else sid.category,
        "region_name": reg.name_zh if reg else sid.region,
        "category_name_en": cat.name_en if cat else sid.category,
        "region_name_en": reg.name_en if reg else sid.region,
        "run_id": None, "train_until": None, "data_from": None, "data_to": None,
        "history": [], "forecast": [],
        "threshold": None, "peaks": [], "campaigns": [], "decision": None,
    }
    run = (session.get(ForecastRun, run_id) if run_id
           else latest_run(session=session, series_id=series_id))
    if run_id and run is None:
        raise NotFound(f"forecast run {run_id} does not exist")
    daily = daily_frame(session=session, signal=sid.signal, series_ids=[series_id])
    if len(daily):  # the series' own data window, not the signal's
        first, end = daily["ds"].iloc[0], daily["ds"].iloc[-1]
        out["data_from"], out["data_to"] = first.date(), end.date()
        start = max(first, end - pd.Timedelta(days=7 * history_weeks + 6))
        weekly = to_weekly(daily[daily["ds"] >= start])
        if len(weekly):  # a week its sources do not cover completely is a gap (None)
            weeks = pd.date_range(weekly["week"].iloc[0], weekly["week"].iloc[-1], freq="7D")
            counts = weekly.set_index("week")["y"].reindex(weeks)
            out["history"] = [{"week": w.date(), "count": None if np.isnan(y) else int(y)}
                              for w, y in zip(weeks, counts.to_numpy(dtype=float),
                                              strict=True)]
    if run is not None:
        rows = session.scalars(select(ForecastWeek).where(
            ForecastWeek.run_id == run.id, ForecastWeek.series_id == series_id)
            .order_by(ForecastWeek.week)).all()
        out["run_id"], out["train_until"] = run.id, run.train_until
        for r in rows:
            lo, hi = (np.quantile(np.asarray(r.samples, dtype=float), [0.1, 0.9])
                      if r.samples else (r.expected, r.expected))
            out["forecast"].append({"week": r.week, "expected": float(r.expected),
                                    "lower_80": float(lo), "upper_80": float(hi),
                                    "p_spike": float(r.p_spike), "threshold": float(r.threshold)})
        if rows:
            out["threshold"] = float(rows[0].threshold)
        out["decision"] = public_decision(run.decisions, sid.category, language=language)
        out["peaks"] = [{"start": p.start, "end": p.end, "peak_week": p.peak_week,
                         "max_probability": p.max_probability,
                         "expected_count": p.expected_count, "onset": p.onset,
                         "p_min": p.p_min}
                        for p in list_peaks(session=session, run_id=run.id,
                                            category=sid.category, region=sid.region,
                                            signal=sid.signal)]
    if not out["history"] and not out["forecast"]:
        raise NotFound(f"series '{series_id}' has neither records nor a forecast")
    out["campaigns"] = [
        {"id": c.id, "status": c.status, "title": c.title, "window_start": c.window_start,
         "window_end": c.window_end, "send_date": c.send_date}
        for c in session.scalars(select(Campaign).where(
            Campaign.category == sid.category, Campaign.region == sid.region,
            Campaign.status != "superseded").order_by(Campaign.window_start))]
    return out


"""Placebo windows and the calibration of a campaign's counterfactual (see the package
docstring: why calibrate)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.effect import Calibration, placebo_calibration, window_weeks
from service.campaigns.tables import Campaign
from service.evaluation.common import (
    _PLACEBO_MARGIN_DAYS,
    COMMITTED_STATUSES,
    MIN_PLACEBOS,
    PLACEBO_LOOKBACK_DAYS,
    weekly_panel,
)
from service.store.tables import ForecastRun, ForecastWeek, Peak

_PLACEBO_FRAME: dict[str, Any] = {"run_id": str, "series_id": str, "category": str, "region": str,
                  "start": "datetime64[ns]", "end": "datetime64[ns]",
                  "train_until": "datetime64[ns]", "lead_days": int, "actual": float,
                  "counterfactual": float, "counterfactual_sd": float}


def _empty_placebos() -> pd.DataFrame:
    return pd.DataFrame({k: pd.Series(dtype=v) for k, v in _PLACEBO_FRAME.items()})


def placebo_windows(
    *,
    session: Session,
    signal: str,
    panel: pd.DataFrame | None = None,
    before: dt.date | None = None,
    since: dt.date | None = None,
    min_probability: float = 0.0,
) -> pd.DataFrame:
    """Predicted peak windows of stored runs that are complete in the data: placebo candidates.

    Every peak window of a finished run (``Peak`` rows of the signal with ``max_probability >=
    min_probability``, the planner's filter) whose weeks are all observed, with its actual
    total and the frozen forecast's window totals. Which of them had no campaign is decided
    per evaluated campaign (:func:`campaign_calibration`), so one frame serves many campaigns.

    Parameters
    ----------
    panel : weekly panel of the signal (:func:`weekly_panel`), to share.
    before : only windows ending before this day (the evaluated window's start).
    since : only windows starting on or after this day.

    Returns
    -------
    DataFrame ``run_id, series_id, category, region, start, end`` (Monday of the first,
    Sunday of the last window week), ``train_until`` (the run's data cut-off), ``lead_days``
    (``start - train_until``), ``actual`` (observed window total), ``counterfactual`` and
    ``counterfactual_sd`` (mean and sd of the run's sample paths' window totals).
    """
    stmt = (select(Peak.run_id, Peak.series_id, Peak.category, Peak.region, Peak.start,
                   Peak.end, ForecastRun.train_until)
            .join(ForecastRun, ForecastRun.id == Peak.run_id)
            .where(Peak.signal == signal, ForecastRun.status.in_(("succeeded", "partial")),
                   Peak.max_probability >= min_probability))
    if before is not None:
        stmt = stmt.where(Peak.end < before)
    if since is not None:
        stmt = stmt.where(Peak.start >= since)
    peaks = session.execute(stmt).all()
    if not peaks:
        return _empty_placebos()
    if panel is None:
        panel = weekly_panel(session=session, signal=signal)
    counts = {(u, pd.Timestamp(w)): float(y) for u, w, y in
              panel[["unique_id", "week", "y"]].itertuples(index=False, name=None)}
    todo: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    rows: list[dict[str, Any]] = []
    for p in peaks:
        if p.train_until is None:
            continue
        weeks = window_weeks(p.start, p.end)
        got = [counts.get((p.series_id, pd.Timestamp(w))) for w in weeks]
        if any(g is None for g in got):
            continue  # not complete in the data
        todo.setdefault((p.run_id, p.series_id), []).append(
            (p, weeks, float(sum(g for g in got if g is not None))))
    for (run_id, series_id), items in todo.items():
        lo = min(w[0] for _, w, _ in items).date()
        hi = max(w[-1] for _, w, _ in items).date()
        samples = {pd.Timestamp(r.week): np.asarray(r.samples, dtype=float)
                   for r in session.execute(select(ForecastWeek.week, ForecastWeek.samples).where(
                       ForecastWeek.run_id == run_id, ForecastWeek.series_id == series_id,
                       ForecastWeek.week >= lo, ForecastWeek.week <= hi))
                   if r.samples}
        for p, weeks, actual in items:
            paths = [samples.get(pd.Timestamp(w)) for w in weeks]
            if any(x is None for x in paths) or len({len(x) for x in paths if x is not None}) > 1:
                continue
            totals = np.sum([x for x in paths if x is not None], axis=0)
            start = pd.Timestamp(weeks[0])
            rows.append({
                "run_id": run_id, "series_id": series_id, "category": p.category,
                "region": p.region, "start": start,
                "end": pd.Timestamp(weeks[-1]) + pd.Timedelta(days=6),
                "train_until": pd.Timestamp(p.train_until),
                "lead_days": int((start - pd.Timestamp(p.train_until)).days),
                "actual": actual, "counterfactual": float(totals.mean()),
                "counterfactual_sd": float(totals.std())})
    if not rows:
        return _empty_placebos()
    return pd.DataFrame(rows).astype(_PLACEBO_FRAME).sort_values(
        ["series_id", "start", "run_id"]).reset_index(drop=True)


def _committed_windows(session: Session) -> pd.DataFrame:
    rows = session.execute(select(Campaign.category, Campaign.region, Campaign.window_start,
                                  Campaign.window_end).where(
        Campaign.status.in_(COMMITTED_STATUSES))).all()
    return pd.DataFrame([(c, r, pd.Timestamp(s), pd.Timestamp(e)) for c, r, s, e in rows],
                        columns=["category", "region", "c_start", "c_end"])


def _select_placebos(candidates: pd.DataFrame, committed: pd.DataFrame, *,
                     window_start: pd.Timestamp, lead_days: int | None,
                     lookback_days: int) -> pd.DataFrame:
    """Candidates without a campaign, before the window, one per real window (the forecast
    whose lead time is closest to the campaign's)."""
    f = candidates[(candidates["end"] < window_start)
                   & (candidates["start"] >= window_start - pd.Timedelta(days=lookback_days))]
    if f.empty:
        return f
    if len(committed):
        margin = pd.Timedelta(days=_PLACEBO_MARGIN_DAYS)
        m = f.reset_index().merge(committed, on=["category", "region"])
        hit = m[(m["start"] <= m["c_end"] + margin) & (m["end"] >= m["c_start"] - margin)]
        f = f[~f.index.isin(hit["index"])]
    if f.empty:
        return f
    # one placebo per real window: cluster overlapping windows of a series across runs
    f = f.sort_values(["series_id", "start", "end"])
    prev_end = f.groupby("series_id")["end"].transform(lambda e: e.cummax().shift())
    new = prev_end.isna() | (f["start"] > prev_end)
    f = f.assign(cluster=new.astype(int).cumsum())
    target = lead_days if lead_days is not None else int(f["lead_days"].median())
    f = f.assign(_dist=(f["lead_days"] - target).abs())
    best = f.sort_values(["cluster", "_dist", "train_until"], ascending=[True, True, False])
    return best.drop_duplicates("cluster").drop(columns=["cluster", "_dist"])


def campaign_calibration(
    *,
    candidates: pd.DataFrame,
    committed: pd.DataFrame,
    category: str,
    window_start: Any,
    lead_days: int | None,
    min_placebos: int = MIN_PLACEBOS,
    lookback_days: int = PLACEBO_LOOKBACK_DAYS,
) -> tuple[Calibration, str | None, pd.DataFrame]:
    """Placebo calibration for one campaign window.

    Placebos are the ``candidates`` (:func:`placebo_windows`) that end before
    ``window_start``, start within ``lookback_days`` of it, and overlap (±7 days) no
    committed campaign of their category and region (``committed``: ``category, region,
    c_start, c_end``); one per real window (runs predicting overlapping windows of a series
    are one cluster; the forecast whose lead time is closest to ``lead_days`` represents it).
    The campaign's category is used when it has at least ``min_placebos``; otherwise every
    category and region of the signal is pooled.

    Returns
    -------
    (Calibration, pooled_over, placebos) — ``pooled_over`` is ``"category"``, ``"signal"``
    (all categories and regions) or None (no placebo at all); ``placebos`` the rows used.
    """
    start = pd.Timestamp(window_start)
    chosen = _select_placebos(candidates, committed, window_start=start, lead_days=lead_days,
                              lookback_days=lookback_days)
    same = chosen[chosen["category"] == category]
    pooled: str | None
    if len(same) >= min_placebos:
        used, pooled = same, "category"
    else:
        used, pooled = chosen, ("signal" if len(chosen) else None)
    return placebo_calibration(used, min_placebos=min_placebos), pooled, used


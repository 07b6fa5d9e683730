"""What the evaluation modules share: campaign states, constants, the weekly panel, JSON-safe
numbers."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.series import to_weekly
from service.campaigns.status import COMMITTED, SENT
from service.campaigns.tables import Campaign
from service.errors import UnprocessableContent
from service.store.series import SIGNALS, daily_frame
from service.store.tables import ForecastWeek

#: Campaigns whose reminders went out (or are going out): the one status vocabulary.
SENT_STATUSES = SENT
#: Campaigns a department committed to (approved or later, not withdrawn).
COMMITTED_STATUSES = COMMITTED
GroupBy = Literal["category", "region", "department"]
EvaluationState = Literal["complete", "interim", "pending", "unavailable"]
_NO_DEPARTMENT = "未指定"
ScoreMethod = Literal["counterfactual", "did", "none"]
_CONTROL_GAP_DAYS = 28  # a control region's campaign this close before the window disqualifies it
#: Placebo windows needed before a counterfactual estimate is ``calibrated``.
MIN_PLACEBOS = 8
#: Placebo windows must start at most this many days before the evaluated window.
PLACEBO_LOOKBACK_DAYS = 3 * 365
_PLACEBO_MARGIN_DAYS = 7  # a placebo window this close to a committed campaign's is not one


# --------------------------------------------------------------------------- data access
def _daily(session: Session, signal: str, *, category: str | None = None,
           region: str | None = None, until: dt.date | None = None) -> pd.DataFrame:
    """Daily counts ``unique_id, ds, y`` of the signal's series, filtered in SQL, each over
    the days its own sources cover (:func:`service.store.series.daily_frame`)."""
    return daily_frame(session=session, signal=signal, until=until, category=category,
                       region=region)


def weekly_panel(*, session: Session, signal: str, category: str | None = None,
                 region: str | None = None, until: dt.date | None = None) -> pd.DataFrame:
    """Complete-week counts of every series of ``signal`` (optionally one category / region).

    Returns
    -------
    DataFrame ``unique_id, week, y`` (``week`` = Monday, tz-naive), sorted.
    """
    daily = _daily(session, signal, category=category, region=region, until=until)
    if daily.empty:
        return pd.DataFrame({"unique_id": pd.Series(dtype=str),
                             "week": pd.Series(dtype="datetime64[ns]"),
                             "y": pd.Series(dtype=float)})
    return to_weekly(daily)


def _series_id(signal: str, category: str, region: str) -> str:
    return f"{signal}|{category}|{region}"


def _campaign_signal(c: Campaign, signal: str | None) -> str:
    sig = signal or c.signal or "complaints"
    if sig not in SIGNALS:
        raise UnprocessableContent(f"signal must be one of {', '.join(SIGNALS)}")
    return sig


def _load_samples(session: Session, run_id: str, series_id: str) -> pd.DataFrame:
    rows = session.execute(select(ForecastWeek.week, ForecastWeek.samples).where(
        ForecastWeek.run_id == run_id, ForecastWeek.series_id == series_id)
        .order_by(ForecastWeek.week)).all()
    rows = [r for r in rows if r.samples]
    return pd.DataFrame({"week": pd.to_datetime([r.week for r in rows]),
                         "samples": [r.samples for r in rows]})


def _num(x: Any) -> Any:
    """JSON-safe scalar: NaN/inf -> None, timestamps -> dates, numpy -> Python."""
    if isinstance(x, pd.Timestamp):
        return x.date()
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _clean(d: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, list | tuple):
            out[k] = [_num(i) for i in v]
        elif isinstance(v, dict):
            out[k] = {str(kk): _num(vv) for kk, vv in v.items()}
        else:
            out[k] = _num(v)
    return out


"""Training masks: a refit does not learn a sent campaign's dip as seasonality."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.effect import mask_campaign_windows
from service.campaigns.tables import Campaign
from service.evaluation.common import SENT_STATUSES, _series_id
from service.store.series import SIGNALS


def sent_campaign_windows(*, session: Session, until: dt.date | None = None) -> pd.DataFrame:
    """Windows of campaigns whose reminders went out, one row per series they touch.

    Returns
    -------
    DataFrame ``unique_id, start, end`` (both signals of the campaign's category and region;
    windows starting after ``until`` left out).
    """
    stmt = select(Campaign.category, Campaign.region, Campaign.window_start,
                  Campaign.window_end).where(Campaign.status.in_(SENT_STATUSES))
    if until is not None:
        stmt = stmt.where(Campaign.window_start <= until)
    rows = [(_series_id(sig, cat, reg), s, e) for cat, reg, s, e in session.execute(stmt)
            for sig in SIGNALS]
    return pd.DataFrame(rows, columns=["unique_id", "start", "end"])


def mask_sent_campaigns(*, session_factory: sessionmaker[Session],
                        frame: pd.DataFrame) -> pd.DataFrame:
    """The training frame with the days of sent campaigns' windows unobserved (``y`` NaN).

    Only past days are masked, and never a series' last day: the forecast origin stays where
    it was (see :func:`models.effect.mask_campaign_windows`). Thresholds and spike scoring
    should keep using the unmasked frame.

    Parameters
    ----------
    frame : long daily frame ``unique_id, ds, y``.

    Returns
    -------
    ``frame`` itself when no sent campaign touches it, else a masked copy.
    """
    if frame.empty:
        return frame
    last = pd.Timestamp(frame["ds"].max()).normalize()
    with session_factory() as s:
        windows = sent_campaign_windows(session=s, until=last.date())
    windows = windows[windows["unique_id"].isin(set(frame["unique_id"].unique()))]
    if windows.empty:
        return frame
    # never a series' own last day: each series' forecast starts where its data ends
    cap = pd.to_datetime(windows["unique_id"].map(frame.groupby("unique_id")["ds"].max())
                         ) - pd.Timedelta(days=1)
    ends = pd.to_datetime(windows["end"])
    windows = windows.assign(end=ends.where(ends <= cap, cap),
                             start=pd.to_datetime(windows["start"]))
    windows = windows[windows["end"] >= windows["start"]]
    if windows.empty:
        return frame
    return mask_campaign_windows(frame, windows)


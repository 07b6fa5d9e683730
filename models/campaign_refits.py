"""Feeding campaigns back into later fits, so the model does not learn a campaign-induced dip
as a new seasonal trough: :func:`mask_campaign_windows` (y -> NaN in the windows) and
:func:`campaign_holidays` (Prophet ``holidays`` rows per series)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.types import require_columns

__all__ = ["CAMPAIGN_HOLIDAY", "HOLIDAY_COLUMNS", "campaign_holidays", "mask_campaign_windows"]

CAMPAIGN_HOLIDAY = "campaign"
HOLIDAY_COLUMNS = ["unique_id", "holiday", "ds", "lower_window", "upper_window"]


def _campaign_rows(campaigns: pd.DataFrame, post_days: int) -> pd.DataFrame:
    require_columns(campaigns, ("unique_id", "start", "end"), "campaigns")
    if post_days < 0:
        raise ValueError("post_days must be >= 0")
    c = pd.DataFrame({
        "unique_id": campaigns["unique_id"].astype(str).to_numpy(),
        "start": pd.to_datetime(campaigns["start"]).dt.normalize().to_numpy(),
        "end": (pd.to_datetime(campaigns["end"]).dt.normalize()
                + pd.Timedelta(days=post_days)).to_numpy(),
    })
    bad = c[c["end"] < c["start"]]
    if len(bad):
        raise ValueError(f"campaign windows end before they start: "
                         f"{bad[['unique_id', 'start']].values.tolist()[:5]}")
    return c


def campaign_holidays(
    campaigns: pd.DataFrame, *, name: str = CAMPAIGN_HOLIDAY, post_days: int = 0
) -> pd.DataFrame:
    """Prophet holiday rows marking campaign windows, per series.

    Parameters
    ----------
    campaigns : DataFrame ``unique_id, start, end`` (window days, inclusive).
    name : holiday name. One recurring name means one coefficient per series: the average
        campaign effect, which the fit then keeps out of trend and seasonality.
    post_days : extend each window by this many days (a lingering effect).

    Returns
    -------
    DataFrame ``unique_id, holiday, ds, lower_window, upper_window``: one row per series and
    day of a campaign window (windows ``0, 0``; overlapping campaigns give one row per day),
    sorted by ``unique_id, ds``. Drop ``unique_id`` and concatenate a series' rows to its
    Prophet ``holidays`` frame. Only past windows belong there: a future row would make the
    forecast assume a campaign effect (the counterfactual must not).
    """
    c = _campaign_rows(campaigns, post_days)
    rows = [(u, d) for u, s, e in c.itertuples(index=False, name=None)
            for d in pd.date_range(s, e, freq="D")]
    out = pd.DataFrame(rows, columns=["unique_id", "ds"])
    out["ds"] = pd.to_datetime(out["ds"])
    out = out.drop_duplicates().sort_values(["unique_id", "ds"]).reset_index(drop=True)
    out.insert(1, "holiday", name)
    out["lower_window"] = 0
    out["upper_window"] = 0
    return out[HOLIDAY_COLUMNS]


def mask_campaign_windows(
    df: pd.DataFrame, campaigns: pd.DataFrame, *, post_days: int = 0
) -> pd.DataFrame:
    """Set ``y`` to NaN on campaign-window days so a refit ignores them.

    Parameters
    ----------
    df : long daily frame ``unique_id, ds, y``.
    campaigns : DataFrame ``unique_id, start, end`` (window days, inclusive).
    post_days : also mask this many days after each window.

    Returns
    -------
    Copy of ``df`` with ``y`` NaN (float) where ``ds`` falls in a campaign window of its
    series. :class:`models.forecast.ProphetForecaster` treats NaN days as unobserved (flag
    ``gappy``). A window reaching the last day of the history moves the forecast origin back
    to the last unmasked day: predict correspondingly more days. The baselines in
    :mod:`models.baselines` reject NaN counts; use :func:`campaign_holidays` or unmasked data
    for them.
    """
    c = _campaign_rows(campaigns, post_days)
    out = df.copy()
    out["y"] = pd.to_numeric(out["y"], errors="coerce").astype(float)
    ds = pd.to_datetime(out["ds"]).dt.normalize()
    uid = out["unique_id"].astype(str)
    mask = np.zeros(len(out), dtype=bool)
    for u, s, e in c.itertuples(index=False, name=None):
        mask |= ((uid == u) & (ds >= s) & (ds <= e)).to_numpy()
    out.loc[mask, "y"] = np.nan
    return out

"""Week helpers shared by the effect estimators (ISO weeks labelled by their Monday)."""

from __future__ import annotations

from collections.abc import Iterable
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from models.series import monday_of

__all__ = ["window_weeks"]

LEVELS = (0.8, 0.95)
Z = {level: NormalDist().inv_cdf(0.5 + level / 2) for level in LEVELS}
FloatArray = np.ndarray[Any, np.dtype[np.float64]]


def window_weeks(start: Any, end: Any) -> pd.DatetimeIndex:
    """ISO-week Mondays of the window ``start..end`` (both inclusive, any day in a week).

    Raises
    ------
    ValueError
        If ``end`` is before ``start``.
    """
    s, e = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    if e < s:
        raise ValueError(f"window end {e.date()} is before its start {s.date()}")
    return pd.date_range(monday_of(s), monday_of(e), freq="7D", unit="ns")


def fmt_weeks(weeks: Iterable[pd.Timestamp]) -> str:
    return ", ".join(str(pd.Timestamp(w).date()) for w in weeks)


def week_index(index: pd.Index) -> pd.DatetimeIndex:
    weeks = pd.DatetimeIndex(pd.to_datetime(index)).normalize()
    if (weeks.day_of_week != 0).any():
        bad = weeks[weeks.day_of_week != 0]
        raise ValueError(f"weeks must be labelled by their Monday; got {fmt_weeks(bad[:5])}")
    return weeks.as_unit("ns")


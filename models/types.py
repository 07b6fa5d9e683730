"""Shared result types of the forecasting library."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol, Self

import pandas as pd

__all__ = ["ForecastOutput", "Forecaster", "DAILY_COLUMNS", "FLAG_COLUMNS", "FAILURE_COLUMNS",
           "require_columns"]

DAILY_COLUMNS = ["unique_id", "ds", "yhat", "yhat_lower", "yhat_upper", "model"]
FLAG_COLUMNS = ["unique_id", "flag", "detail"]
FAILURE_COLUMNS = ["unique_id", "error"]


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


@dataclass
class ForecastOutput:
    """What every forecaster's ``predict`` returns.

    Attributes
    ----------
    daily : DataFrame ``unique_id, ds, yhat, yhat_lower, yhat_upper, model``; one row per
        series and future day; 80 % interval; never negative.
    weekly_samples : DataFrame indexed by ``(unique_id, week)`` (week = ISO-week Monday) with
        one integer-named column per sample path (0..S-1): the path's sum over that week. A
        partial first week includes the observed counts of its known days. Never negative.
    flags : DataFrame ``unique_id, flag, detail`` (e.g. ``fallback``, ``short_history``,
        ``all_zero``, ``unofficial_calendar``).
    failures : DataFrame ``unique_id, error``: series that could not be forecast at all.
    """

    daily: pd.DataFrame
    weekly_samples: pd.DataFrame
    flags: pd.DataFrame = field(default_factory=lambda: _empty(FLAG_COLUMNS))
    failures: pd.DataFrame = field(default_factory=lambda: _empty(FAILURE_COLUMNS))


class Forecaster(Protocol):
    """The interface shared by Prophet and the baselines (scikit-learn style)."""

    def fit(self, df: pd.DataFrame) -> Self:
        """Fit on a long daily frame ``unique_id, ds, y`` (zero-filled)."""
        ...

    def predict(self, horizon: int) -> ForecastOutput:
        """Forecast ``horizon`` days after each series' last day."""
        ...

    def get_params(self, deep: bool = True) -> dict[str, object]: ...


def require_columns(frame: pd.DataFrame, columns: Iterable[str], name: str = "frame") -> None:
    """Raise ``ValueError`` naming ``name`` and the missing columns, if any are missing."""
    missing = sorted(set(columns) - set(frame.columns))
    if missing:
        raise ValueError(f"{name} lacks columns {missing}")

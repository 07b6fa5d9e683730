"""Effect of a reminder campaign on the violations in its peak window.

Two independent estimates (DESIGN.md, "Spikes, peaks and campaigns"):

- :func:`campaign_effect` — **counterfactual forecast**. The forecast frozen when the campaign
  was approved is what would have happened without it. Effect = actual window total minus
  the counterfactual window total, with the distribution of ``actual - path_total`` over the
  forecast's sample paths giving the intervals and ``P(reduced)``. The interval is a
  predictive interval: it covers the *realised* effect (the count with the campaign minus
  the count that would have occurred without it) at the nominal rate when the paths are
  calibrated, and it inherits any miscalibration of the forecast.
- :func:`did_effect` — **difference-in-differences** on log counts against the same
  category in regions without a campaign in the window, controls chosen by the similarity of
  their weekly pattern before the window, with a placebo-in-time interval. It removes shocks
  shared across regions (weather, a city-wide news story) that the forecast cannot foresee,
  and does not depend on the forecast at all.

The counterfactual estimate lives here; its placebo calibration (:func:`placebo_calibration`,
:class:`Calibration`) in :mod:`models.placebo`. Feeding campaigns back into later fits (so the
model does not learn a campaign-induced dip as a new seasonal trough), in
:mod:`models.campaign_refits`: :func:`mask_campaign_windows` (y -> NaN in the windows; works
with :class:`models.forecast.ProphetForecaster`, which skips unobserved days) and
:func:`campaign_holidays` (Prophet ``holidays`` rows per series, for forecasters that accept
extra holidays). All of them stay importable from this module.

:func:`simulate_campaign_panel` generates panels with a known planted effect for the
validation test and ``bench/effect.py``.

Weeks are ISO weeks labelled by their Monday (:func:`models.series.week_start`). A window
``(start, end)`` covers every ISO week whose Monday lies in
``[week_start(start), week_start(end)]``: a peak window from :func:`models.peaks.peak_windows`
(Monday to Sunday) maps onto exactly its weeks; bounds inside a week are widened to the
whole week.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from models._estimate import IntervalEstimate
from models._weeks import fmt_weeks as _fmt
from models._weeks import week_index as _week_index
from models._weeks import window_weeks
from models.campaign_refits import (
    CAMPAIGN_HOLIDAY,
    HOLIDAY_COLUMNS,
    campaign_holidays,
    mask_campaign_windows,
)
from models.did import DidEstimate, did_effect
from models.effect_sim import SimulatedCampaign, simulate_campaign_panel
from models.placebo import Calibration, CalibrationStatus, placebo_calibration

__all__ = [
    "EffectEstimate",
    "DidEstimate",
    "campaign_effect",
    "dispersion_factor",
    "Calibration",
    "CalibrationStatus",
    "placebo_calibration",
    "did_effect",
    "window_weeks",
    "counterfactual_frame",
    "campaign_holidays",
    "mask_campaign_windows",
    "SimulatedCampaign",
    "simulate_campaign_panel",
    "CAMPAIGN_HOLIDAY",
    "HOLIDAY_COLUMNS",
]

_Z95 = NormalDist().inv_cdf(0.975)  # |z| quantile 0.95
_Z80 = NormalDist().inv_cdf(0.9)  # |z| quantile 0.8


def _single_series(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """Drop a ``unique_id`` index level / column holding a single series."""
    if isinstance(frame.index, pd.MultiIndex):
        if "unique_id" in frame.index.names:
            uids = frame.index.get_level_values("unique_id").unique()
            if len(uids) > 1:
                raise ValueError(f"{what} holds {len(uids)} series; pass one")
            frame = frame.droplevel("unique_id")
        if isinstance(frame.index, pd.MultiIndex):
            raise ValueError(f"{what} must be indexed by week (or by unique_id, week)")
    if "unique_id" in frame.columns:
        n_ids = frame["unique_id"].nunique()
        if n_ids > 1:
            raise ValueError(f"{what} holds {n_ids} series; pass one")
        frame = frame.drop(columns="unique_id")
    return frame


def _actual_series(actual_weekly: pd.Series | pd.DataFrame) -> pd.Series:
    """Week (Monday) -> count from a Series or a ``week, y`` frame."""
    if isinstance(actual_weekly, pd.DataFrame):
        frame = _single_series(actual_weekly, "actual_weekly")
        if "week" in frame.columns:
            frame = frame.set_index("week")
        if "y" not in frame.columns:
            raise ValueError("actual_weekly frame needs a 'y' column (and 'week' or a week "
                             "index)")
        series = frame["y"]
    else:
        series = actual_weekly
        if isinstance(series.index, pd.MultiIndex):
            series = _single_series(series.to_frame("y"), "actual_weekly")["y"]
    out = pd.Series(pd.to_numeric(series, errors="coerce").to_numpy(dtype=float),
                    index=_week_index(series.index))
    if out.index.has_duplicates:
        raise ValueError(f"actual_weekly repeats weeks {_fmt(out.index[out.index.duplicated()])}")
    return out


def counterfactual_frame(counterfactual_samples: pd.DataFrame) -> pd.DataFrame:
    """Normalise stored counterfactual sample paths to a week-indexed path matrix.

    Parameters
    ----------
    counterfactual_samples : one of
        - DataFrame indexed by ``week`` (or ``(unique_id, week)`` for a single series, as in
          ``ForecastOutput.weekly_samples``) with one column per sample path;
        - DataFrame with columns ``week, samples`` (optionally ``unique_id``) where each
          ``samples`` cell is the list of the paths' weekly sums, as the service stores a
          forecast run.

    Returns
    -------
    DataFrame indexed by week Monday (sorted), columns ``0..S-1`` (float).

    Raises
    ------
    ValueError
        On several series, weeks not labelled by Monday, duplicated weeks, sample lists of
        different lengths or non-finite / negative path values.
    """
    frame = _single_series(counterfactual_samples, "counterfactual_samples")
    if "samples" in frame.columns:
        if "week" in frame.columns:
            frame = frame.set_index("week")
        lists = [np.asarray(v, dtype=float).ravel() for v in frame["samples"]]
        sizes = {len(v) for v in lists}
        if len(sizes) > 1:
            raise ValueError(f"sample lists differ in length across weeks: {sorted(sizes)}")
        values = np.vstack(lists) if lists else np.zeros((0, 0))
        index = frame.index
    else:
        values = frame.to_numpy(dtype=float)
        index = frame.index
    out = pd.DataFrame(values, index=_week_index(index),
                       columns=pd.RangeIndex(values.shape[1])).sort_index()
    if out.index.has_duplicates:
        raise ValueError(f"counterfactual repeats weeks {_fmt(out.index[out.index.duplicated()])}")
    if out.shape[1] == 0:
        raise ValueError("counterfactual has no sample paths")
    if not np.isfinite(out.to_numpy()).all() or (out.to_numpy() < 0).any():
        raise ValueError("counterfactual sample paths must be finite and >= 0")
    return out


# --------------------------------------------------------------------------- counterfactual
@dataclass(frozen=True)
class EffectEstimate(IntervalEstimate):
    """Campaign effect against the frozen counterfactual forecast (one window, one series).

    Attributes
    ----------
    window_start, window_end : Monday of the first and Sunday of the last window week.
    n_weeks : weeks evaluated (fewer than the window's only with ``allow_partial``).
    weeks_missing : window weeks without an actual count (only with ``allow_partial``).
    actual : observed total over the evaluated weeks.
    counterfactual : mean of the sample paths' totals over those weeks (times
        ``bias_ratio``).
    counterfactual_median : median of the paths' totals (times ``bias_ratio``).
    counterfactual_sd : sd of the paths' totals (after ``bias_ratio`` and ``dispersion``;
        intervals and ``p_reduced`` use the spread totals, the point estimates do not
        change with ``dispersion``).
    dispersion : the factor the path totals were spread by around their mean (1 = as
        forecast).
    effect : ``actual - counterfactual`` (negative = fewer violations than expected).
    relative_effect : ``effect / counterfactual`` (NaN when the counterfactual is 0).
    effect_lower_80, effect_upper_80, effect_lower_95, effect_upper_95 : quantiles of the
        effect distribution ``actual - path_total`` (10/90 % and 2.5/97.5 %).
    relative_lower_80, ..., relative_upper_95 : the same bounds divided by
        ``counterfactual``.
    p_reduced : share of paths whose total exceeds ``actual`` (probability the campaign
        reduced violations, if the forecast is calibrated).
    n_samples : number of sample paths.
    bias_ratio : the factor the path totals were multiplied by (1 = as forecast).
    """

    window_start: pd.Timestamp
    window_end: pd.Timestamp
    n_weeks: int
    weeks_missing: tuple[pd.Timestamp, ...]
    actual: float
    counterfactual: float
    counterfactual_median: float
    counterfactual_sd: float
    dispersion: float
    effect: float
    relative_effect: float
    effect_lower_80: float
    effect_upper_80: float
    effect_lower_95: float
    effect_upper_95: float
    relative_lower_80: float
    relative_upper_80: float
    relative_lower_95: float
    relative_upper_95: float
    p_reduced: float
    n_samples: int
    bias_ratio: float = 1.0

    interval_fields = ("effect_lower_95", "effect_upper_95")

    def to_frame(self) -> pd.DataFrame:
        """One-row DataFrame with the attribute columns plus ``significant``."""
        d = self.to_dict()
        d["weeks_missing"] = _fmt(self.weeks_missing)
        return pd.DataFrame([d])


def campaign_effect(
    actual_weekly: pd.Series | pd.DataFrame,
    counterfactual_samples: pd.DataFrame,
    *,
    window_start: Any,
    window_end: Any,
    allow_partial: bool = False,
    dispersion: float = 1.0,
    bias_ratio: float = 1.0,
    dispersion_high: float | None = None,
) -> EffectEstimate:
    """Effect of a campaign over its window against the counterfactual sample paths.

    Parameters
    ----------
    actual_weekly : observed weekly counts of the campaign's series: a Series indexed by
        week Monday, or a DataFrame with columns ``week, y`` (optionally a single
        ``unique_id``). Weeks outside the window are ignored.
    counterfactual_samples : the forecast frozen at approval, as accepted by
        :func:`counterfactual_frame` (index ``week`` or ``(unique_id, week)``, one column per
        sample path holding the path's weekly sum; or columns ``week, samples``). Columns
        are whole paths, so a path's window total is the sum of its column over the weeks.
    window_start, window_end : the peak window (see the module notes on weeks).
    allow_partial : evaluate only the window weeks that have an actual count (an interim
        estimate while the window is still running); at least one is needed.
    dispersion : spread the paths' window totals around their mean by this factor (clipped
        at 0) before computing intervals and ``P(reduced)``: a recalibration for a
        forecaster whose intervals are too narrow, estimated with :func:`dispersion_factor`
        on past windows without a campaign. 1 = the frozen forecast as is.
    bias_ratio : multiply the paths' window totals by this factor first (a multiplicative
        bias correction, e.g. :attr:`Calibration.bias_ratio` from
        :func:`placebo_calibration`); ``dispersion`` then spreads them around their new mean.
    dispersion_high : the upper tail's spread (:attr:`Calibration.dispersion_high`): the
        lower effect bounds are kept at or below ``total - cf - z * sd * dispersion_high /
        dispersion`` (an actual count above the forecast needs more room before it is called
        an increase). None: as ``dispersion``.

    Returns
    -------
    EffectEstimate

    Raises
    ------
    ValueError
        When the counterfactual lacks a window week, when an actual count is missing for a
        window week (unless ``allow_partial``), or when a count is negative; the message
        names the weeks.
    """
    weeks = window_weeks(window_start, window_end)
    actual = _actual_series(actual_weekly)
    paths = counterfactual_frame(counterfactual_samples)
    cf_missing = weeks.difference(pd.DatetimeIndex(paths.index))
    if len(cf_missing):
        raise ValueError(f"counterfactual samples missing for window weeks {_fmt(cf_missing)} "
                         f"(window {_fmt(weeks[:1])} .. {_fmt(weeks[-1:])})")
    used, missing, total = _window_actuals(actual, weeks, allow_partial=allow_partial)
    if not dispersion > 0:
        raise ValueError("dispersion must be > 0")
    if not (bias_ratio > 0 and np.isfinite(bias_ratio)):
        raise ValueError("bias_ratio must be a finite number > 0")
    path_totals = paths.loc[used].to_numpy(dtype=float).sum(axis=0) * bias_ratio
    cf = float(path_totals.mean())
    median = float(np.median(path_totals))
    path_totals, q = _effect_bounds(total, path_totals, cf, dispersion, dispersion_high)

    def rel(x: float) -> float:
        return float(x / cf) if cf > 0 else float("nan")

    return EffectEstimate(
        window_start=pd.Timestamp(weeks[0]),
        window_end=pd.Timestamp(weeks[-1]) + pd.Timedelta(days=6),
        n_weeks=len(used),
        weeks_missing=tuple(pd.Timestamp(w) for w in missing),
        actual=total,
        counterfactual=cf,
        counterfactual_median=median,
        counterfactual_sd=float(path_totals.std()),
        dispersion=float(dispersion),
        effect=total - cf,
        relative_effect=rel(total - cf),
        effect_lower_80=float(q[0]),
        effect_upper_80=float(q[1]),
        effect_lower_95=float(q[2]),
        effect_upper_95=float(q[3]),
        relative_lower_80=rel(float(q[0])),
        relative_upper_80=rel(float(q[1])),
        relative_lower_95=rel(float(q[2])),
        relative_upper_95=rel(float(q[3])),
        p_reduced=float((path_totals > total).mean()),
        n_samples=int(path_totals.size),
        bias_ratio=float(bias_ratio),
    )


def _window_actuals(actual: pd.Series, weeks: pd.DatetimeIndex, *, allow_partial: bool
                    ) -> tuple[pd.DatetimeIndex, pd.DatetimeIndex, float]:
    """``(weeks used, weeks missing, actual total)`` of the window; a missing week is an error
    unless ``allow_partial`` (then at least one week is needed)."""
    observed = actual.reindex(weeks)
    missing = weeks[observed.isna().to_numpy()]
    if len(missing):
        if not allow_partial:
            raise ValueError(f"actual counts missing for window weeks {_fmt(missing)} "
                             "(window not complete yet? pass allow_partial=True for an "
                             "interim estimate)")
        if len(missing) == len(weeks):
            raise ValueError(f"no actual counts for any window week ({_fmt(weeks)})")
    used = weeks[observed.notna().to_numpy()]
    values = observed.loc[used].to_numpy(dtype=float)
    if (values < 0).any():
        raise ValueError("actual counts must be >= 0")
    return used, missing, float(values.sum())


def _effect_bounds(total: float, path_totals: np.ndarray, cf: float, dispersion: float,
                   dispersion_high: float | None) -> tuple[np.ndarray, np.ndarray]:
    """The path totals spread by ``dispersion`` around their mean ``cf`` and the 10/90 % and
    2.5/97.5 % quantiles of the effect ``total - path total``."""
    if dispersion != 1.0:
        path_totals = np.maximum(cf + dispersion * (path_totals - cf), 0.0)
    diffs = total - path_totals
    q = np.quantile(diffs, [0.1, 0.9, 0.025, 0.975])
    if dispersion != 1.0:
        # calibrated: never narrower than total - cf -/+ z * sd of the spread totals, the
        # interval the placebo calibration measured (skewed paths would otherwise give one
        # tail less room than the calibration assumed)
        sd = float(path_totals.std())
        up = max(1.0, (dispersion_high or dispersion) / dispersion)
        for i, (lo_i, hi_i) in enumerate(((0, 1), (2, 3))):
            z = _Z95 if i else _Z80
            q[lo_i] = min(q[lo_i], total - cf - z * sd * up)
            q[hi_i] = max(q[hi_i], total - cf + z * sd)
    return path_totals, q


def dispersion_factor(past: Iterable[EffectEstimate], *, floor: float = 1.0) -> float:
    """Factor that makes a forecaster's window totals calibrated, from windows without a
    campaign.

    Parameters
    ----------
    past : :func:`campaign_effect` results for earlier windows of the series (or of similar
        ones) that had **no** campaign, each against the forecast frozen the same way
        (same lead time), with ``dispersion=1``.
    floor : lower bound of the factor (default 1: never narrow the forecast's intervals on
        the strength of a few windows).

    Returns
    -------
    float
        ``max(floor, sqrt(mean(z**2)))`` with ``z = (actual - counterfactual) /
        counterfactual_sd``: the root mean square standardised error, 1 for a calibrated
        forecast. Pass it as ``campaign_effect(..., dispersion=...)``.

    Raises
    ------
    ValueError
        When ``past`` is empty or no window has a positive path sd.
    """
    z = [(e.actual - e.counterfactual) / e.counterfactual_sd for e in past
         if e.counterfactual_sd > 0]
    if not z:
        raise ValueError("no past window with a positive counterfactual sd")
    return float(max(floor, np.sqrt(np.mean(np.square(z)))))

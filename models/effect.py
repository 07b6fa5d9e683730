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

Feeding campaigns back into later fits (so the model does not learn a campaign-induced dip
as a new seasonal trough): :func:`mask_campaign_windows` (y -> NaN in the windows; works with
:class:`models.forecast.ProphetForecaster`, which skips unobserved days) and
:func:`campaign_holidays` (Prophet ``holidays`` rows per series, for forecasters that accept
extra holidays).

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
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from models._weeks import fmt_weeks as _fmt
from models._weeks import week_index as _week_index
from models._weeks import window_weeks
from models.did import DidEstimate, did_effect
from models.effect_sim import SimulatedCampaign, simulate_campaign_panel
from models.types import require_columns

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

CAMPAIGN_HOLIDAY = "campaign"
HOLIDAY_COLUMNS = ["unique_id", "holiday", "ds", "lower_window", "upper_window"]
_Z90 = NormalDist().inv_cdf(0.95)  # |z| quantile 0.9 of a standard normal
_Z95 = NormalDist().inv_cdf(0.975)  # |z| quantile 0.95
_Z80 = NormalDist().inv_cdf(0.9)  # |z| quantile 0.8

CalibrationStatus = Literal["calibrated", "uncalibrated"]



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
class EffectEstimate:
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

    @property
    def significant(self) -> bool:
        """The 95 % interval excludes 0 (either side)."""
        return bool(self.effect_upper_95 < 0 or self.effect_lower_95 > 0)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (timestamps kept, ``weeks_missing`` as a list)."""
        d = asdict(self)
        d["weeks_missing"] = list(self.weeks_missing)
        d["significant"] = self.significant
        return d

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
    total = float(values.sum())
    if not dispersion > 0:
        raise ValueError("dispersion must be > 0")
    if not (bias_ratio > 0 and np.isfinite(bias_ratio)):
        raise ValueError("bias_ratio must be a finite number > 0")
    path_totals = paths.loc[used].to_numpy(dtype=float).sum(axis=0) * bias_ratio
    cf = float(path_totals.mean())
    median = float(np.median(path_totals))
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


@dataclass(frozen=True)
class Calibration:
    """Placebo calibration of a counterfactual forecaster (see :func:`placebo_calibration`).

    Attributes
    ----------
    status : ``"calibrated"`` (at least ``min_placebos`` placebo windows) or
        ``"uncalibrated"`` (too few: ``bias_ratio`` and ``dispersion`` are 1, the frozen
        forecast is used as is and its estimate must be labelled so).
    n_placebos : placebo windows used.
    bias_ratio : multiplicative correction of the counterfactual paths (shrunk ratio of sums
        ``actual / expected``; 1 when uncalibrated). Pass to ``campaign_effect(bias_ratio=)``.
    dispersion : spread factor of the bias-corrected paths (standardised placebo error, by
        its root mean square or 90 % quantile, inflated for the estimated bias, never below
        ``floor``; 1 when uncalibrated). Pass to ``campaign_effect(dispersion=)``.
    raw_ratio : the unshrunk ratio of sums (NaN without placebos): the evidence, also when
        uncalibrated.
    ratio_se : standard error of ``log(raw_ratio)`` (delta method; inf with < 2 placebos).
    shrinkage : weight of the data in ``log(bias_ratio) = shrinkage * log(raw_ratio)``.
    min_placebos : the threshold the status was decided with.
    reason : why the status is uncalibrated (None when calibrated).
    dispersion_high : the spread the upper tail of the paths needs (actual counts above the
        forecast: unforeseeable one-off surges make that tail heavier), from the one-sided
        97.5 % conformal bound of the positive placebo errors (with at least 39 placebos);
        never below ``dispersion``. Pass to ``campaign_effect(dispersion_high=)``.
    """

    status: CalibrationStatus
    n_placebos: int
    bias_ratio: float
    dispersion: float
    raw_ratio: float
    ratio_se: float
    shrinkage: float
    min_placebos: int
    reason: str | None = None
    dispersion_high: float = 1.0

    @property
    def calibrated(self) -> bool:
        return self.status == "calibrated"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the attributes."""
        return asdict(self)


_PLACEBO_COLUMNS = ("actual", "counterfactual", "counterfactual_sd")


def placebo_calibration(
    placebos: pd.DataFrame,
    *,
    min_placebos: int = 8,
    prior_sd: float = 0.25,
    floor: float = 1.0,
) -> Calibration:
    """Bias and dispersion of a counterfactual forecaster from windows without a campaign.

    A campaign is planned where the forecast runs high, so the frozen forecast of a campaign
    window is selected for being high: even a calibrated forecaster then overstates the
    counterfactual there (regression to the mean), and a null campaign looks like a
    reduction. Placebo windows selected the same way — predicted peak windows of stored runs
    that got no campaign, complete in the data — measure that bias and the real spread of
    the error.

    Parameters
    ----------
    placebos : one row per placebo window with columns ``actual`` (observed window total),
        ``counterfactual`` (mean of the frozen paths' window totals) and
        ``counterfactual_sd`` (their sd) — the :class:`EffectEstimate` fields, so
        ``pd.concat([e.to_frame() for e in estimates])`` works. Rows with a non-finite value
        or a counterfactual <= 0 are ignored. Use one forecast per real window (several runs
        predicting the same window are not independent placebos).
    min_placebos : fewer usable rows -> ``uncalibrated`` (identity correction).
    prior_sd : prior sd of the log bias (centred on 0): the ratio of sums is shrunk towards 1
        by ``w = prior_sd**2 / (prior_sd**2 + se**2)`` on the log scale, with ``se`` its
        delta-method standard error, so a few noisy placebos move it little.
    floor : lower bound of the dispersion (default 1: never narrow the forecast's paths).

    Returns
    -------
    Calibration

    Notes
    -----
    ``raw_ratio = (sum actual + 0.5) / (sum counterfactual + 0.5)`` (a ratio of sums: large
    windows weigh more, empty ones do not explode it); ``se**2 = n/(n-1) * sum((actual -
    raw_ratio * counterfactual)**2) / (sum actual + 0.5)**2``. The bias-corrected placebo
    errors ``z = (actual - b * counterfactual) / (b * counterfactual_sd)`` give
    ``dispersion = max(floor, max(rms(z), q90(|z|) / 1.645) * sqrt(1 + 1/n), c95)``: the error of
    the corrected paths in units of their sd (any bias left by the shrinkage widens it), by
    its root mean square or, when the errors are heavier-tailed than normal, by their 90 %
    quantile (on the sample data the rms alone left 7.5 % of null campaigns significant at
    95 %, the quantile rule 6.8 %), with ``1 + 1/n`` for the error of the estimated bias in a
    new window. ``c95`` holds the 95 % level (issue 14): the split-conformal bound, the
    ``ceil(0.95 (n + 1))``-th smallest ``|z|`` over 1.96 (times ``sqrt(1 + 1/n)``), which a new
    exchangeable window exceeds with probability at most 5 % whatever the error distribution;
    with fewer than 19 placebos (no 95 % conformal bound exists) the rms scale times
    ``t(0.975, n - 1) / 1.96``, never below the largest ``|z|`` over 1.96 (times
    ``sqrt(1 + 1/n)``; the conformal bound at level ``n / (n + 1)``: the t bound assumes
    normal errors, and one surge among a few placebos would leave it short). The rms rule
    alone left 10.5 % of null campaigns of the sample
    replay significant, with ``c95`` 7.6 %; :func:`campaign_effect` then keeps a calibrated
    interval no narrower than ``± z · sd`` of the spread paths (the interval the calibration
    measured; skewed paths had left one tail short): 5.8 %. Applying both to a
    campaign's paths (``campaign_effect(..., bias_ratio=b, dispersion=d)``) makes a null
    campaign's effect centred on 0 with an interval of about nominal coverage, provided the
    placebo windows resemble the campaign's (same selection, similar lead time and season).
    """
    require_columns(placebos, _PLACEBO_COLUMNS, "placebos")
    if min_placebos < 1 or not prior_sd > 0:
        raise ValueError("min_placebos must be >= 1 and prior_sd > 0")
    f = placebos[list(_PLACEBO_COLUMNS)].apply(pd.to_numeric, errors="coerce").astype(float)
    f = f[np.isfinite(f.to_numpy()).all(axis=1) & (f["counterfactual"] > 0)
          & (f["actual"] >= 0) & (f["counterfactual_sd"] >= 0)]
    n = len(f)
    a, e, sd = (f[c].to_numpy() for c in _PLACEBO_COLUMNS)
    raw = float((a.sum() + 0.5) / (e.sum() + 0.5)) if n else float("nan")
    if n >= 2:
        resid = a - raw * e
        se = float(np.sqrt(n / (n - 1) * np.sum(resid**2)) / (a.sum() + 0.5))
    else:
        se = float("inf")
    shrink = float(prior_sd**2 / (prior_sd**2 + se**2)) if np.isfinite(se) else 0.0
    common: dict[str, Any] = {"n_placebos": n, "raw_ratio": raw, "ratio_se": se,
                              "shrinkage": shrink, "min_placebos": min_placebos}
    if n < min_placebos:
        return Calibration(status="uncalibrated", bias_ratio=1.0, dispersion=1.0,
                           reason=f"{n} placebo window(s) < min_placebos={min_placebos}",
                           **common)
    bias = float(np.exp(shrink * np.log(raw)))
    ok = sd > 0
    if not ok.any():
        return Calibration(status="uncalibrated", bias_ratio=1.0, dispersion=1.0,
                           reason="no placebo window has a positive path sd", **common)
    z = (a[ok] - bias * e[ok]) / (bias * sd[ok])
    spread = max(float(np.sqrt(np.mean(z**2))),
                 float(np.quantile(np.abs(z), 0.9)) / _Z90)
    m = int(z.size)
    rank = int(np.ceil((m + 1) * 0.95))
    if rank <= m:  # split-conformal 95 % bound on |z|, inflated for the bias fitted on them
        level = float(np.sort(np.abs(z))[rank - 1]) / _Z95 * np.sqrt(1.0 + 1.0 / n)
    else:  # too few for a 95 % conformal bound: a t predictive bound with the rms scale,
        # and never below the largest |z| (the conformal bound at level m / (m + 1))
        level = max(spread * float(stats.t.ppf(0.975, max(m - 1, 1))),
                    float(np.abs(z).max()) * np.sqrt(1.0 + 1.0 / n)) / _Z95
    disp = float(max(floor, spread * np.sqrt(1.0 + 1.0 / n), level))
    high = disp
    rank_one = int(np.ceil((m + 1) * 0.975))
    if rank_one <= m:  # one-sided conformal 97.5 % bound of actual-above-forecast errors
        high = max(disp, float(np.sort(z)[::-1][m - rank_one]) / _Z95 * np.sqrt(1.0 + 1.0 / n))
    return Calibration(status="calibrated", bias_ratio=bias, dispersion=disp,
                       dispersion_high=float(high), **common)


# --------------------------------------------------------------------------- refits
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

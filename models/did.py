"""Difference-in-differences estimate of a campaign's effect (:func:`did_effect`).

Against the same category in regions without a campaign in the window, controls chosen by the
similarity of their weekly pattern before the window, with a placebo-in-time interval. It
removes shocks shared across regions (weather, a city-wide news story) that a forecast cannot
foresee, and does not depend on the forecast at all. Also importable from
:mod:`models.effect`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from models._estimate import IntervalEstimate
from models._weeks import FloatArray, fmt_weeks, week_index, window_weeks
from models.types import require_columns

__all__ = ["DidEstimate", "DidStatus", "did_effect"]

_OFFSET = 0.5  # counts/week added before taking logs in the DiD (zero-safe)
DidStatus = Literal["ok", "no_fair_control", "no_interval"]


@dataclass(frozen=True)
class DidEstimate(IntervalEstimate):
    """Difference-in-differences estimate of a campaign's effect.

    Attributes
    ----------
    status : ``"ok"``; ``"no_fair_control"`` (no estimate: see ``reason``); or
        ``"no_interval"`` (point estimate only: too few placebo windows, see ``reason``).
    reason : why the status is not ``"ok"`` (None when it is).
    treated : the campaign's series id.
    window_start, window_end : Monday of the first and Sunday of the last window week.
    controls : chosen control series, most similar first.
    similarity : ``{candidate: correlation}`` for every candidate that could be scored
        (chosen or not), so a reader can see how close the best ones came to the bar.
    excluded : ``{candidate: reason}`` for candidates dropped before scoring (missing weeks,
        constant history).
    n_pre_weeks, n_match_weeks : weeks of the pre period and of the matching period used.
    actual : treated total over the window.
    counterfactual : treated window total implied by the controls' change.
    effect, relative_effect : ``actual - counterfactual`` and ``exp(log_effect) - 1``.
    log_effect : the DiD on log weekly rates (see :func:`did_effect`).
    effect_lower_80, ..., relative_upper_95 : placebo intervals (NaN unless status ok).
    p_reduced : probability that the true log effect is below 0 when the estimation error
        over the placebo RMS error is Student t on ``df`` degrees of freedom (NaN unless ok).
    n_placebos : placebo windows used for the interval.
    placebo_rmse : root mean square of the placebo estimates (log scale), the error scale.
    df : degrees of freedom of the interval's t quantiles: the number of non-overlapping
        window-length stretches the placebo windows span, ``max(1, n_placebos // window
        weeks)`` (NaN unless ok).
    """

    status: DidStatus
    reason: str | None
    treated: str
    window_start: pd.Timestamp
    window_end: pd.Timestamp
    controls: tuple[str, ...] = ()
    similarity: dict[str, float] = field(default_factory=dict)
    excluded: dict[str, str] = field(default_factory=dict)
    n_pre_weeks: int = 0
    n_match_weeks: int = 0
    actual: float = float("nan")
    counterfactual: float = float("nan")
    effect: float = float("nan")
    relative_effect: float = float("nan")
    log_effect: float = float("nan")
    effect_lower_80: float = float("nan")
    effect_upper_80: float = float("nan")
    effect_lower_95: float = float("nan")
    effect_upper_95: float = float("nan")
    relative_lower_80: float = float("nan")
    relative_upper_80: float = float("nan")
    relative_lower_95: float = float("nan")
    relative_upper_95: float = float("nan")
    p_reduced: float = float("nan")
    n_placebos: int = 0
    placebo_rmse: float = float("nan")
    df: float = float("nan")


def _wide(panel: pd.DataFrame) -> pd.DataFrame:
    require_columns(panel, ("unique_id", "week", "y"), "panel")
    f = pd.DataFrame({
        "unique_id": panel["unique_id"].astype(str).to_numpy(),
        "week": week_index(pd.Index(panel["week"])),
        "y": pd.to_numeric(panel["y"], errors="coerce").to_numpy(dtype=float),
    })
    if f.duplicated(["unique_id", "week"]).any():
        raise ValueError("panel repeats (unique_id, week) rows")
    if (f["y"] < 0).any():
        raise ValueError("panel counts must be >= 0")
    wide = f.pivot(index="week", columns="unique_id", values="y").sort_index()
    full = pd.date_range(wide.index.min(), wide.index.max(), freq="7D", unit="ns")
    return wide.reindex(full)


def _log_rates(values: FloatArray, pre: slice, win: slice) -> FloatArray:
    """``log(mean window + c) - log(mean pre + c)`` per column of a weeks x units matrix."""
    a = values[pre].mean(axis=0)
    b = values[win].mean(axis=0)
    out: FloatArray = np.log(b + _OFFSET) - np.log(a + _OFFSET)
    return out


def did_effect(
    panel: pd.DataFrame,
    treated: str,
    window: tuple[Any, Any],
    *,
    controls: Sequence[str] | None = None,
    pre_weeks: int = 26,
    match_weeks: int = 104,
    n_controls: int = 5,
    min_controls: int = 2,
    min_similarity: float = 0.5,
    min_placebos: int = 20,
    exclude_windows: Sequence[tuple[Any, Any]] = (),
) -> DidEstimate:
    """Difference-in-differences against similar series without a campaign in the window.

    Parameters
    ----------
    panel : weekly counts ``unique_id, week, y`` (week = Monday) of the treated series and
        the candidate controls. Candidates should be the same category in regions without a
        campaign in (or shortly before) this window: the caller filters them.
    treated : the campaign's series id.
    window : ``(start, end)`` of the peak window.
    controls : candidate control ids (default: every other series in ``panel``).
    pre_weeks : weeks just before the window that form the pre period of the DiD.
    match_weeks : weeks before the window used to score similarity and to place placebo
        windows (clipped to the treated series' contiguous history; at least ``pre_weeks``).
        The default two years lets last year's season count in the similarity.
    n_controls : keep at most this many of the most similar candidates.
    min_controls : fewer candidates passing the bar -> ``no_fair_control``.
    min_similarity : the bar: Pearson correlation of ``log1p`` weekly counts over the
        matching period.
    min_placebos : fewer placebo windows -> ``no_interval`` (point estimate only).
    exclude_windows : other campaign windows of these series; placebo windows that overlap
        them (or their pre periods) are skipped.

    Returns
    -------
    DidEstimate

    Raises
    ------
    ValueError
        When the treated series is absent, lacks a window week, or has fewer than
        ``pre_weeks`` complete weeks just before the window (the message names the weeks).

    Notes
    -----
    *Estimator.* For each series ``g = log(mean weekly count in window + 0.5) - log(mean
    weekly count in the pre period + 0.5)``; the DiD is ``g_treated - mean(g_controls)``
    (equal weights), ``relative_effect = exp(DiD) - 1`` (a multiplicative effect on the rate,
    so series of different sizes are comparable). The counterfactual total is the treated
    pre-period rate moved by the controls' mean change, times the window length.

    *Controls.* A candidate needs every week of the matching period and of the window. Its
    similarity is the Pearson correlation between its ``log1p`` weekly counts and the treated
    series' over the matching period (the seasonal shape; levels do not matter in logs). The
    ``n_controls`` best with similarity ``>= min_similarity`` are kept; with fewer than
    ``min_controls`` the result is ``no_fair_control`` and ``reason`` says why. Equal weights
    are used rather than synthetic-control weights: with a handful of noisy count series,
    fitted weights overfit the pre period.

    *Interval.* Placebo in time: the same estimator (same controls, same pre / window
    lengths) is applied to every earlier window inside the matching period that does not
    overlap the real window or ``exclude_windows``. Those placebo estimates are errors
    around a zero effect; their root mean square (around 0, so a systematic placebo bias
    widens the interval) is the error scale: ``DiD ± t(df) * rmse`` on the log scale, mapped
    to the relative and absolute scales, with Student t quantiles on ``df = max(1,
    n_placebos // n_win)`` degrees of freedom (``n_win`` = window weeks). The placebo
    windows slide by one week, so neighbours share all but one of their window weeks and
    the ~75 placebo errors of two years hold only about ``n_placebos / n_win`` independent
    ones: the window term dominates each error (``n_win`` weeks against a ``pre_weeks``
    mean), and windows ``n_win`` weeks apart no longer share it. An rms over ``df``
    independent errors is an sd estimate on ``df`` degrees of freedom, hence the t (it
    tends to the normal scale when there are many windows). Counting by ``n_win +
    pre_weeks`` (fully disjoint placebo DiDs) would give ``df ≈ 2`` on two years and
    intervals twice as wide, for errors whose shared pre-period part is small. The rms
    (a normal-theory scale) was chosen over empirical placebo quantiles because the
    overlapping windows give noisy extreme quantiles: in ``simulate_campaign_panel``
    replications the 95 % interval covered 0.92 with quantiles. There (75 placebo windows
    of 4 weeks, ``df = 18``; ``bench/effect.py --reps 400``) the t interval covers 0.970
    under a null and 0.967 under a -30 % effect (normal quantiles: 0.960, 0.945), with
    false positives 0.030 (0.040) and power at -30 % 0.565 (0.618). On the service replay
    fewer placebo windows are left (other campaigns' windows are skipped) and the t matters
    more: see docs/benchmarks.md (``bench/effect_service.py``).
    The controls were chosen on the same weeks (a slight optimism), and placebo windows
    fall in every season while the real window is a peak.
    """
    if pre_weeks < 1 or n_controls < 1 or min_controls < 1:
        raise ValueError("pre_weeks, n_controls and min_controls must be >= 1")
    weeks = window_weeks(*window)
    wide = _wide(panel)
    treated = str(treated)
    if treated not in wide.columns:
        raise ValueError(f"treated series {treated!r} is not in the panel")
    base: dict[str, Any] = {"treated": treated, "window_start": pd.Timestamp(weeks[0]),
                            "window_end": pd.Timestamp(weeks[-1]) + pd.Timedelta(days=6)}
    n_hist = _treated_history(wide[treated], treated, weeks, pre_weeks)
    n_match = max(min(match_weeks, n_hist), pre_weeks)
    match_idx = pd.date_range(weeks[0] - pd.Timedelta(weeks=n_match), periods=n_match,
                              freq="7D", unit="ns")
    span = match_idx.append(weeks)
    candidates = [str(c) for c in (controls if controls is not None else wide.columns)
                  if str(c) != treated]
    similarity, excluded = _similarities(wide, treated, candidates, match_idx, span)
    passing, reason = _controls(similarity, len(excluded), len(candidates),
                                min_similarity=min_similarity, n_controls=n_controls,
                                min_controls=min_controls)
    if reason is not None:
        return DidEstimate(status="no_fair_control", reason=reason, similarity=similarity,
                           excluded=excluded, n_match_weeks=n_match, **base)
    units = [treated, *passing]
    values = wide.loc[span, units].to_numpy(dtype=float)
    n_win = len(weeks)
    end = len(span)

    def did_at(stop: int) -> float:
        """DiD for the window ending (exclusive) at row ``stop`` of ``values``."""
        g = _log_rates(values, slice(stop - n_win - pre_weeks, stop - n_win),
                       slice(stop - n_win, stop))
        return float(g[0] - g[1:].mean())

    estimate = did_at(end)
    actual, cf_total, absolute = _treated_totals(values, n_win, pre_weeks)
    errors = _placebo_errors(did_at, span, len(match_idx), n_win, pre_weeks, exclude_windows)
    common: dict[str, Any] = {
        **base, "controls": tuple(passing), "similarity": similarity, "excluded": excluded,
        "n_pre_weeks": pre_weeks, "n_match_weeks": n_match, "actual": actual,
        "counterfactual": cf_total, "effect": absolute(estimate),
        "relative_effect": float(np.expm1(estimate)), "log_effect": estimate,
        "n_placebos": int(errors.size),
    }
    if errors.size < min_placebos:
        return DidEstimate(status="no_interval",
                           reason=f"{errors.size} placebo windows < min_placebos={min_placebos}"
                                  f" ({n_match} matching weeks)", **common)
    return DidEstimate(status="ok", reason=None, **common,
                       **_placebo_interval(estimate, errors, n_win, absolute))


def _placebo_errors(did_at: Callable[[int], float], span: pd.Index, n_match: int, n_win: int,
                    pre_weeks: int, exclude_windows: Sequence[tuple[Any, Any]]) -> np.ndarray:
    """The DiD of every placebo window inside the matching weeks (sliding by one week) whose
    window and pre period overlap none of ``exclude_windows``: errors around a zero effect."""
    excl = [window_weeks(*w) for w in exclude_windows]
    placebo = []
    for stop in range(n_win + pre_weeks, n_match + 1):
        used = span[stop - n_win - pre_weeks:stop]
        if any(len(used.intersection(x)) for x in excl):
            continue
        placebo.append(did_at(stop))
    return np.asarray(placebo, dtype=float)


def _placebo_interval(estimate: float, errors: np.ndarray, n_win: int,
                      absolute: Callable[[float], float]) -> dict[str, Any]:
    """The interval fields of an ``ok`` estimate: ``estimate ± t(df) × rms(errors)`` on the
    log scale (``df = max(1, n_placebos // n_win)``, see :func:`did_effect`), mapped to the
    absolute scale by ``absolute`` and to the relative one by ``exp − 1``, and the
    probability of a reduction."""
    scale = float(np.sqrt(np.mean(errors**2)))
    df = max(1, errors.size // n_win)
    out: dict[str, Any] = {"placebo_rmse": scale, "df": float(df)}
    for level in (80, 95):
        h = float(stats.t.ppf(0.5 + level / 200, df)) * scale
        for side, log_bound in (("lower", estimate - h), ("upper", estimate + h)):
            out[f"effect_{side}_{level}"] = absolute(log_bound)
            out[f"relative_{side}_{level}"] = float(np.expm1(log_bound))
    out["p_reduced"] = (float(stats.t.cdf(-estimate / scale, df)) if scale > 0
                        else float(estimate < 0))
    return out


def _treated_history(t: pd.Series, treated: str, weeks: pd.DatetimeIndex, pre_weeks: int
                     ) -> int:
    """Complete weeks of the treated series ``t`` just before the window (contiguous).

    Raises ValueError, naming the weeks, when a window week lacks a count or fewer than
    ``pre_weeks`` weeks precede the window."""
    win_vals = t.reindex(weeks)
    if win_vals.isna().any():
        raise ValueError(f"treated series {treated!r} lacks counts for window weeks "
                         f"{fmt_weeks(weeks[win_vals.isna().to_numpy()])}")
    before = t[t.index < weeks[0]]
    observed = before.notna().to_numpy()[::-1]
    n_hist = int(np.argmin(observed)) if not observed.all() else len(observed)
    if n_hist < pre_weeks:
        first_pre = weeks[0] - pd.Timedelta(weeks=pre_weeks)
        need = pd.date_range(first_pre, weeks[0] - pd.Timedelta(weeks=1), freq="7D")
        have = set(before.dropna().index)
        lacking = [w for w in need if w not in have]
        raise ValueError(f"treated series {treated!r} has {n_hist} complete weeks before the "
                         f"window, needs pre_weeks={pre_weeks}; missing {fmt_weeks(lacking[:8])}"
                         f"{' …' if len(lacking) > 8 else ''}")
    return n_hist


def _treated_totals(values: np.ndarray, n_win: int, pre_weeks: int
                    ) -> tuple[float, float, Callable[[float], float]]:
    """The treated series' count in the window (the last ``n_win`` rows of ``values``, column
    0), its counterfactual total (the pre-period rate moved by the controls' mean change) and
    the map from a log effect to the absolute one (counts avoided in the window)."""
    end = len(values)
    g_all = _log_rates(values, slice(end - n_win - pre_weeks, end - n_win), slice(end - n_win, end))
    rate_pre = float(values[end - n_win - pre_weeks:end - n_win, 0].mean())
    rate_win = float(values[end - n_win:, 0].mean())
    actual = float(values[end - n_win:, 0].sum())

    def absolute(log_eff: float) -> float:
        cf_rate = (rate_win + _OFFSET) * np.exp(-log_eff) - _OFFSET
        return float(actual - n_win * cf_rate)

    cf_total = float(n_win * ((rate_pre + _OFFSET) * np.exp(g_all[1:].mean()) - _OFFSET))
    return actual, cf_total, absolute


def _controls(similarity: dict[str, float], n_excluded: int, n_candidates: int, *,
              min_similarity: float, n_controls: int, min_controls: int
              ) -> tuple[list[str], str | None]:
    """The at most ``n_controls`` most similar candidates at or above ``min_similarity``, and
    why there is no fair control when fewer than ``min_controls`` pass (else ``None``)."""
    passing = sorted((c for c, r in similarity.items() if r >= min_similarity),
                     key=lambda c: -similarity[c])[:n_controls]
    if len(passing) >= min_controls:
        return passing, None
    best = max(similarity.values()) if similarity else float("nan")
    return passing, (f"{len(passing)} candidate(s) reach similarity >= {min_similarity} "
                     f"(need {min_controls}); {len(similarity)} scored (best {best:.2f}), "
                     f"{n_excluded} excluded, {n_candidates} candidate(s) in all")


def _similarities(wide: pd.DataFrame, treated: str, candidates: Sequence[str],
                  match_idx: pd.DatetimeIndex, span: pd.Index
                  ) -> tuple[dict[str, float], dict[str, str]]:
    """Each candidate's similarity to the treated series (Pearson correlation of ``log1p``
    weekly counts over the matching weeks), and the candidates left out with the reason
    (absent, a matching or window week missing, constant counts)."""
    excluded: dict[str, str] = {}
    similarity: dict[str, float] = {}
    t_match = np.log1p(wide.loc[match_idx, treated].to_numpy(dtype=float))
    for c in candidates:
        if c not in wide.columns:
            excluded[c] = "not in the panel"
            continue
        vals = wide[c].reindex(span)
        if vals.isna().any():
            n_missing = int(vals.isna().sum())
            excluded[c] = f"{n_missing} of {len(span)} matching/window weeks missing"
            continue
        c_match = np.log1p(vals.loc[match_idx].to_numpy(dtype=float))
        if np.std(c_match) == 0 or np.std(t_match) == 0:
            excluded[c] = "constant counts over the matching period"
            continue
        similarity[c] = float(np.corrcoef(t_match, c_match)[0, 1])
    return similarity, excluded

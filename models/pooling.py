"""Pooled campaign effects and the smallest effect an estimate could have detected.

One campaign window tells little: its interval is wide next to the effects that matter
(a −20 % or −30 % change). The effects of many campaigns, combined, can say whether reminders
work. This module combines **campaign-level estimates** (one row per campaign, from
:func:`models.effect.campaign_effect`, :func:`models.did.did_effect` or the stepped-wedge design
estimator :func:`models.stepped_wedge.design_effect`) into one effect per group:

- :func:`effect_rows` — each estimate as a log rate ratio and its standard error;
- :func:`pool` / :func:`pool_effects` — a random-effects meta-analysis per group
  (DerSimonian–Laird ``tau²``; Hartung–Knapp–Sidik–Jonkman interval with ``k - 1`` degrees of
  freedom, its scale never below 1; heterogeneity as ``tau²``, ``I²`` and Cochran's ``Q``);
- :func:`minimum_detectable_effect` — the smallest reduction an estimate with this standard
  error detects with 80 % power in a two-sided 5 % test;
- :func:`campaigns_needed` — how many campaigns a pooled estimate needs to detect a −20 %
  effect with that power.

Everything is on the log scale of the rate ratio (``log(with / without)``); relative effects
are ``exp(x) - 1`` (−0.3 = 30 % fewer). A pooled estimate is the average effect over the
campaigns of the group; ``tau²`` is the variance of the true effects between campaigns.

Why DL + HKSJ: the standard random-effects estimator with the small-sample interval that keeps
its level with few studies (IntHout et al. 2014, BMC Med Res Methodol 14:25); the ``max(1, q)``
truncation of the HKSJ scale (Knapp & Hartung 2003, "ad hoc" variant) keeps the interval from
ever being narrower than the DL one when the campaigns agree more than chance would have it.
statsmodels' ``combine_effects`` was considered and not used: it does not truncate the DL
``tau²`` at 0 (negative ``tau²`` and ``I²``, random-effects weights built from them) and it
warns on the t-interval without per-study sizes; the estimator is a few lines on scipy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from models._estimate import IntervalEstimate
from models.pooling_correlation import Values

__all__ = [
    "PooledEffect",
    "EstimateMethod",
    "effect_rows",
    "pool",
    "pool_effects",
    "minimum_detectable_effect",
    "campaigns_needed",
    "POOL_COLUMNS",
    "TARGET_EFFECT",
]

EstimateMethod = Literal["counterfactual", "did", "design"]
#: The effect size the "campaigns needed" figure is computed for (−20 %).
TARGET_EFFECT = -0.2
_OFFSET = 0.5  # counts added before taking logs (zero-safe)
_ALPHA, _POWER = 0.05, 0.8
#: Columns of :func:`pool_effects` (after the group keys).
POOL_COLUMNS = [
    "k", "relative_effect", "relative_lower_95", "relative_upper_95", "relative_lower_80",
    "relative_upper_80", "log_effect", "se", "df", "tau2", "i2", "q", "p_heterogeneity",
    "p_value", "significant", "mde", "campaigns_needed", "method",
]


def _quantile(p: float, df: float | None) -> float:
    return float(stats.norm.ppf(p) if df is None or not np.isfinite(df) else stats.t.ppf(p, df))


def minimum_detectable_effect(se: float, *, df: float | None = None, alpha: float = _ALPHA,
                              power: float = _POWER) -> float:
    """Smallest relative reduction detectable with ``power`` in a two-sided test at ``alpha``.

    Parameters
    ----------
    se : standard error of the estimate on the log rate-ratio scale.
    df : degrees of freedom of its t interval (None: normal).

    Returns
    -------
    float
        ``exp(-(q(1 - alpha/2) + q(power)) * se) - 1`` (negative: e.g. −0.42 means only a
        reduction of 42 % or more would have been detected 80 % of the time); NaN when ``se``
        is not a positive finite number.
    """
    if not (np.isfinite(se) and se > 0):
        return float("nan")
    mult = _quantile(1 - alpha / 2, df) + _quantile(power, df)
    return float(np.expm1(-mult * se))


def campaigns_needed(variance: float, tau2: float = 0.0, *, effect: float = TARGET_EFFECT,
                     alpha: float = _ALPHA, power: float = _POWER,
                     max_campaigns: int = 10_000) -> int | None:
    """Campaigns a pooled estimate needs to detect ``effect`` (default −20 %).

    Parameters
    ----------
    variance : a typical campaign's sampling variance on the log scale (``se**2``).
    tau2 : the between-campaign variance of the true effects.

    Returns
    -------
    int | None
        The smallest ``n >= 2`` with ``(t(1 - alpha/2, n-1) + t(power, n-1)) *
        sqrt((variance + tau2) / n) <= |log(1 + effect)|`` (the HKSJ interval of ``n``
        campaigns like this one); None when more than ``max_campaigns`` would be needed or
        the variance is unknown.
    """
    if not (np.isfinite(variance) and variance > 0) or not np.isfinite(tau2) or not -1 < effect < 0:
        return None
    target = -float(np.log1p(effect))
    total = variance + max(tau2, 0.0)
    z = _quantile(1 - alpha / 2, None) + _quantile(power, None)
    n = max(2, int(np.ceil(z * z * total / target**2)))
    while n <= max_campaigns:
        mult = _quantile(1 - alpha / 2, n - 1) + _quantile(power, n - 1)
        if mult * np.sqrt(total / n) <= target:
            return n
        n += 1
    return None


@dataclass(frozen=True)
class PooledEffect(IntervalEstimate):
    """Random-effects pooled estimate over ``k`` campaign-level estimates.

    Attributes
    ----------
    k : estimates pooled.
    log_effect, se, df : pooled log rate ratio, its HKSJ standard error and the degrees of
        freedom of its t interval (``k - 1``; for ``k == 1`` the single estimate as given).
    relative_effect, relative_lower_95, ..., relative_upper_80 : ``exp(.) - 1`` of the
        estimate and interval bounds.
    tau2 : DerSimonian–Laird between-campaign variance (0 when the estimates agree within
        their errors; NaN for ``k == 1``).
    i2 : share of the spread of the estimates that is heterogeneity, not sampling error.
    q, p_heterogeneity : Cochran's Q and its chi-square p-value (``k - 1`` df).
    p_value : two-sided p-value of "no effect".
    mde : :func:`minimum_detectable_effect` of the pooled estimate.
    campaigns_needed : :func:`campaigns_needed` for −20 % with the group's median variance and
        ``tau2``.
    weights : each estimate's share of the pooled estimate (its contribution), in input order.
    method : ``"DL+HKSJ"`` (``"single"`` when ``k == 1``).
    """

    k: int
    log_effect: float
    se: float
    df: float
    relative_effect: float
    relative_lower_95: float
    relative_upper_95: float
    relative_lower_80: float
    relative_upper_80: float
    tau2: float
    i2: float
    q: float
    p_heterogeneity: float
    p_value: float
    mde: float
    campaigns_needed: int | None
    weights: tuple[float, ...]
    method: str


def _interval(est: float, se: float, df: float | None) -> dict[str, float]:
    out = {}
    for level in (0.95, 0.8):
        h = _quantile(0.5 + level / 2, df) * se
        tag = int(level * 100)
        out[f"relative_lower_{tag}"] = float(np.expm1(est - h))
        out[f"relative_upper_{tag}"] = float(np.expm1(est + h))
    return out


def pool(log_effect: Values, se: Values, df: Values | None = None,
         *, correlation: np.ndarray[Any, Any] | None = None,
         shared: np.ndarray[Any, Any] | None = None) -> PooledEffect:
    """Random-effects meta-analysis of estimates ``log_effect`` with standard errors ``se``.

    Parameters
    ----------
    log_effect, se : one value per campaign (log rate ratio and its standard error); pairs
        with a non-finite value or ``se <= 0`` are an error.
    df : degrees of freedom of each estimate's own interval; used only when ``k == 1``.
    correlation : ``k x k`` correlation of the estimates' sampling errors (None: independent).
        Campaigns of one season share errors — a forecast cannot foresee that season's
        timing or weather; DiD estimates against the same controls share the controls'
        noise — and a pooled interval that ignores it is too narrow (see
        :func:`error_correlation`, :func:`did_correlation`).
    shared : ``k x k`` covariance of an error the estimates share on top of their own (the
        log scale), e.g. the error of a bias correction estimated once and applied to every
        campaign of a category (:func:`shared_covariance`); it does not average away however
        many campaigns are pooled. None: nothing shared.

    Returns
    -------
    PooledEffect

    Raises
    ------
    ValueError
        No estimate, lengths differ, or a non-finite value / non-positive ``se``.

    Notes
    -----
    ``w = 1/se²``; ``Q = Σ w (y - ȳ_w)²``; ``tau² = max(0, (Q - (k-1)) / (Σw - Σw²/Σw))``;
    ``w* = 1/(se² + tau²)``; estimate ``Σ w* y / Σ w*``; HKSJ variance
    ``max(1, Σ w* (y - est)² / (k-1)) / Σ w*`` with a t interval on ``k - 1`` df. With a
    ``correlation`` R the variance is at least ``w*ᵀ (S R S + tau² I) w* / (Σ w*)²`` (S =
    diag(se)), and the degrees of freedom shrink to ``k_eff - 1`` with ``k_eff = k / deff``,
    ``deff`` the ratio of that variance to the independent one (Kish's design effect); a
    ``shared`` covariance is added to that matrix the same way.
    """
    y = np.asarray(log_effect, dtype=float)
    s = np.asarray(se, dtype=float)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError("log_effect and se must be 1-d and of the same length")
    k = int(y.size)
    if k == 0:
        raise ValueError("nothing to pool")
    if not (np.isfinite(y).all() and np.isfinite(s).all() and (s > 0).all()):
        raise ValueError("every estimate needs a finite log effect and a positive finite se")
    v = s * s
    if k == 1:
        return _single(float(y[0]), float(s[0]), df)
    w = 1.0 / v
    fe = float(np.sum(w * y) / np.sum(w))
    q = float(np.sum(w * (y - fe) ** 2))
    c = float(np.sum(w) - np.sum(w * w) / np.sum(w))
    tau2 = max(0.0, (q - (k - 1)) / c) if c > 0 else 0.0
    ws = 1.0 / (v + tau2)
    est = float(np.sum(ws * y) / np.sum(ws))
    scale = max(1.0, float(np.sum(ws * (y - est) ** 2)) / (k - 1))
    var = scale / float(np.sum(ws))
    dfp = float(k - 1)
    if correlation is not None or shared is not None:
        var_c = _correlated_variance(s, ws, tau2, correlation, shared)
        deff = var_c * float(np.sum(ws))
        if deff > 1.0:
            dfp = max(1.0, k / deff - 1.0)
        var = max(var, var_c)
    err = float(np.sqrt(var))
    return PooledEffect(
        k=k, log_effect=est, se=err, df=dfp, relative_effect=float(np.expm1(est)),
        **_interval(est, err, dfp), tau2=float(tau2),
        i2=float(max(0.0, (q - (k - 1)) / q)) if q > 0 else 0.0, q=q,
        p_heterogeneity=float(stats.chi2.sf(q, k - 1)),
        p_value=float(2 * stats.t.sf(abs(est / err), dfp)),
        mde=minimum_detectable_effect(err, df=dfp),
        campaigns_needed=campaigns_needed(float(np.median(v)), tau2),
        weights=tuple(float(x) for x in ws / ws.sum()), method="DL+HKSJ")


def _single(est: float, err: float, df: Values | None) -> PooledEffect:
    """One estimate "pooled": itself, with its own interval (t on ``df`` when finite)."""
    d = float(np.asarray(df, dtype=float).ravel()[0]) if df is not None else None
    d = d if d is not None and np.isfinite(d) else None
    p = 2 * (stats.t.sf(abs(est / err), d) if d else stats.norm.sf(abs(est / err)))
    return PooledEffect(
        k=1, log_effect=est, se=err, df=float(d) if d else float("inf"),
        relative_effect=float(np.expm1(est)), **_interval(est, err, d),
        tau2=float("nan"), i2=float("nan"), q=0.0, p_heterogeneity=float("nan"),
        p_value=float(p), mde=minimum_detectable_effect(err, df=d),
        campaigns_needed=campaigns_needed(err * err), weights=(1.0,), method="single")


def _correlated_variance(s: np.ndarray[Any, Any], ws: np.ndarray[Any, Any], tau2: float,
                         correlation: np.ndarray[Any, Any] | None,
                         shared: np.ndarray[Any, Any] | None) -> float:
    """``w*ᵀ (S R S + tau² I + shared) w* / (Σ w*)²``: the variance of the pooled estimate
    when the estimates' errors correlate (R) or share an error (``shared``)."""
    k = int(s.size)
    r = np.eye(k) if correlation is None else np.asarray(correlation, dtype=float)
    if r.shape != (k, k) or not np.isfinite(r).all():
        raise ValueError(f"correlation must be a finite {k} x {k} matrix")
    cov = r * np.outer(s, s)
    np.fill_diagonal(cov, s * s)
    cov = cov + tau2 * np.eye(k)
    if shared is not None:
        extra = np.asarray(shared, dtype=float)
        if extra.shape != (k, k) or not np.isfinite(extra).all():
            raise ValueError(f"shared must be a finite {k} x {k} matrix")
        cov = cov + extra
    return float(ws @ cov @ ws) / float(np.sum(ws)) ** 2


def effect_rows(frame: pd.DataFrame, *, method: EstimateMethod) -> pd.DataFrame:
    """Campaign-level estimates as log rate ratios with standard errors.

    Parameters
    ----------
    frame : one row per campaign estimate, with the fields of the estimate:

        - ``counterfactual`` (:class:`models.effect.EffectEstimate`): ``actual``,
          ``counterfactual`` (optionally ``counterfactual_median``), ``effect_lower_95``,
          ``effect_upper_95``. The 95 % bounds are ``actual - q`` for the 97.5 % and 2.5 %
          quantiles ``q`` of the counterfactual path totals, so ``log(actual + 0.5) -
          log(q + 0.5)`` gives the exact quantiles of the log ratio (a monotone map); the
          point estimate uses the paths' median (mean when absent).
        - ``did`` (:class:`models.did.DidEstimate`): ``log_effect``, ``placebo_rmse`` (the
          error scale of its interval) and, when present, ``df`` (its t quantiles; absent:
          normal); rows whose ``status`` is not ``ok`` are dropped.
        - ``design`` (:class:`models.stepped_wedge.DesignEstimate`): ``log_effect``, ``se``,
          ``df``; rows whose ``status`` is not ``ok`` are dropped.

    Returns
    -------
    The usable rows of ``frame`` (index kept) plus ``log_effect``, ``se``, ``df`` (inf for
    normal intervals), ``relative_effect`` (``exp(log_effect) - 1``) and ``mde``
    (:func:`minimum_detectable_effect`). Rows without a finite positive ``se`` are dropped.

    Raises
    ------
    ValueError
        On an unknown method or missing columns (named).
    """
    need = {"counterfactual": ("actual", "counterfactual", "effect_lower_95", "effect_upper_95"),
            "did": ("log_effect", "placebo_rmse"), "design": ("log_effect", "se")}
    if method not in need:
        raise ValueError(f"method must be one of {', '.join(need)}")
    missing = [c for c in need[method] if c not in frame.columns]
    if missing:
        raise ValueError(f"{method} estimates lack columns {missing}")
    f = frame
    if "status" in f.columns and method != "counterfactual":
        f = f[f["status"] == "ok"]
    num = f[list(need[method])].apply(pd.to_numeric, errors="coerce").astype(float)
    if method == "counterfactual":
        y, se = _counterfactual_log_ratio(f, num)
        df = np.full(len(f), np.inf)
    elif method == "did":
        y = num["log_effect"].to_numpy()
        se = num["placebo_rmse"].to_numpy()
        df = (pd.to_numeric(f["df"], errors="coerce").to_numpy(dtype=float)
              if "df" in f.columns else np.full(len(f), np.inf))
    else:
        y = num["log_effect"].to_numpy()
        se = num["se"].to_numpy()
        df = (pd.to_numeric(f["df"], errors="coerce").to_numpy(dtype=float)
              if "df" in f.columns else np.full(len(f), np.inf))
    out = f.copy()
    out["log_effect"], out["se"], out["df"] = y, se, df
    ok = np.isfinite(y) & np.isfinite(se) & (se > 0)
    out = pd.DataFrame(out[ok])
    out["relative_effect"] = np.expm1(out["log_effect"].to_numpy(dtype=float))
    out["mde"] = [minimum_detectable_effect(s, df=d if np.isfinite(d) else None)
                  for s, d in zip(out["se"], out["df"], strict=True)]
    return out


def _counterfactual_log_ratio(f: pd.DataFrame, num: pd.DataFrame
                              ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """``(log ratio, se)`` of counterfactual estimates: actual over the paths' median (mean
    when absent), the se from the exact 95 % quantiles of the log ratio."""
    a = num["actual"].to_numpy()
    centre = (pd.to_numeric(f["counterfactual_median"], errors="coerce").to_numpy(dtype=float)
              if "counterfactual_median" in f.columns else num["counterfactual"].to_numpy())
    centre = np.where(np.isfinite(centre), centre, num["counterfactual"].to_numpy())
    q_hi = np.maximum(a - num["effect_lower_95"].to_numpy(), 0.0)
    q_lo = np.maximum(a - num["effect_upper_95"].to_numpy(), 0.0)
    la = np.log(a + _OFFSET)
    y = la - np.log(np.maximum(centre, 0.0) + _OFFSET)
    se = ((la - np.log(q_lo + _OFFSET)) - (la - np.log(q_hi + _OFFSET))) / (
        2 * _quantile(0.975, None))
    return y, se


def pool_effects(rows: pd.DataFrame, by: str | Sequence[str] | None = None,
                 *, min_k: int = 1) -> pd.DataFrame:
    """:func:`pool` per group of :func:`effect_rows` output.

    Parameters
    ----------
    rows : frame with ``log_effect`` and ``se`` (and the group columns), e.g. from
        :func:`effect_rows`.
    by : group column(s), e.g. ``"category"``, ``["department", "year"]``; None pools all.
    min_k : groups with fewer estimates are left out.

    Returns
    -------
    One row per group: the group columns then :data:`POOL_COLUMNS` (sorted by the groups).
    Each input row's share of its group's estimate is :func:`pool`'s ``weights``; use
    :func:`pool` on a group to get them.
    """
    keys = [by] if isinstance(by, str) else list(by or [])
    missing = [c for c in ["log_effect", "se", *keys] if c not in rows.columns]
    if missing:
        raise ValueError(f"rows lack columns {missing}")
    out = []
    groups = rows.groupby(keys, sort=True, dropna=False) if keys else [((), rows)]
    for key, g in groups:
        if len(g) < min_k or len(g) == 0:
            continue
        df = g["df"].to_numpy(dtype=float) if "df" in g.columns else None
        p = pool(g["log_effect"].to_numpy(dtype=float), g["se"].to_numpy(dtype=float), df)
        d = p.to_dict()
        d.pop("weights")
        vals = key if isinstance(key, tuple) else (key,)
        out.append({**dict(zip(keys, vals, strict=True)), **{c: d[c] for c in POOL_COLUMNS}})
    return pd.DataFrame(out, columns=[*keys, *POOL_COLUMNS])

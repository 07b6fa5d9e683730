"""Correlated errors of campaign-level estimates, for a pooled interval that does not count
them as independent: the within-season correlation from placebo windows, the cluster-robust
variance of a mean, the covariance of an error shared within groups, the correlation of DiD
estimates sharing controls, and the seasons that group the windows. Used with
:func:`models.pooling.pool` (``correlation=``, ``shared=``); re-exported by
:mod:`models.pooling`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "Values",
    "error_correlation",
    "group_correlation",
    "clustered_mean_variance",
    "shared_covariance",
    "did_correlation",
    "season_labels",
]

Values = Sequence[float] | np.ndarray[Any, Any] | pd.Series


def error_correlation(z: Values, groups: Sequence[Any] | np.ndarray[Any, Any] | pd.Series
                      ) -> float:
    """Correlation of estimation errors within groups (seasons), from placebo windows.

    Parameters
    ----------
    z : standardised errors of windows without a campaign (``log(actual/counterfactual) /
        se``, where the true effect is 0).
    groups : each window's group, e.g. ``category|season`` (windows of one category whose
        dates overlap).

    Returns
    -------
    float
        The one-way ANOVA intraclass correlation ``(MSB - MSW) / (MSB + (n0 - 1) MSW)``,
        clipped to ``[0, 0.95]``; 0 with fewer than 2 groups holding 2 or more windows.
    """
    f = pd.DataFrame({"z": np.asarray(z, dtype=float), "g": list(groups)})
    f = f[np.isfinite(f["z"])]
    sizes = f.groupby("g")["z"].size()
    if int((sizes >= 2).sum()) < 2:
        return 0.0
    n, n_groups = len(f), len(sizes)
    means = f.groupby("g")["z"].transform("mean")
    msb = float(((f.groupby("g")["z"].mean() - f["z"].mean()) ** 2 * sizes).sum()
                / (n_groups - 1))
    msw = float(((f["z"] - means) ** 2).sum() / max(n - n_groups, 1))
    n0 = (n - float((sizes**2).sum()) / n) / (n_groups - 1)
    denom = msb + (n0 - 1) * msw
    return float(np.clip((msb - msw) / denom, 0.0, 0.95)) if denom > 0 else 0.0


def clustered_mean_variance(values: Values, groups: Sequence[Any] | np.ndarray[Any, Any]
                            | pd.Series) -> float:
    """Variance of the mean of ``values`` when values of one group share their error.

    The cluster-robust (sandwich) variance ``G / (G - 1) * sum_g (sum_{i in g} (x_i -
    mean))**2 / n**2`` over the ``G`` groups; NaN with fewer than 2 groups. With independent
    values it is about ``var / n``; when a group's values move together it grows towards
    ``var(group means) / G``, which no number of values within the groups reduces.
    """
    f = pd.DataFrame({"x": np.asarray(values, dtype=float), "g": list(groups)})
    f = f[np.isfinite(f["x"])]
    n, n_groups = len(f), int(f["g"].nunique())
    if n_groups < 2:
        return float("nan")
    sums = (f["x"] - f["x"].mean()).groupby(f["g"]).sum()
    return float(n_groups / (n_groups - 1) * float((sums**2).sum()) / n**2)


def shared_covariance(groups: Sequence[Any] | np.ndarray[Any, Any] | pd.Series,
                      variances: Values) -> np.ndarray[Any, Any]:
    """Covariance of an error shared within groups: ``variances[i]`` between estimates ``i``
    and ``j`` of the same group (the group's value; ``variances`` holds it per estimate), 0
    across groups. Pass to :func:`pool` as ``shared``."""
    g = np.asarray(list(groups), dtype=object)
    v = np.nan_to_num(np.asarray(variances, dtype=float), nan=0.0)
    same = g[:, None] == g[None, :]
    out: np.ndarray[Any, Any] = np.where(same, np.sqrt(np.outer(v, v)), 0.0)
    return out


def group_correlation(groups: Sequence[Any] | np.ndarray[Any, Any] | pd.Series,
                      rho: float) -> np.ndarray[Any, Any]:
    """Correlation matrix with ``rho`` between estimates of the same group, 0 otherwise."""
    g = np.asarray(list(groups), dtype=object)
    r: np.ndarray[Any, Any] = np.where(g[:, None] == g[None, :], float(rho), 0.0)
    np.fill_diagonal(r, 1.0)
    return r


def season_labels(category: Sequence[Any] | pd.Series, start: Sequence[Any] | pd.Series,
                  *, gap_days: int = 28) -> list[str]:
    """Label windows of one category that start within ``gap_days`` of the previous one
    (a chain) as one season: ``category|first start``. Campaigns of one season share the
    errors a forecast makes about that season."""
    f = pd.DataFrame({"c": [str(x) for x in category], "s": pd.to_datetime(pd.Series(
        list(start))).to_numpy()})
    out = [""] * len(f)
    for cat, g in f.groupby("c", sort=False):
        g = g.sort_values("s")
        first = prev = None
        for idx, s in zip(g.index, g["s"], strict=True):
            if prev is None or (s - prev).days > gap_days:
                first = s
            prev = s
            out[int(idx)] = f"{cat}|{str(first)[:10]}"
    return out


def did_correlation(controls: Sequence[Sequence[str]],
                    windows: Sequence[tuple[Any, Any]]) -> np.ndarray[Any, Any]:
    """Correlation of DiD estimates that share control series in overlapping windows.

    A DiD's error is its own series' error minus the mean of its controls'. With series
    errors of equal variance, estimates ``i`` and ``j`` over overlapping windows correlate by
    ``(|C_i ∩ C_j| / (|C_i| |C_j|)) / sqrt((1 + 1/|C_i|) (1 + 1/|C_j|))`` (and by 0 when
    their windows do not overlap, or when one is the other's control it is ignored).

    Parameters
    ----------
    controls : each estimate's control series.
    windows : each estimate's ``(start, end)``.
    """
    k = len(controls)
    sets = [set(map(str, c)) for c in controls]
    spans = [(pd.Timestamp(a), pd.Timestamp(b)) for a, b in windows]
    r = np.eye(k)
    for i in range(k):
        for j in range(i + 1, k):
            if not sets[i] or not sets[j]:
                continue
            if spans[i][0] > spans[j][1] or spans[j][0] > spans[i][1]:
                continue
            ni, nj = len(sets[i]), len(sets[j])
            val = (len(sets[i] & sets[j]) / (ni * nj)) / np.sqrt((1 + 1 / ni) * (1 + 1 / nj))
            r[i, j] = r[j, i] = val
    return r

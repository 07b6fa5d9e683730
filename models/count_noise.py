"""Count noise of the sample paths (``noise="negbin"`` of
:class:`models.forecast.ProphetForecaster`): ``y_d ~ Poisson(mu_d * g_w * e_d)`` with gamma
daily over-dispersion ``e_d`` and a log-normal AR(1) week shock ``g_w`` shared by the seven
days of an ISO week; moment estimates from the in-sample residuals, a Kalman filter of the
shock over the last observed weeks, and vectorised integer paths."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.series import iso_mondays

__all__ = ["Noise", "NO_NOISE", "noise_moments", "filter_last", "count_paths", "week_codes"]


_MAX_DISPERSION = 10.0  # 1/r of the negative binomial


_MAX_WEEK_VAR = 4.0  # variance of the multiplicative week shock


_MAX_PHI = 0.9


def week_codes(days: pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    weeks = iso_mondays(days)
    codes: np.ndarray = np.r_[0, np.cumsum(weeks[1:] != weeks[:-1])]
    return codes


Noise = tuple[float, float, float, float, float]


NO_NOISE: Noise = (0.0, 0.0, 0.0, 0.0, 0.0)


def noise_moments(ds: np.ndarray, y: np.ndarray, mu: np.ndarray) -> Noise:
    """Moment estimates ``(dispersion, week_var, phi)`` of the count noise model.

    Model: ``y_d ~ Poisson(mu_d * g_w * e_d)``, ``e_d ~ Gamma(mean 1, var c)`` (daily
    over-dispersion, ``c`` = 1/r of a negative binomial), ``g_w`` a week shock (mean 1, var
    ``v``). Then ``Var(y_d) = mu + (c (1 + v) + v) mu^2`` and, for a complete week with
    ``M = sum mu_d``, ``S = sum mu_d^2``: ``Var(W) = M + c (1 + v) S + v M^2``. The daily
    residuals give ``a = c (1 + v) + v``; the weekly residual sums give ``v``
    (``sum((W-M)^2 - M) = (a - v) S + v M^2`` summed over weeks); ``phi`` is the lag-1
    autocorrelation of the standardised weekly residuals. All clipped to sane ranges;
    ``(0, 0, 0)`` (Poisson) when there is too little to estimate from.
    """
    mu = np.maximum(np.asarray(mu, dtype=float), 1e-6)
    resid = y - mu
    denom = float(np.sum(mu * mu))
    if denom <= 0 or len(y) < 14:
        return NO_NOISE
    a = max(0.0, float(np.sum(resid * resid - mu)) / denom)
    codes = week_codes(np.asarray(ds, dtype="datetime64[ns]"))
    size = np.bincount(codes)
    full = size == 7
    W = np.bincount(codes, weights=y)[full]
    M = np.bincount(codes, weights=mu)[full]
    S = np.bincount(codes, weights=mu * mu)[full]
    v = 0.0
    phi = 0.0
    if W.size >= 8:
        num = float(np.sum((W - M) ** 2 - M)) - a * float(S.sum())
        den = float(np.sum(M * M) - S.sum())
        v = float(np.clip(num / den, 0.0, _MAX_WEEK_VAR)) if den > 0 else 0.0
        var_w = M + a * S + v * (M * M - S) + 1e-9
        z = (W - M) / np.sqrt(var_w)
        zc = z - z.mean()
        ss = float(np.sum(zc * zc))
        share = float(np.mean(v * M * M / var_w))  # share of Var(W) due to the week shock
        if ss > 0 and share > 0:
            rho = float(np.sum(zc[1:] * zc[:-1])) / ss
            phi = float(np.clip(rho / share, 0.0, _MAX_PHI))
    c = float(np.clip((a - v) / (1.0 + v), 0.0, _MAX_DISPERSION))
    last_mean = last_var = 0.0
    if v > 0 and W.size:
        last_mean, last_var = filter_last(W, M, S, c, v, phi, adjacent=bool(full[-1]))
    return c, v, phi, last_mean, last_var


def filter_last(W: np.ndarray, M: np.ndarray, S: np.ndarray, c: float, v: float, phi: float,
                 *, adjacent: bool) -> tuple[float, float]:
    """Kalman filter of the log week shock over the complete in-sample weeks.

    State ``x_w`` AR(1) (``phi``, stationary variance ``log(1 + v)``); observation
    ``log((W + 0.5) / (M + 0.5)) = x_w + noise`` with the count noise's delta-method variance
    ``(M + c (1 + v) S) / M^2``. Returns the mean and variance of the shock of the week just
    before the forecast (one AR step past the last complete week when the history ends
    mid-week), so sample paths start from the recent level instead of the fitted curve.
    """
    s2 = float(np.log1p(v))
    q = s2 * (1.0 - phi * phi)
    e = np.log((W + 0.5) / (M + 0.5))
    r = (M + c * (1.0 + v) * S) / np.maximum(M, 0.5) ** 2
    m, p = 0.0, s2
    for w in range(len(W)):
        if w:
            m, p = phi * m, phi * phi * p + q
        gain = p / (p + float(r[w]))
        m, p = m + gain * (float(e[w]) - m), (1.0 - gain) * p
    if not adjacent:
        m, p = phi * m, phi * phi * p + q
    return float(m), float(p)


def count_paths(mu: np.ndarray, future: pd.DatetimeIndex, disp: float, week_var: float,
                 phi: float, rng: np.random.Generator, last: tuple[float, float] = (0.0, 0.0),
                 ) -> np.ndarray:
    """Integer-valued daily paths ``(days, n)`` from mean paths ``mu`` (count scale): a
    log-normal AR(1) week shock (mean 1, variance ``week_var``; started from the filtered
    shock ``last = (mean, variance)`` of the week before the forecast), gamma daily
    over-dispersion (``disp`` = 1/r) and Poisson counts."""
    days, n = mu.shape
    lam = np.maximum(mu, 0.0)
    if week_var > 0:
        codes = week_codes(future)
        n_weeks = int(codes[-1]) + 1
        s2 = float(np.log1p(week_var))
        eps = rng.normal(0.0, np.sqrt(s2), size=(n_weeks, n))
        prev = last[0] + np.sqrt(min(max(last[1], 0.0), s2)) * rng.standard_normal(n)
        x = np.empty_like(eps)
        innov = np.sqrt(1.0 - phi * phi)
        for w in range(n_weeks):
            x[w] = phi * (prev if w == 0 else x[w - 1]) + innov * eps[w]
        lam = lam * np.exp(x - s2 / 2.0)[codes]
    if disp > 0:
        shape = 1.0 / disp
        lam = rng.gamma(shape, 1.0, size=lam.shape) * (lam / shape)
    out: np.ndarray = rng.poisson(lam).astype(float)
    return out

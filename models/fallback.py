"""The ``seasonal_mean`` fallback of :class:`models.forecast.ProphetForecaster`, for a series
too short, too sparse or all zero for Prophet: day-of-week means of the last 8 weeks with
Poisson or negative binomial (moment-matched over-dispersion) daily draws."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["FALLBACK_MODEL", "fallback_paths"]


FALLBACK_MODEL = "seasonal_mean"


def fallback_paths(
    hist: pd.DataFrame, future: pd.DatetimeIndex, n_samples: int, seed: int
) -> np.ndarray:
    """``seasonal_mean``: day-of-week means of the last 8 weeks, Poisson or negative binomial
    (moment-matched over-dispersion) daily draws. Shape ``(len(future), n_samples)``."""
    rng = np.random.default_rng(seed)
    recent = hist[hist["ds"] > hist["ds"].iloc[-1] - pd.Timedelta(days=56)]
    y = recent["y"].to_numpy(dtype=float)
    mean = float(y.mean()) if y.size else 0.0
    if mean <= 0:
        return np.zeros((len(future), n_samples))
    by_dow = recent.groupby(recent["ds"].dt.day_of_week)["y"].agg(["mean", "size"])
    mu_dow = np.full(7, mean)
    ok = by_dow["size"] >= 2
    mu_dow[by_dow.index[ok].to_numpy()] = by_dow.loc[ok, "mean"].to_numpy()
    mu = np.maximum(mu_dow[future.day_of_week.to_numpy()], 1e-9)[:, None]
    var = float(y.var(ddof=1)) if y.size > 1 else mean
    if var > mean * 1.05:
        r = mean**2 / (var - mean)
        draws = rng.negative_binomial(r, r / (r + mu), size=(len(future), n_samples))
    else:
        draws = rng.poisson(mu, size=(len(future), n_samples))
    return draws.astype(float)

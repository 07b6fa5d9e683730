"""bench/_oracle.py: the generator oracle used as an upper bound in bench/accuracy.py."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from bench._oracle import GeneratorOracle, climatological_expected
from service.samples.generator import expected_counts


def test_oracle_paths_follow_the_generators_expectation() -> None:
    exp = expected_counts(start=date(2023, 1, 1), end=date(2023, 12, 31))
    uids = sorted(exp.groupby("unique_id")["mu"].sum().nlargest(6).index)  # busiest series
    exp = exp[exp["unique_id"].isin(uids)]
    hist = exp[exp["ds"] <= "2023-06-25"].assign(y=1.0)[["unique_id", "ds", "y"]]
    out = GeneratorOracle(exp, n_samples=400).fit(hist).predict(7 * 13)
    assert set(out.daily["unique_id"]) == set(uids) and out.failures.empty
    assert out.weekly_samples.shape == (6 * 13, 400)
    weekly_mu = (exp[exp["ds"] > "2023-06-25"]
                 .assign(week=lambda d: d["ds"] - pd.to_timedelta(d["ds"].dt.day_of_week, "D"))
                 .groupby(["unique_id", "week"])["mu"].sum())
    mean = out.weekly_samples.mean(axis=1)
    both = pd.concat([mean.rename("paths"), weekly_mu.rename("mu")], axis=1, join="inner")
    assert len(both) == 6 * 13
    big = both[both["mu"] > 20]
    assert len(big) > 10
    assert np.allclose(big["paths"], big["mu"], rtol=0.15)
    daily = out.daily.set_index(["unique_id", "ds"])["yhat"]
    mu = exp.set_index(["unique_id", "ds"])["mu"].reindex(daily.index)
    assert np.allclose(daily.to_numpy(), mu.to_numpy())


def test_climatological_oracle_averages_this_years_season_draws() -> None:
    seasonal = expected_counts(surprises=False)
    clim = climatological_expected(replicates=3)
    assert clim[["unique_id", "ds"]].equals(seasonal[["unique_id", "ds"]])
    assert clim["dispersion"].equals(seasonal["dispersion"])
    # the seasons move between replicates, so the averaged peaks are lower and wider,
    # while the level (trend, day types: other random streams) stays the same
    assert abs(clim["mu"].sum() / seasonal["mu"].sum() - 1) < 0.05
    assert not np.allclose(clim["mu"], seasonal["mu"])
    peak_clim = clim.groupby("unique_id")["mu"].max().sum()
    peak_seasonal = seasonal.groupby("unique_id")["mu"].max().sum()
    assert peak_clim < 0.95 * peak_seasonal

"""An oracle "forecaster" for the samples: the generator's own expected counts and noise.

It is not a model: it reads the generator (:func:`service.samples.generator.expected_counts`),
so it knows every planted surge, its timing and size, the trend and even the latent weekly
wander of the weeks it "forecasts"; only the daily gamma-Poisson noise is left to chance, and
its sample paths have exactly the distribution the committed counts were drawn from. Its
scores are therefore an upper bound for any forecaster on ``data/samples`` under the DESIGN.md
spike rules: if the oracle cannot reach a target at some ``p_min``, no forecaster can without
being mis-calibrated. Used by ``bench/accuracy.py --models ...,oracle`` (samples only).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from models._count_baseline import FloatArray, _CountBaseline


class GeneratorOracle(_CountBaseline):
    """Daily paths ``Poisson(mu * Gamma(k, 1/k))`` from the generator's ``mu`` and ``k``."""

    model_name: ClassVar[str] = "Oracle"

    def __init__(self, expected: pd.DataFrame | None = None, n_samples: int = 200,
                 random_state: int | None = 0) -> None:
        self.expected = expected
        self.n_samples = n_samples
        self.random_state = random_state

    def _fit(self, hist: pd.DataFrame) -> None:
        if self.expected is None:
            raise ValueError("GeneratorOracle needs the generator's expected counts")
        exp = self.expected.set_index(["unique_id", "ds"]).sort_index()
        self.mu_ = exp["mu"]
        self.dispersion_ = exp["dispersion"].groupby(level="unique_id").first()

    def _points(self, future: pd.DataFrame) -> FloatArray:
        key = pd.MultiIndex.from_frame(future[["unique_id", "ds"]])
        return np.asarray(self.mu_.reindex(key).fillna(0.0).to_numpy(), dtype=float)

    def _forecast_series(self, uid: object, future: pd.DatetimeIndex, point: FloatArray,
                         rng: np.random.Generator) -> FloatArray:
        k = float(self.dispersion_.loc[str(uid)])
        lam = point[None, :] * rng.gamma(k, 1.0 / k, size=(self.n_samples, len(point)))
        return rng.poisson(lam).astype(float)


def climatological_expected(replicates: int = 20) -> pd.DataFrame:
    """The seasonal oracle's expected counts averaged over ``replicates`` fresh draws of the
    planted seasons: a *climatological* oracle.

    The seasonal oracle (``expected_counts(surprises=False)``) still knows each year's random
    shift, jitter and size of every planted season, which no forecaster can know before the
    year starts. Here every draw of :mod:`service.samples.planting` (the only random streams
    of the seasons) gets an extra label per replicate, so the seasons move and resize as the
    generator would move them in another world, while the trend, levels, day types and gaps
    (other streams, learnable from history) stay exactly as committed; the mean over the
    replicates is what a forecaster that knew the generator's every rule, but none of this
    year's draws, would expect. A bound for "forecasting a season from its rules", not from
    being told it.
    """
    from unittest import mock

    from service.samples import planting
    from service.samples.generator import expected_counts
    from service.samples.knobs import random_stream as original

    total: pd.DataFrame | None = None
    for i in range(replicates):
        def stream(seed: int, *labels: object, _i: int = i) -> np.random.Generator:
            return original(seed, *labels, "climatological", _i)

        with mock.patch.object(planting, "random_stream", stream):
            frame = expected_counts(surprises=False)
        if total is None:
            total = frame
        else:
            total = total.assign(mu=total["mu"].to_numpy() + frame["mu"].to_numpy())
    assert total is not None
    return total.assign(mu=total["mu"] / replicates)

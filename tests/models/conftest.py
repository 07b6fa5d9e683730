"""Fixtures for the forecasting library: a small seeded synthetic panel and cached fits.

Synthetic, generated here with numpy (no dependency on ``data/samples``). Fits are cached
per session so the Prophet-backed tests share one fit of each configuration.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.forecast import ProphetForecaster
from models.types import ForecastOutput

HORIZON = 70  # days; from the panel's end (2026-11-25, a Wednesday) into 2027
PANEL_END = pd.Timestamp("2026-11-25")


def _days(n: int) -> pd.DatetimeIndex:
    return pd.date_range(end=PANEL_END, periods=n, freq="D")


def _counts(rng: np.random.Generator, ds: pd.DatetimeIndex, level: float) -> np.ndarray:
    t = np.arange(len(ds))
    lam = level * (1 + 0.4 * np.sin(2 * np.pi * t / 365.25)) * np.where(
        ds.day_of_week < 5, 1.2, 0.6)
    counts: np.ndarray = rng.poisson(lam).astype(float)
    return counts


def make_panel(seed: int = 7) -> pd.DataFrame:
    """Long frame ``unique_id, ds, y`` with one series per situation the forecaster handles.

    ``regular`` (800 days, yearly on), ``medium`` (300 days: no yearly), ``gappy`` (300 days,
    20 % of rows missing), ``short`` (30 days), ``zero`` (100 zero days), ``sparse`` (300 days,
    ~1 % non-zero), ``bad`` (negative counts: must fail alone).
    """
    rng = np.random.default_rng(seed)
    parts = []
    ds = _days(800)
    parts.append(pd.DataFrame({"unique_id": "regular", "ds": ds, "y": _counts(rng, ds, 6.0)}))
    ds = _days(300)
    parts.append(pd.DataFrame({"unique_id": "medium", "ds": ds, "y": _counts(rng, ds, 3.0)}))
    gappy = pd.DataFrame({"unique_id": "gappy", "ds": ds, "y": _counts(rng, ds, 4.0)})
    keep = rng.random(len(ds)) > 0.2
    keep[[0, -1]] = True
    parts.append(gappy[keep])
    ds30 = _days(30)
    parts.append(pd.DataFrame({"unique_id": "short", "ds": ds30, "y": _counts(rng, ds30, 2.0)}))
    ds100 = _days(100)
    parts.append(pd.DataFrame({"unique_id": "zero", "ds": ds100, "y": 0.0}))
    sparse = np.zeros(len(ds))
    sparse[rng.choice(len(ds), 3, replace=False)] = 1.0
    parts.append(pd.DataFrame({"unique_id": "sparse", "ds": ds, "y": sparse}))
    bad = _counts(rng, ds, 3.0)
    bad[5] = -4.0
    parts.append(pd.DataFrame({"unique_id": "bad", "ds": ds, "y": bad}))
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="session")
def horizon() -> int:
    """Forecast days used by the cached forecast (reaches 2027: unofficial calendar)."""
    return HORIZON


@pytest.fixture(scope="session")
def panel_end() -> pd.Timestamp:
    return PANEL_END


@pytest.fixture(scope="session")
def panel() -> pd.DataFrame:
    return make_panel()


@pytest.fixture(scope="session")
def fitted(panel: pd.DataFrame) -> ProphetForecaster:
    """Default forecaster fitted on the whole panel (one real Prophet fit per eligible series)."""
    est = ProphetForecaster()
    assert est.fit(panel) is est
    return est


@pytest.fixture(scope="session")
def forecast(fitted: ProphetForecaster) -> ForecastOutput:
    return fitted.predict(HORIZON)


@pytest.fixture(scope="session")
def regular(panel: pd.DataFrame) -> pd.DataFrame:
    return panel[panel["unique_id"] == "regular"].reset_index(drop=True)

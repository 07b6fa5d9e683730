"""Throughput of the forecasting core vs the naive Prophet loop, measured in one run.

Workload: ``--series`` synthetic daily count series (default 500) x ``--years`` (4) of
history, ``--horizon`` (182) days = 26 weeks ahead with daily 80 % intervals and weekly
P(spike) (DESIGN.md: share of weekly path sums above the history threshold).

- **ours**: :func:`models.runner.run_forecasts` with the default ``ProphetForecaster``
  (recurring CN holiday names with weekly blocks + ``is_workday``; features and Stan data
  prepared in numpy and Prophet's compiled Stan model called directly; 200 count sample
  paths on the future only, vectorised; loky processes), plus the P(spike) step. Also a
  serial pass over the baseline subset to split fit / predict per series.
- **baseline** (the naive loop, one series after another in this process): default
  ``Prophet()`` + ``add_country_holidays('CN')``, 1,000 uncertainty samples, ``predict`` over
  history + future, then ``predictive_samples`` of the future rows for P(spike). Measured on a
  subset (``--baseline-series``, default 40) and extrapolated per series (the rate is
  per-series constant: same lengths, same model).

Peak memory: the summed resident memory of this process and all its worker processes,
sampled every 0.2 s while the runner works (psutil), plus ``ru_maxrss`` of this process and
of the largest (joined) worker. ``--no-baseline`` skips the naive loop, for the memory run
at 5,000 series (issue 3: under 4 GB). The load
average is printed before and after: the machine is shared, so compare the ratio measured
in one run, not absolute rates across runs.

Usage::

    .venv/bin/python bench/forecast.py --series 100      # quick
    .venv/bin/python bench/forecast.py                   # 500 series (run once; 2 cores)
    .venv/bin/python bench/forecast.py --series 5000 --baseline-series 5 --no-baseline
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.forecast import ProphetForecaster
from models.peaks import thresholds
from models.runner import run_forecasts
from models.series import to_weekly, week_start

END = pd.Timestamp("2025-12-31")


def make_series(n: int, years: int, seed: int = 42) -> pd.DataFrame:
    """Long frame ``unique_id, ds, y``: yearly + weekly seasonality, a pre-Spring-Festival
    build-up, trend and negative-binomial noise, with levels from ~0.5 to ~40 a day."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range(end=END, periods=365 * years + years // 4, freq="D")
    t = np.arange(len(ds)) / 365.25
    cny = pd.to_datetime(["2022-02-01", "2023-01-22", "2024-02-10", "2025-01-29",
                          "2021-02-12"]).to_numpy()
    days_to = np.min(np.abs(ds.to_numpy()[:, None] - cny[None, :]), axis=1) / np.timedelta64(1, "D")
    weekday = np.where(ds.day_of_week < 5, 1.15, 0.65)
    parts = []
    for i in range(n):
        level = float(np.exp(rng.uniform(np.log(0.5), np.log(40.0))))
        amp, phase = rng.uniform(0.1, 0.6), rng.uniform(0, 2 * np.pi)
        trend = 1 + rng.normal(0, 0.08) * t
        pre_sf = 1 + rng.uniform(0, 0.8) * (days_to < 21)
        lam = np.maximum(level * (1 + amp * np.sin(2 * np.pi * t + phase)) * weekday
                         * trend * pre_sf, 0.01)
        r = 5.0
        y = rng.negative_binomial(r, r / (r + lam))
        parts.append(pd.DataFrame({"unique_id": f"s{i:04d}", "ds": ds, "y": y.astype(float)}))
    return pd.concat(parts, ignore_index=True)


def p_spike(history: pd.DataFrame, weekly_samples: pd.DataFrame) -> pd.Series:
    """Weekly P(spike) per (unique_id, week) from path sums and history thresholds."""
    thr = thresholds(to_weekly(history))
    t_row = thr.reindex(weekly_samples.index.get_level_values(0)).to_numpy()
    p = (weekly_samples.to_numpy(dtype=float) > t_row[:, None]).mean(axis=1)
    return pd.Series(p, index=weekly_samples.index, name="p_spike")


def naive_loop(frame: pd.DataFrame, horizon: int) -> tuple[float, int]:
    """The tutorial way, one series after another; returns (seconds, series)."""
    from prophet import Prophet

    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)
    t0 = time.perf_counter()
    n = 0
    for uid, g in frame.groupby("unique_id", sort=True):
        m = Prophet()  # 1,000 uncertainty samples
        m.add_country_holidays(country_name="CN")
        m.fit(g[["ds", "y"]])
        future = m.make_future_dataframe(periods=horizon)  # history + future
        fcst = m.predict(future)
        fut = future.tail(horizon)
        paths = m.predictive_samples(fut)["yhat"]  # for P(spike)
        sums = pd.DataFrame(paths).groupby(week_start(fut["ds"]).to_numpy()).sum()
        thr = thresholds(to_weekly(g)).get(uid, 5.0)
        _ = (sums.to_numpy() > thr).mean(axis=1), fcst["yhat_upper"].iloc[-1]
        n += 1
    return time.perf_counter() - t0, n


def _mb(kb: int) -> float:
    return kb / 1024.0  # ru_maxrss is in KiB on Linux


class TreeMemory:
    """Peak of the summed RSS of this process and its descendants, sampled in a thread."""

    def __init__(self, interval: float = 0.2) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.peak_bytes = 0
        self.peak_processes = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        import psutil

        total, n = 0, 0
        for proc in [self._proc, *self._proc.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
                n += 1
            except psutil.Error:  # a worker that just exited
                continue
        if total > self.peak_bytes:
            self.peak_bytes, self.peak_processes = total, n

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self._interval)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=500)
    ap.add_argument("--years", type=int, default=4)
    ap.add_argument("--horizon", type=int, default=182)
    ap.add_argument("--baseline-series", type=int, default=40)
    ap.add_argument("--engine", default="local", choices=["serial", "local", "dask"])
    ap.add_argument("--n-jobs", type=int, default=-1)
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip the naive loop (memory runs with many series)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # Prophet 1.5.0's pandas-4 deprecations in the baseline
    logging.getLogger("cmdstanpy").setLevel(logging.ERROR)

    frame = make_series(args.series, args.years)
    n_base = min(args.baseline_series, args.series)
    subset = frame[frame["unique_id"].isin(sorted(frame["unique_id"].unique())[:n_base])]
    days = frame.groupby("unique_id").size().iloc[0]
    print(f"workload: {args.series} series x {days} days, horizon {args.horizon} days "
          f"(26 weeks), intervals + weekly P(spike); engine={args.engine}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")

    # ours, serial on the subset: split fit / predict per series
    est = ProphetForecaster()
    t0 = time.perf_counter()
    est.fit(subset)
    t1 = time.perf_counter()
    out = est.predict(args.horizon)
    p_spike(subset, out.weekly_samples)
    t2 = time.perf_counter()
    fit_ps, pred_ps = (t1 - t0) / n_base, (t2 - t1) / n_base
    print(f"ours serial ({n_base} series): fit {fit_ps * 1000:.0f} ms/series, predict + "
          f"P(spike) {pred_ps * 1000:.0f} ms/series -> {1 / (fit_ps + pred_ps):.1f} series/s")

    # ours, all series through the runner
    done: list[int] = []
    t0 = time.perf_counter()
    with TreeMemory() as tree:
        res = run_forecasts(frame, horizon=args.horizon, engine=args.engine,
                            n_jobs=args.n_jobs, on_progress=lambda d, n: done.append(d))
        probs = p_spike(frame, res.output.weekly_samples)
    ours_s = time.perf_counter() - t0
    ours_rate = args.series / ours_s
    print(f"ours {args.engine} ({args.series} series): {ours_s:.1f} s wall incl. process "
          f"start, JSON of {len(res.model_json)} models and P(spike) -> {ours_rate:.2f} "
          f"series/s; {len(res.output.failures)} failures; "
          f"{int((probs >= 0.5).sum())} series-weeks with P(spike) >= 0.5")

    print(f"peak memory while forecasting: {tree.peak_bytes / 2**20:.0f} MB summed over "
          f"{tree.peak_processes} processes (target for 5,000 series: < 4096 MB)")

    if not args.no_baseline:  # baseline on the subset, extrapolated per series
        base_s, n = naive_loop(subset, args.horizon)
        base_rate = n / base_s
        print(f"baseline naive loop ({n} series measured): {base_s / n * 1000:.0f} ms/series"
              f" -> {base_rate:.2f} series/s; extrapolated to {args.series} series: "
              f"{args.series / base_rate:.0f} s")
        print(f"speed-up ours/baseline: {ours_rate / base_rate:.1f}x (target >= 5x)")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"peak RSS: this process {_mb(me):.0f} MB, largest worker {_mb(kids):.0f} MB")


if __name__ == "__main__":
    main()

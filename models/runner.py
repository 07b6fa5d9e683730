"""Fit and forecast many series in parallel: serially, in local processes or on Dask.

Workers receive frames (chunks of whole series) and plain parameters, never sessions or
connections, and return plain results. The ``local`` engine uses joblib's reusable loky
executor: worker processes (and their imports of pandas, Prophet, the calendar, which is
cached per process) survive from one chunk and one call to the next. Each series draws from
its own seed (base seed + id), so every engine and chunking gives the same numbers.
Processes, never threads (the work holds the GIL) and never ``fork`` (cmdstanpy + fork can
hang, FIELD-NOTES): joblib's ``loky`` or a Dask cluster of worker processes.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from models.forecast import ProphetForecaster
from models.types import DAILY_COLUMNS, FAILURE_COLUMNS, FLAG_COLUMNS, ForecastOutput

__all__ = ["RunResult", "BacktestSpec", "run_forecasts", "Engine"]

Engine = Literal["serial", "local", "dask"]
_MAX_CHUNK = 25


@dataclass(frozen=True)
class BacktestSpec:
    """Rolling-origin backtest run beside the fits, on the same workers (for learning the
    run's decision thresholds, :mod:`models.decision`).

    Each series is fitted again at every origin (warm-started from its main fit, which
    changes the optimiser's starting point, not the optimum), with data up to the origin
    only, and forecast ``horizon_weeks``; weekly ``P(spike)`` and the actual windows come
    from :func:`models.backtest.backtest` with the same definitions as the run.
    """

    origins: tuple[pd.Timestamp, ...]
    horizon_weeks: int
    lead_days: int = 14
    min_spike_count: float = 5.0
    #: ``(unique_id, origin)`` pairs whose backtest the caller already has (e.g. stored by an
    #: earlier run): not fitted again, and absent from the result
    skip: frozenset[tuple[str, pd.Timestamp]] = frozenset()


@dataclass
class RunResult:
    """What :func:`run_forecasts` returns.

    Attributes
    ----------
    output : the concatenated :class:`ForecastOutput` (sorted by ``unique_id``).
    model_json : ``{unique_id: json}`` for the series fitted by Prophet
        (:meth:`ProphetForecaster.to_json`; fallbacks and failures have none).
    fit_seconds : wall seconds of ``fit`` per series.
    wall_seconds : wall time of the whole run.
    backtest_weekly, backtest_actual : with a :class:`BacktestSpec`, the backtest's weekly
        frame (``cutoff, unique_id, week, expected, p_spike, threshold, y, spike``) and its
        actual windows (``cutoff, unique_id, start, end, eligible``); empty otherwise.
    backtest_seconds : wall seconds of the backtest fits per series (summed over origins),
        for the series backtested without a failure (those skipped by ``skip`` or failed
        are absent).
    """

    output: ForecastOutput
    model_json: dict[str, str] = field(default_factory=dict)
    fit_seconds: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0
    backtest_weekly: pd.DataFrame = field(default_factory=pd.DataFrame)
    backtest_actual: pd.DataFrame = field(default_factory=pd.DataFrame)
    backtest_seconds: dict[str, float] = field(default_factory=dict)


_Backtest = tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]
_ChunkResult = tuple[int, ForecastOutput, dict[str, str], dict[str, float], _Backtest | None]
_BT_WEEKLY = ["cutoff", "unique_id", "week", "expected", "p_spike", "threshold", "y", "spike"]
_BT_ACTUAL = ["cutoff", "unique_id", "start", "end", "eligible"]


def _chunk_backtest(frame: pd.DataFrame, params: Mapping[str, Any], est: ProphetForecaster,
                    spec: BacktestSpec) -> _Backtest:
    """The decision backtest of one chunk, warm-started from the chunk's main fits: each
    origin fits the chunk's series that ``spec.skip`` does not list. ``timer`` names the
    series backtested without a failure (seconds per series, summed over origins)."""
    from models.backtest import backtest

    warm = {uid: est.params_(uid) for uid in est.models_}
    timer: dict[str, float] = {}
    failed: set[str] = set()
    weekly: list[pd.DataFrame] = []
    actual: list[pd.DataFrame] = []
    uid_col = frame["unique_id"].astype(str)
    # the service's frame is zero-filled over each series' coverage: its last day is the end
    ends = {str(u): pd.Timestamp(d) for u, d in
            pd.to_datetime(frame["ds"]).groupby(uid_col).max().items()}
    for origin in spec.origins:
        todo = [u for u in sorted(uid_col.unique()) if (u, pd.Timestamp(origin)) not in spec.skip]
        if not todo:
            continue
        t0 = time.perf_counter()
        res = backtest(frame[uid_col.isin(todo)],
                       ProphetForecaster(**{**params, "warm_start_params": warm}),
                       origins=[origin], horizon_weeks=spec.horizon_weeks,
                       lead_days=spec.lead_days, min_spike_count=spec.min_spike_count,
                       ends=ends)
        for uid in todo:
            timer[uid] = timer.get(uid, 0.0) + (time.perf_counter() - t0) / len(todo)
        failed.update(res.failures["unique_id"].astype(str))
        weekly.append(res.weekly.reindex(columns=_BT_WEEKLY))
        actual.append(res.windows[res.windows["kind"] == "actual"].reindex(columns=_BT_ACTUAL))
    return (_cat(weekly, _BT_WEEKLY), _cat(actual, _BT_ACTUAL).reset_index(drop=True),
            {u: t for u, t in timer.items() if u not in failed})


def _run_chunk(
    index: int,
    frame: pd.DataFrame,
    horizon: int,
    params: Mapping[str, Any],
    init: Mapping[str, Mapping[str, Any]] | None,
    return_json: bool,
    spec: BacktestSpec | None = None,
) -> _ChunkResult:
    """Fit + predict one chunk (and its decision backtest); an unexpected error turns every
    series into a failure (a failed backtest only leaves the chunk out of the backtest)."""
    uids = sorted(frame["unique_id"].astype(str).unique())
    try:
        est = ProphetForecaster(**params).fit(frame, init=init)
        out = est.predict(horizon)
        jsons = {uid: est.to_json(uid) for uid in est.models_} if return_json else {}
    except Exception as exc:
        failures = pd.DataFrame({"unique_id": uids, "error": f"{type(exc).__name__}: {exc}"})
        out = ForecastOutput(daily=pd.DataFrame(columns=DAILY_COLUMNS),
                             weekly_samples=pd.DataFrame(), failures=failures)
        return index, out, {}, {}, None
    bt = None
    if spec is not None and spec.origins:
        try:
            bt = _chunk_backtest(frame, params, est, spec)
        except Exception:  # the thresholds are then learned from the other chunks
            bt = None
    return index, out, jsons, dict(est.fit_seconds_), bt


def _chunks(frame: pd.DataFrame, chunk_size: int) -> list[pd.DataFrame]:
    """Whole series, ``chunk_size`` ids per chunk in sorted id order: one stable sort and
    positional slices (linear in rows, no per-chunk scan of the frame)."""
    key = frame["unique_id"].astype(str).to_numpy()
    order = np.argsort(key, kind="stable")
    keys = key[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])  # first row of each id
    bounds = np.r_[starts[::chunk_size], len(keys)]
    return [frame.iloc[order[a:b]].reset_index(drop=True)
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _n_workers(n_jobs: int) -> int:
    cpus = os.cpu_count() or 1
    return max(1, cpus + 1 + n_jobs if n_jobs < 0 else n_jobs)


def run_forecasts(
    frame: pd.DataFrame,
    *,
    horizon: int,
    params: Mapping[str, Any] | None = None,
    engine: Engine = "local",
    n_jobs: int = -1,
    dask_address: str | None = None,
    chunk_size: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    init: Mapping[str, Mapping[str, Any]] | None = None,
    return_json: bool = True,
    backtest: BacktestSpec | None = None,
) -> RunResult:
    """Fit a :class:`ProphetForecaster` per series and forecast ``horizon`` days.

    Parameters
    ----------
    frame : long daily frame ``unique_id, ds, y``.
    horizon : days to forecast after each series' last day.
    params : :class:`ProphetForecaster` parameters (defaults otherwise).
    engine : ``"serial"`` (this process), ``"local"`` (joblib loky processes) or ``"dask"``
        (``distributed.Client`` on ``dask_address``, or a temporary ``LocalCluster`` of
        ``n_jobs`` worker processes when no address is given).
    n_jobs : worker processes for ``local`` and a temporary Dask cluster; -1 = all cores.
    chunk_size : series per task; default ``ceil(n_series / (4 * workers))`` capped at 25
        (enough tasks to balance two processes, few enough that the per-task overhead --
        pickling a chunk, building the calendar once per worker -- stays small).
    on_progress : called as ``on_progress(done_series, total_series)`` after each chunk.
    init : ``{unique_id: params}`` warm-start parameters (from ``ProphetForecaster.params_``).
    return_json : include the Prophet JSON of each fitted series in ``model_json``.
    backtest : also run this rolling-origin backtest on every chunk, after its fits.

    Returns
    -------
    RunResult
        Results do not depend on ``engine`` or ``chunk_size`` (per-series seeds).
    """
    t0 = time.perf_counter()
    params = dict(params or {})
    workers = _n_workers(n_jobs)
    n_series = int(frame["unique_id"].nunique())
    if chunk_size is None:
        chunk_size = max(1, min(_MAX_CHUNK, math.ceil(n_series / (4 * workers))))
    chunks = _chunks(frame, int(chunk_size)) if n_series else []
    total, done = n_series, 0
    inits = [_init_for(c, init) for c in chunks]
    results: list[_ChunkResult] = []

    def collect(items: Iterable[_ChunkResult]) -> None:
        nonlocal done
        for item in items:
            results.append(item)
            done += int(chunks[item[0]]["unique_id"].nunique())
            if on_progress is not None:
                on_progress(done, total)

    if engine == "serial" or not chunks:
        collect(_run_chunk(i, c, horizon, params, inits[i], return_json, backtest)
                for i, c in enumerate(chunks))
    elif engine == "local":
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=min(workers, len(chunks)), backend="loky",
                            return_as="generator_unordered")
        collect(parallel(delayed(_run_chunk)(i, c, horizon, params, inits[i], return_json,
                                             backtest) for i, c in enumerate(chunks)))
    elif engine == "dask":
        collect(_dask_map(chunks, inits, horizon, params, return_json, backtest,
                          address=dask_address, workers=workers))
    else:
        raise ValueError(f"engine must be 'serial', 'local' or 'dask', not {engine!r}")
    return _merge(results, time.perf_counter() - t0)


def _init_for(
    chunk: pd.DataFrame, init: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, Mapping[str, Any]] | None:
    if not init:
        return None
    uids = set(chunk["unique_id"].astype(str))
    return {k: v for k, v in init.items() if k in uids} or None


def _dask_map(
    chunks: list[pd.DataFrame],
    inits: list[dict[str, Mapping[str, Any]] | None],
    horizon: int,
    params: Mapping[str, Any],
    return_json: bool,
    spec: BacktestSpec | None,
    *,
    address: str | None,
    workers: int,
) -> Iterator[_ChunkResult]:
    import distributed

    dist: Any = distributed  # untyped library
    cluster = None
    if address:
        client = dist.Client(address)
    else:
        cluster = dist.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                    dashboard_address=None)
        client = dist.Client(cluster)
    try:
        futures = [
            client.submit(_run_chunk, i, c, horizon, dict(params), inits[i], return_json,
                          spec, pure=False)
            for i, c in enumerate(chunks)
        ]
        for fut in dist.as_completed(futures):
            result: _ChunkResult = fut.result()
            yield result
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _merge(results: list[_ChunkResult], wall: float) -> RunResult:
    results = sorted(results, key=lambda r: r[0])
    outs = [r[1] for r in results]
    daily = _cat([o.daily for o in outs], DAILY_COLUMNS)
    if len(daily):
        daily = daily.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
    weekly_parts = [o.weekly_samples for o in outs if len(o.weekly_samples)]
    weekly = (pd.concat(weekly_parts).sort_index(kind="stable") if weekly_parts
              else outs[0].weekly_samples if outs else pd.DataFrame())
    flags = _cat([o.flags for o in outs], FLAG_COLUMNS)
    failures = _cat([o.failures for o in outs], FAILURE_COLUMNS)
    model_json: dict[str, str] = {}
    fit_seconds: dict[str, float] = {}
    bt_weekly: list[pd.DataFrame] = []
    bt_actual: list[pd.DataFrame] = []
    bt_seconds: dict[str, float] = {}
    for r in results:
        model_json.update(r[2])
        fit_seconds.update(r[3])
        if r[4] is not None:
            bt_weekly.append(r[4][0])
            bt_actual.append(r[4][1])
            bt_seconds.update(r[4][2])
    output = ForecastOutput(
        daily=daily,
        weekly_samples=weekly,
        flags=flags.sort_values(["unique_id"], kind="stable").reset_index(drop=True),
        failures=failures.sort_values(["unique_id"], kind="stable").reset_index(drop=True),
    )
    return RunResult(output=output, model_json=dict(sorted(model_json.items())),
                     fit_seconds=dict(sorted(fit_seconds.items())), wall_seconds=wall,
                     backtest_weekly=_cat(bt_weekly, _BT_WEEKLY),
                     backtest_actual=_cat(bt_actual, _BT_ACTUAL),
                     backtest_seconds=dict(sorted(bt_seconds.items())))


def _cat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return pd.concat(frames, ignore_index=True)[columns]

"""Forecast runs: record, execute (through ``models.runner``), store, and query results.

One module per concern, the public names re-exported here:

* ``runs`` -- :func:`create_run` records a queued run, :func:`execute_run` runs it (the
  daily frame cut at the run's ``train_until``, fits and the decision backtest through
  ``models.runner``, peak windows at the decided thresholds),
  :func:`recover_interrupted_runs` fails the runs a dead process left behind;
* ``storing`` -- writes a finished run's points, weeks, peaks, issues and fitted models in
  one transaction and finishes the run row;
* ``queries`` -- the newest finished run, a run by id, one series' forecast, peak windows;
* ``executor`` -- :class:`RunExecutor`, the API process's background runner;
* ``decisions`` -- a run's decision thresholds, learned from backtests before its cut-off or
  pinned, and their public form (imported from the module itself).

Workers get frames, never sessions.
"""

from __future__ import annotations

from service.forecasting.executor import RunExecutor
from service.forecasting.queries import (
    FINISHED,
    get_run,
    latest_run,
    list_peaks,
    peaks_query,
    series_forecast,
)
from service.forecasting.runs import QUEUE_STALE, create_run, execute_run, recover_interrupted_runs

__all__ = [
    "create_run",
    "execute_run",
    "recover_interrupted_runs",
    "latest_run",
    "get_run",
    "series_forecast",
    "list_peaks",
    "peaks_query",
    "FINISHED",
    "QUEUE_STALE",
    "RunExecutor",
]

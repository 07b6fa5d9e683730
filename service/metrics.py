"""Prometheus metrics of the process (prometheus-client's default registry).

Counters and histograms are updated where things happen; gauges that describe the database
(campaigns by status, outbox depth, lease holder) are filled at scrape time by collectors
registered with :func:`register_db_gauges`.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = [
    "HTTP_REQUESTS",
    "HTTP_LATENCY",
    "FORECAST_RUNS",
    "SERIES_FIT_SECONDS",
    "PEAKS_FOUND",
    "IMPORT_ROWS",
]

HTTP_REQUESTS = Counter("forewarn_http_requests_total", "HTTP requests by route and status",
                        ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "forewarn_http_request_duration_seconds", "HTTP request latency by route",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
FORECAST_RUNS = Counter("forewarn_forecast_runs_total", "Forecast runs by outcome", ["status"])
SERIES_FIT_SECONDS = Histogram(
    "forewarn_series_fit_seconds", "Wall time of one series' fit",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4),
)
PEAKS_FOUND = Counter("forewarn_peaks_found_total", "Predicted peak windows stored")
IMPORT_ROWS = Counter("forewarn_import_rows_total", "Imported rows by outcome",
                      ["kind", "outcome"])

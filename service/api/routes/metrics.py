"""Prometheus exposition at ``/metrics`` (needs a key with the ``read`` scope).

The process's counters and histograms (default registry) followed by the database gauges of
:mod:`service.api.db_metrics`, computed at scrape time in the thread pool.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from service.api.db_metrics import db_registry
from service.api.deps import require
from service.api.problems import PROBLEM_RESPONSES

__all__ = ["router"]

_EXAMPLE = """\
# HELP forewarn_http_requests_total HTTP requests by route and status
# TYPE forewarn_http_requests_total counter
forewarn_http_requests_total{method="GET",route="/v1/peaks",status="200"} 1542.0
# HELP forewarn_outbox_rows Outbox rows (deliveries) by status / outcome
# TYPE forewarn_outbox_rows gauge
forewarn_outbox_rows{status="pending"} 12.0
"""

router = APIRouter(tags=["observability"], responses=PROBLEM_RESPONSES)


@router.get("/metrics", summary="Prometheus metrics",
            dependencies=[Depends(require("read"))],
            responses={200: {"content": {CONTENT_TYPE_LATEST: {
                "schema": {"type": "string"}, "example": _EXAMPLE}},
                             "description": "Prometheus text exposition format"}},
            response_class=Response)
def metrics(request: Request) -> Response:
    """The process's request counters and latency histograms, then database gauges computed
    at scrape time (runs and campaigns by status, outbox depth and lag, scheduler leader).
    Needs the ``read`` scope."""
    body = generate_latest(REGISTRY) + generate_latest(db_registry(request.app.state))
    return Response(body, media_type=CONTENT_TYPE_LATEST)

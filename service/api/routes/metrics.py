"""Prometheus exposition at ``/metrics`` (needs a key with the ``read`` scope)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.api.deps import require
from service.api.problems import PROBLEM_RESPONSES

router = APIRouter(tags=["observability"], responses=PROBLEM_RESPONSES)


@router.get("/metrics", summary="Prometheus metrics",
            dependencies=[Depends(require("read"))],
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}},
                             "description": "Prometheus text exposition format"}},
            response_class=Response)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

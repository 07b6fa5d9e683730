"""Lists operators need: import batches and forecast runs (newest first, filtered,
cursor-paginated). One batch or run in detail: ``/v1/import-batches/{id}``,
``/v1/forecast-runs/{id}``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from service.api import pagination
from service.api.deps import SessionDep, require
from service.api.problems import PROBLEM_RESPONSES
from service.api.schema_types import UtcDatetime
from service.store.base import as_utc
from service.store.pagination import keyset_page, where_given
from service.store.tables import ForecastRun, ImportBatch

__all__ = ["router", "ForecastRunBase"]

router = APIRouter(dependencies=[Depends(require("read"))], responses=PROBLEM_RESPONSES)
_Since = Annotated[dt.datetime | None, Query(
    description="Only those started (created) at or after this time (ISO 8601)")]


class ImportBatchItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    kind: Literal["complaints", "enforcement"]
    source: str | None
    filename: str | None
    status: Literal["queued", "running", "completed", "rejected", "failed"]
    received: int
    inserted: int
    duplicates: int
    rejected: int = Field(description="Rows refused; `GET /v1/import-batches/{id}/rejected` "
                                      "lists them")
    error: str | None
    started_at: UtcDatetime
    finished_at: UtcDatetime | None


class ImportBatchList(pagination.Page[ImportBatchItem]):
    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [{
        "id": "9b1e4c2a7d3f4e5a8c6b0d1e2f3a4b5c", "kind": "complaints", "source": "12345热线",
        "filename": "呼和浩特-2027-01.xlsx", "status": "completed", "received": 1250,
        "inserted": 1236, "duplicates": 11, "rejected": 3, "error": None,
        "started_at": "2027-02-01T01:02:03Z", "finished_at": "2027-02-01T01:02:09Z"}],
        "next_cursor": None}]})


class ForecastRunBase(BaseModel):
    """The fields of a forecast run every view shows (the list and ``GET /v1/forecasts/{id}``)."""

    id: str
    status: Literal["queued", "running", "succeeded", "partial", "failed"]
    engine: str
    train_until: dt.date | None
    horizon_days: int
    done: int
    total: int
    failed: int
    error: str | None
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None


class ForecastRunItem(ForecastRunBase):
    model_config = ConfigDict(from_attributes=True)
    requested_by: str | None


class ForecastRunList(pagination.Page[ForecastRunItem]):
    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [{
        "id": "7c4e2b9a1f3d4a6e8b0c2d4f6a8e1b3c", "status": "succeeded", "engine": "local",
        "train_until": "2026-11-22", "horizon_days": 182, "done": 412, "total": 414,
        "failed": 2, "error": None, "requested_by": "scheduler",
        "created_at": "2026-11-23T02:00:00Z", "started_at": "2026-11-23T02:00:01Z",
        "finished_at": "2026-11-23T02:31:43Z"}], "next_cursor": None}]})



@router.get("/import-batches", tags=["import"], summary="List import batches (newest first, "
            "filtered, cursor-paginated)", responses=pagination.PAGINATION_RESPONSES)
def get_import_batches(
    session: SessionDep,
    kind: Annotated[Literal["complaints", "enforcement"] | None, Query(
        description="Only this kind of record")] = None,
    status: Annotated[Literal["queued", "running", "completed", "rejected", "failed"] | None, Query(
        description="Only this status")] = None,
    source: Annotated[str | None, Query(max_length=100, description="Only this source")
                      ] = None,
    with_rejections: Annotated[bool, Query(
        description="Only batches that refused at least one row")] = False,
    since: _Since = None,
    limit: pagination.LimitQuery = pagination.DEFAULT_LIMIT, cursor: pagination.CursorQuery = None,
) -> ImportBatchList:
    """Every import with its counts (received, inserted, duplicates, rejected) and status,
    newest first. Needs the ``read`` scope."""
    b = ImportBatch
    stmt = where_given(select(b), (b.kind, "==", kind), (b.status, "==", status),
                       (b.source, "==", source),
                       (b.started_at, ">=", as_utc(since) if since else None))
    if with_rejections:
        stmt = stmt.where(b.rejected > 0)
    page, nxt = keyset_page(session, stmt, ((b.started_at, True), (b.id, True)),
                            types=(dt.datetime, str), cursor=cursor, limit=limit)
    return ImportBatchList(items=[ImportBatchItem.model_validate(r) for r in page],
                           next_cursor=nxt)


@router.get("/forecast-runs", tags=["forecasts"], summary="List forecast runs (newest first, "
            "filtered, cursor-paginated)", responses=pagination.PAGINATION_RESPONSES)
def get_forecast_runs(
    session: SessionDep,
    status: Annotated[Literal["queued", "running", "succeeded", "partial", "failed"] | None,
                      Query(description="Only this status")] = None,
    requested_by: Annotated[str | None, Query(
        max_length=100, description="Only runs requested by this key prefix, `cli` or "
                                    "`scheduler`")] = None,
    since: _Since = None,
    limit: pagination.LimitQuery = pagination.DEFAULT_LIMIT, cursor: pagination.CursorQuery = None,
) -> ForecastRunList:
    """Runs with their status, progress, data cut-off and timings, newest first. Needs the
    ``read`` scope."""
    r = ForecastRun
    stmt = where_given(select(r), (r.status, "==", status),
                       (r.requested_by, "==", requested_by),
                       (r.created_at, ">=", as_utc(since) if since else None))
    page, nxt = keyset_page(session, stmt, ((r.created_at, True), (r.id, True)),
                            types=(dt.datetime, str), cursor=cursor, limit=limit)
    return ForecastRunList(items=[ForecastRunItem.model_validate(x) for x in page],
                           next_cursor=nxt)

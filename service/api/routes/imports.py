"""Imports of complaints and enforcement actions; import batches and their rejected rows."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from service.api.deps import SessionDep, require
from service.api.import_docs import BATCH_EXAMPLE, IMPORT_RESPONSES, NOT_FOUND, REQUEST_BODY
from service.api.import_request import import_job, wants_background
from service.api.problems import PROBLEM_RESPONSES
from service.api.routes.series import forget_series_version
from service.errors import UnprocessableContent
from service.ingest.batches import BatchSummary, get_batch, iter_rejected
from service.ingest.jobs import ImportJob
from service.ingest.pipeline import queue_import, run_import

__all__ = ["router", "escape_cell"]

router = APIRouter(tags=["imports"], responses=PROBLEM_RESPONSES)

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(value: object) -> str:
    """A CSV cell that spreadsheets will not run as a formula (prefix ``'``)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _batch_summary(factory: Any, batch_id: str) -> BatchSummary:
    with factory() as session:
        return get_batch(session=session, batch_id=batch_id, max_errors=0)


async def _run(request: Request, response: Response, job: ImportJob, size: int) -> BatchSummary:
    """Run ``job`` now (201 / 422 when every row was rejected) or in the background (202)."""
    factory = request.app.state.sessionmaker
    if wants_background(request, size):
        executor = request.app.state.import_executor
        try:
            executor.reserve()
        except BaseException:
            for c in job.closers:
                c.close()
            raise
        try:
            batch = await run_in_threadpool(queue_import, factory, job)
        except BaseException:
            executor.release()
            for c in job.closers:
                c.close()
            raise
        # The answer shows the batch as it was accepted (queued): read before the worker may
        # take it, so a small import finishing at once cannot make a 202 say "completed".
        try:
            summary = await run_in_threadpool(_batch_summary, factory, batch.id)
        finally:
            executor.submit(batch, job)  # queued and reserved: it runs whatever the read did
        response.status_code = 202
        response.headers["Location"] = f"/v1/import-batches/{batch.id}"
        return summary
    summary = await run_in_threadpool(run_import, factory, job)
    if summary.status == "rejected":
        raise UnprocessableContent(
            f"every row of the file was rejected ({summary.rejected:,} rows); nothing was "
            f"imported; the reasons are in row_errors and at /v1/import-batches/"
            f"{summary.batch_id}/rejected",
            batch_id=summary.batch_id, received=summary.received, rejected=summary.rejected,
            row_errors=[e.model_dump() for e in summary.errors[:20]],
            rejected_url=f"/v1/import-batches/{summary.batch_id}/rejected")
    forget_series_version(request.app)  # the series listing shows the new records at once
    response.status_code = 201
    response.headers["Location"] = f"/v1/import-batches/{summary.batch_id}"
    return summary


async def _import(request: Request, kind: Literal["complaints", "enforcement"],
                  response: Response) -> BatchSummary:
    job, size = await import_job(request, kind)
    return await _run(request, response, job, size)


_import_deps = [Depends(require("import"))]


@router.post("/complaints/import", summary="Import complaints (file upload or JSON records)",
             status_code=201, responses=IMPORT_RESPONSES, openapi_extra={
                 "requestBody": REQUEST_BODY}, dependencies=_import_deps)
async def import_complaints(request: Request, response: Response) -> BatchSummary:
    """Import complaints (受理记录) from a file (multipart field ``file``: CSV in UTF-8,
    GB18030/GBK, Big5 or UTF-16, optionally gzipped, XLSX, JSON or JSON Lines), a JSON body of
    records or a JSON Lines body. Headers are matched to fields by alias (e.g. 受理时间) or
    ``mapping``. Rows already imported are counted as duplicates; invalid rows are rejected
    and listed, the rest imported (201). Every row rejected: 422 naming the stored batch. A
    file already imported: 409 unless ``force``. Uploads over imports.background_above_bytes
    (or with ``Prefer: respond-async``) run in the background: 202 and the batch URL to poll.
    Every file-level problem names the limit or the reason and the ``batch_id``; nothing of a
    failed file is stored. Needs the ``import`` scope; the body is limited to
    api.max_body_bytes."""
    return await _import(request, "complaints", response)


@router.post("/enforcement-actions/import",
             summary="Import enforcement actions (file upload or JSON records)",
             status_code=201, responses=IMPORT_RESPONSES, openapi_extra={
                 "requestBody": REQUEST_BODY}, dependencies=_import_deps)
async def import_enforcement(request: Request, response: Response) -> BatchSummary:
    """Import enforcement actions (violations found) in the same formats and with the same
    rules as complaints. Needs the ``import`` scope."""
    return await _import(request, "enforcement", response)


_read = [Depends(require("read"))]


@router.get("/import-batches/{batch_id}", summary="State and counts of an import batch",
            responses={200: {"description": "The batch", "content": {
                "application/json": {"example": BATCH_EXAMPLE}}}, **NOT_FOUND},
            dependencies=_read)
def get_import_batch(batch_id: Annotated[str, Path(description="Import batch id")],
                     session: SessionDep) -> BatchSummary:
    """The batch's status (queued, running, completed, rejected, failed), counts, warnings,
    progress while it runs (rows and bytes read) and first row errors. Needs the ``read``
    scope."""
    return get_batch(session=session, batch_id=batch_id)


def _csv_lines(request: Request, batch_id: str) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    header_done = False
    yield "\ufeff"
    for columns, rows in iter_rejected(session_factory=request.app.state.sessionmaker,
                                       batch_id=batch_id):
        if not header_done:
            writer.writerow([escape_cell(c) for c in
                             ("row", "field", "problem", "detail", *columns)])
            header_done = True
        for r in rows:
            raw: dict[str, Any] = r["raw"]
            writer.writerow([r["row"], escape_cell(r["field"]), escape_cell(r["problem"]),
                             escape_cell(r["detail"]),
                             *(escape_cell(raw.get(c)) for c in columns)])
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    if not header_done:
        writer.writerow(["row", "field", "problem", "detail"])
        yield buf.getvalue()


@router.get(
    "/import-batches/{batch_id}/rejected",
    summary="Rejected rows of an import batch as CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}, "example": (
                         "\ufeffrow,field,problem,detail,received_at,category,region\r\n"
                         "418,received_at,invalid_date,'2027-02-30 09:12' is not a date,"
                         "2027-02-30 09:12,烟花爆竹,呼和浩特市\r\n")}},
                     "description": "UTF-8 CSV (with BOM): row, field, problem, detail and the "
                                    "row's non-personal columns, redacted; cells that a "
                                    "spreadsheet would run as a formula start with '"},
               **NOT_FOUND},
    dependencies=_read,
)
def get_rejected_rows(batch_id: Annotated[str, Path(description="Import batch id")],
                      request: Request, session: SessionDep) -> StreamingResponse:
    """Every rejected row with the reason, streamed as a CSV download to fix and re-import.
    Personal columns are left out and cells are escaped against formula injection. Needs
    the ``read`` scope."""
    get_batch(session=session, batch_id=batch_id, max_errors=0)  # 404 before streaming
    return StreamingResponse(
        _csv_lines(request, batch_id), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="rejected-{batch_id}.csv"'},
    )


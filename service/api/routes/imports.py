"""Imports of complaints and enforcement actions; import batches and their rejected rows."""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import AsyncGenerator, Iterator
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from service.api.deps import SessionDep, require
from service.api.problems import PROBLEM_RESPONSES, problem_doc
from service.api.routes.series import forget_series_version
from service.errors import (
    PROBLEM_JSON,
    BadRequest,
    PayloadTooLarge,
    UnprocessableContent,
    UnsupportedMediaType,
)
from service.ingest.limits import ImportLimits
from service.ingest.pipeline import (
    BatchSummary,
    ImportJob,
    declared_coverage,
    file_job,
    get_batch,
    iter_rejected,
    queue_import,
    records_job,
    run_import,
)
from service.ingest.readers import check_encoding_name
from service.ingest.timestamps import DATE_ORDERS
from service.store.base import as_utc

__all__ = ["router", "escape_cell"]

router = APIRouter(tags=["imports"], responses=PROBLEM_RESPONSES)


def _problem_doc(description: str, status: int) -> dict[str, Any]:
    return problem_doc(description, status)


_BATCH_EXAMPLE: dict[str, Any] = {
    "batch_id": "9b1e4c2a7d3f4e5a8c6b0d1e2f3a4b5c", "kind": "complaints", "status": "completed",
    "received": 1250, "inserted": 1236, "duplicates": 11, "rejected": 3,
    "errors": [{"row": 418, "field": "received_at", "problem": "invalid_date",
                "detail": "'2027-02-30 09:12' is not a date"}],
    "errors_truncated": False, "source": "12345热线", "filename": "呼和浩特-2027-01.xlsx",
    "format": "xlsx", "encoding": None, "registered_categories": [],
    "registered_regions": [], "error": None,
    "started_at": "2027-02-01T01:02:03Z", "finished_at": "2027-02-01T01:02:09Z",
}

_QUEUED_EXAMPLE: dict[str, Any] = {
    **_BATCH_EXAMPLE, "status": "queued", "received": 0, "inserted": 0, "duplicates": 0,
    "rejected": 0, "errors": [], "format": None, "finished_at": None,
    "progress": {"rows": 0, "rejected": 0, "bytes_read": 0, "bytes_total": 52428800,
                 "phase": None}}


def _problem(status: int, title: str, detail: str, description: str,
             **ext: Any) -> dict[str, Any]:
    doc = problem_doc(description)
    doc["content"][PROBLEM_JSON]["example"] = {
        "type": "about:blank", "title": title, "status": status, "detail": detail,
        "instance": "/v1/complaints/import", **ext}
    return doc


_IMPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    201: {"description": "The batch was imported (see the counts; rejected rows are listed; "
                         "a file with no data rows has a warning)",
          "content": {"application/json": {"example": _BATCH_EXAMPLE}},
          "headers": {"Location": {"description": "URL of the import batch",
                                   "schema": {"type": "string"}}}},
    202: {"description": "A large upload (over imports.background_above_bytes) or a request "
                         "with `Prefer: respond-async` is queued: poll the Location for "
                         "progress and the outcome",
          "content": {"application/json": {"example": _QUEUED_EXAMPLE}},
          "headers": {"Location": {"description": "URL of the import batch",
                                   "schema": {"type": "string"}}}},
    400: _problem_doc("Malformed multipart body, mapping, form field, date_order or encoding",
                      400),
    409: _problem(409, "Conflict", "this file was already imported as batch "
                  "9b1e4c2a7d3f4e5a8c6b0d1e2f3a4b5c (2027-02-01 01:02 UTC, source 12345热线, "
                  "1,236 records inserted); nothing was imported; to import it again anyway "
                  "use --force (API: force=true)",
                  "The same file (same bytes, same kind) was imported before: "
                  "`existing_batch_id` names that batch, `batch_id` the refused one; send "
                  "force=true to import it anyway",
                  batch_id="0c4d2e6f8a1b3c5d7e9f0a2b4c6d8e1f",
                  existing_batch_id="9b1e4c2a7d3f4e5a8c6b0d1e2f3a4b5c"),
    413: _problem(413, "Content Too Large", "the file has more than 10,000,000 rows "
                  "(imports.max_rows); nothing of it was published; split the file",
                  "The upload is larger than api.max_body_bytes, or the file crosses an "
                  "import limit (decompressed bytes, compression ratio, line length, rows, "
                  "columns): `limit` names the setting; nothing is stored",
                  limit="imports.max_rows", limit_value=10_000_000,
                  batch_id="0c4d2e6f8a1b3c5d7e9f0a2b4c6d8e1f"),
    415: _problem_doc("Neither multipart/form-data nor application/json, or a file that is "
                      "not CSV, CSV.gz, XLSX, JSON or JSON Lines (the detail says what it "
                      "looks like)", 415),
    422: _problem(422, "Unprocessable Content", "every row of the file was rejected (3 rows); "
                  "nothing was imported; the reasons are in row_errors and at "
                  "/v1/import-batches/0c4d2e6f8a1b3c5d7e9f0a2b4c6d8e1f/rejected",
                  "The file cannot be imported: every row was rejected (`row_errors`), it "
                  "cannot be read (encoding with line and byte offset, broken gzip, missing "
                  "columns, ambiguous day/month dates), a record falls outside the declared "
                  "coverage, or it ran out of imports.max_seconds; `batch_id` names the "
                  "stored, failed or rejected batch",
                  batch_id="0c4d2e6f8a1b3c5d7e9f0a2b4c6d8e1f", received=3, rejected=3,
                  row_errors=[{"row": 1, "field": "category", "problem": "unknown_category",
                               "detail": "'Garbage in alley' is not a known category (code, "
                                         "name or alias); import with register_new to add it"}],
                  rejected_url="/v1/import-batches/0c4d2e6f8a1b3c5d7e9f0a2b4c6d8e1f/rejected"),
    503: {**_problem(503, "Service Unavailable", "the database is busy with another import; "
                     "nothing of this one was published; retry in a minute",
                     "The database is busy publishing another import, or the background "
                     "queue is full (imports.max_queued): retry after `Retry-After` seconds"),
          "headers": {"Retry-After": {"description": "Seconds to wait",
                                      "schema": {"type": "integer"}}}},
}

_RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": True,
    "description": "One record; keys are canonical field names or any header alias "
                   "(e.g. 受理时间, 问题类别, 所属地区).",
}
_REGISTER_NEW = ("Add unknown category and region codes to the reference data instead of "
                 "rejecting their rows")
_FORCE = ("Import a file whose bytes were imported before (refused with 409 otherwise), and "
          "records already stored under another source")
_DATE_ORDER = ("How dates with the year last (01/02/2013) are read: dmy, mdy, or ymd (not "
               "accepted); by default the file decides (a day above 12) and a file where "
               "every such date is ambiguous is refused")
_COVERAGE = ("Days the import's sources cover, FROM..TO (ISO dates, both included), e.g. "
             "2014-01-01..2014-12-31; every record must fall inside (otherwise 422 naming "
             "the data row). Default: each source covers its first to last record day")
_ENCODING = ("Text encoding of the file (default: detected among UTF-8, UTF-16 with BOM, "
             "GB18030/GBK and Big5)")
_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary",
                             "description": "CSV (UTF-8/GB18030, optionally .gz), XLSX, JSON "
                                            "array or JSON Lines"},
                    "source": {"type": "string",
                               "description": "Source of rows without a source column"},
                    "register_new": {"type": "boolean", "default": False,
                                     "description": _REGISTER_NEW},
                    "mapping": {"type": "string",
                                "description": 'JSON object field -> column, e.g. '
                                               '{"received_at": "受理日期"}'},
                    "force": {"type": "boolean", "default": False, "description": _FORCE},
                    "coverage": {"type": "string", "description": _COVERAGE,
                                 "pattern": r"^\d{4}-\d{2}-\d{2}\.\.\d{4}-\d{2}-\d{2}$"},
                    "date_order": {"type": "string", "enum": ["dmy", "mdy", "ymd"],
                                   "description": _DATE_ORDER},
                    "encoding": {"type": "string", "description": _ENCODING},
                },
            }
        },
        "application/x-ndjson": {
            "schema": {"type": "string",
                       "description": "JSON Lines, one record per line; source, register_new, "
                                      "mapping, force, date_order, encoding and coverage go "
                                      "in the query string"},
        },
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["records"],
                "properties": {
                    "records": {"type": "array", "items": _RECORD_SCHEMA,
                                "description": "The records to import"},
                    "source": {"type": "string",
                               "description": "Source of records without a source field"},
                    "register_new": {"type": "boolean", "default": False,
                                     "description": _REGISTER_NEW},
                    "mapping": {"type": "object", "additionalProperties": {"type": "string"},
                                "description": "Field -> key of the records, e.g. "
                                               '{"received_at": "受理日期"}'},
                    "force": {"type": "boolean", "default": False, "description": _FORCE},
                    "coverage": {"type": "string", "description": _COVERAGE,
                                 "pattern": r"^\d{4}-\d{2}-\d{2}\.\.\d{4}-\d{2}-\d{2}$"},
                    "date_order": {"type": "string", "enum": ["dmy", "mdy", "ymd"],
                                   "description": _DATE_ORDER},
                },
            }
        },
    },
}

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(value: object) -> str:
    """A CSV cell that spreadsheets will not run as a formula (prefix ``'``)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


async def _limited(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(f"the request body exceeds {limit} bytes")
        yield chunk


def _check_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"the request body ({declared} bytes) exceeds the maximum of {limit} bytes"
        )


def _flag(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value or "").strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise BadRequest(f"{name} must be true or false, not '{value}'")


def _mapping(value: object) -> dict[str, str] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"mapping is not valid JSON: {exc}") from exc
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise BadRequest('mapping must be a JSON object of field -> column, e.g. '
                         '{"received_at": "受理日期"}')
    return dict(value)


def _text(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    return value.strip() or None


def _source(value: object) -> str | None:
    return _text(value, "source")


def _date_order(value: object) -> str | None:
    order = _text(value, "date_order")
    if order is not None and order not in DATE_ORDERS:
        raise BadRequest(f"date_order must be one of {', '.join(DATE_ORDERS)}, not '{order}'")
    return order


def _encoding(value: object) -> str | None:
    name = _text(value, "encoding")
    return check_encoding_name(name) if name is not None else None


def _options(get: Any, settings: Any, kind: str) -> dict[str, Any]:
    """The import options of a request (form fields, query string or JSON keys)."""
    return {"kind": kind, "source": _source(get("source")), "mapping": _mapping(get("mapping")),
            "register_new": _flag(get("register_new"), "register_new"),
            "force": _flag(get("force"), "force"), "date_order": _date_order(get("date_order")),
            "chunk_rows": settings.import_chunk_rows, "tz": settings.timezone,
            "limits": ImportLimits.from_settings(settings.imports),
            "coverage": declared_coverage(_text(get("coverage"), "coverage"))}


def _wants_background(request: Request, size: int) -> bool:
    prefer = request.headers.get("prefer", "").lower()
    return "respond-async" in prefer or size > request.app.state.settings.imports \
        .background_above_bytes


def _size(stream: Any) -> int:
    pos = stream.tell()
    end = int(stream.seek(0, io.SEEK_END))
    stream.seek(pos)
    return end


async def _spool(request: Request, limit: int) -> Any:
    """The request body in a temporary file (in memory up to 8 MB)."""
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
    try:
        async for chunk in _limited(request, limit):
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


async def _run(request: Request, response: Response, job: ImportJob, size: int) -> BatchSummary:
    """Run ``job`` now (201 / 422 when every row was rejected) or in the background (202)."""
    factory = request.app.state.sessionmaker
    if _wants_background(request, size):
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
        executor.submit(batch, job)
        with factory() as session:
            summary = get_batch(session=session, batch_id=batch.id, max_errors=0)
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
    settings = request.app.state.settings
    limit = settings.api.max_body_bytes
    _check_length(request, limit)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        parser = MultiPartParser(request.headers, _limited(request, limit), max_files=1,
                                 max_fields=10)
        try:
            form = await parser.parse()
        except MultiPartException as exc:
            raise BadRequest(f"malformed multipart body: {exc.message}") from exc
        upload = form.get("file")
        try:
            if not isinstance(upload, UploadFile):
                raise BadRequest("the multipart body needs a file in the field 'file'")
            options = _options(form.get, settings, kind)
            encoding = _encoding(form.get("encoding"))
            size = _size(upload.file)
            job = await run_in_threadpool(
                lambda: file_job(path=upload.file, filename=upload.filename,
                                 encoding=encoding, **options))
            job.closers.append(upload.file)  # the job owns the upload from here on
        except BaseException:
            await form.close()
            raise
        return await _run(request, response, job, size)
    if ctype in ("application/x-ndjson", "application/jsonl"):
        options = _options(request.query_params.get, settings, kind)
        encoding = _encoding(request.query_params.get("encoding"))
        spool = await _spool(request, limit)
        try:
            job = await run_in_threadpool(
                lambda: file_job(path=spool, filename="body.jsonl", encoding=encoding,
                                 **options))
        except BaseException:
            spool.close()
            raise
        job.closers.append(spool)
        return await _run(request, response, job, _size(spool))
    if ctype == "application/json" or ctype.endswith("+json"):
        json_limit = min(limit, settings.imports.max_json_body_bytes)
        _check_length(request, json_limit)
        body = bytearray()
        try:
            async for chunk in _limited(request, json_limit):
                body.extend(chunk)
        except PayloadTooLarge as exc:
            raise PayloadTooLarge(
                f"{exc.detail} (imports.max_json_body_bytes: records in a JSON body are held "
                "in memory); upload the records as a file (multipart) or JSON Lines instead",
                limit="imports.max_json_body_bytes", limit_value=json_limit) from exc
        try:
            doc = orjson.loads(bytes(body))
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from exc
        if isinstance(doc, list):
            doc = {"records": doc}
        if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
            raise BadRequest('the JSON body must be {"records": [...], "source": ..., '
                             '"register_new": false}')
        options = _options(doc.get, settings, kind)
        job = records_job(records=doc["records"], **options)
        return await _run(request, response, job, len(body))
    raise UnsupportedMediaType(
        "send multipart/form-data (field 'file'), application/json or application/x-ndjson,"
        f" not '{ctype or '-'}'"
    )


_import_deps = [Depends(require("import"))]


@router.post("/complaints/import", summary="Import complaints (file upload or JSON records)",
             status_code=201, responses=_IMPORT_RESPONSES, openapi_extra={
                 "requestBody": _REQUEST_BODY}, dependencies=_import_deps)
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
             status_code=201, responses=_IMPORT_RESPONSES, openapi_extra={
                 "requestBody": _REQUEST_BODY}, dependencies=_import_deps)
async def import_enforcement(request: Request, response: Response) -> BatchSummary:
    """Import enforcement actions (violations found) in the same formats and with the same
    rules as complaints. Needs the ``import`` scope."""
    return await _import(request, "enforcement", response)


_read = [Depends(require("read"))]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _problem_doc("No such import batch", 404)}


@router.get("/import-batches/{batch_id}", summary="State and counts of an import batch",
            responses={200: {"description": "The batch", "content": {
                "application/json": {"example": _BATCH_EXAMPLE}}}, **_NOT_FOUND},
            dependencies=_read)
def get_import_batch(batch_id: Annotated[str, Path(description="Import batch id")],
                     session: SessionDep) -> BatchSummary:
    """The batch's status (queued, running, completed, rejected, failed), counts, warnings,
    progress while it runs (rows and bytes read) and first row errors. Needs the ``read``
    scope."""
    summary = get_batch(session=session, batch_id=batch_id)
    # SQLite returns naive UTC datetimes; the document promises RFC 3339 date-times
    return summary.model_copy(update={"started_at": as_utc(summary.started_at),
                                      "finished_at": as_utc(summary.finished_at)})


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
               **_NOT_FOUND},
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


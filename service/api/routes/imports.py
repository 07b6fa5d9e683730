"""Imports of complaints and enforcement actions; import batches and their rejected rows."""

from __future__ import annotations

import csv
import io
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
from service.dispatch.outbox import aware
from service.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from service.ingest.pipeline import (
    BatchSummary,
    get_batch,
    import_file,
    import_records,
    iter_rejected,
)

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

_IMPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    201: {"description": "The batch was imported (see the counts; rejected rows are listed)",
          "content": {"application/json": {"example": _BATCH_EXAMPLE}},
          "headers": {"Location": {"description": "URL of the import batch",
                                   "schema": {"type": "string"}}}},
    400: _problem_doc("Malformed multipart body, mapping or form field", 400),
    413: _problem_doc("The upload is larger than the configured maximum (api.max_body_bytes)",
                      413),
    415: _problem_doc("Neither multipart/form-data nor application/json, or a file format "
                      "that is not CSV, CSV.gz, XLSX, JSON or JSON Lines", 415),
    422: _problem_doc("The file cannot be parsed at all (e.g. required columns missing after "
                      "mapping; the problem names them and lists the headers found), or a "
                      "record falls outside the declared coverage (the problem names the row)",
                      422),
}

_RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": True,
    "description": "One record; keys are canonical field names or any header alias "
                   "(e.g. 受理时间, 问题类别, 所属地区).",
}
_REGISTER_NEW = ("Add unknown category and region codes to the reference data instead of "
                 "rejecting their rows")
_COVERAGE = ("Days the import's sources cover, FROM..TO (ISO dates, both included), e.g. "
             "2014-01-01..2014-12-31; every record must fall inside (otherwise 422 naming "
             "the row). Default: each source covers its first to last record day")
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
                    "coverage": {"type": "string", "description": _COVERAGE,
                                 "pattern": r"^\d{4}-\d{2}-\d{2}\.\.\d{4}-\d{2}-\d{2}$"},
                },
            }
        },
        "application/x-ndjson": {
            "schema": {"type": "string",
                       "description": "JSON Lines, one record per line; source, register_new, "
                                      "mapping and coverage go in the query string"},
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
                    "coverage": {"type": "string", "description": _COVERAGE,
                                 "pattern": r"^\d{4}-\d{2}-\d{2}\.\.\d{4}-\d{2}-\d{2}$"},
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


def _coverage(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest("coverage must be a string FROM..TO, e.g. 2014-01-01..2014-12-31")
    return value


def _source(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest("source must be a string")
    return value.strip() or None


async def _import(request: Request, kind: Literal["complaints", "enforcement"],
                  response: Response) -> BatchSummary:
    settings = request.app.state.settings
    limit = settings.api.max_body_bytes
    _check_length(request, limit)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    session_factory = request.app.state.sessionmaker
    chunk_rows = settings.import_chunk_rows
    tz = settings.timezone
    if ctype == "multipart/form-data":
        parser = MultiPartParser(request.headers, _limited(request, limit), max_files=1,
                                 max_fields=10)
        try:
            form = await parser.parse()
        except MultiPartException as exc:
            raise BadRequest(f"malformed multipart body: {exc.message}") from exc
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise BadRequest("the multipart body needs a file in the field 'file'")
            summary = await run_in_threadpool(
                import_file, session_factory=session_factory, kind=kind, path=upload.file,
                filename=upload.filename, source=_source(form.get("source")),
                mapping=_mapping(form.get("mapping")),
                register_new=_flag(form.get("register_new"), "register_new"),
                chunk_rows=chunk_rows, tz=tz, coverage=_coverage(form.get("coverage")),
            )
        finally:
            await form.close()
    elif ctype in ("application/x-ndjson", "application/jsonl"):
        body = bytearray()
        async for chunk in _limited(request, limit):
            body.extend(chunk)
        params = request.query_params
        summary = await run_in_threadpool(
            import_file, session_factory=session_factory, kind=kind, path=io.BytesIO(body),
            filename="body.jsonl", source=_source(params.get("source")),
            mapping=_mapping(params.get("mapping")),
            register_new=_flag(params.get("register_new"), "register_new"),
            chunk_rows=chunk_rows, tz=tz, coverage=_coverage(params.get("coverage")),
        )
    elif ctype == "application/json" or ctype.endswith("+json"):
        body = bytearray()
        async for chunk in _limited(request, limit):
            body.extend(chunk)
        try:
            doc = orjson.loads(bytes(body))
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from exc
        if isinstance(doc, list):
            doc = {"records": doc}
        if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
            raise BadRequest('the JSON body must be {"records": [...], "source": ..., '
                             '"register_new": false}')
        summary = await run_in_threadpool(
            import_records, session_factory=session_factory, kind=kind,
            records=doc["records"], source=_source(doc.get("source")),
            mapping=_mapping(doc.get("mapping")),
            register_new=_flag(doc.get("register_new"), "register_new"),
            chunk_rows=chunk_rows, tz=tz, coverage=_coverage(doc.get("coverage")),
        )
    else:
        raise UnsupportedMediaType(
            "send multipart/form-data (field 'file'), application/json or application/x-ndjson,"
            f" not '{ctype or '-'}'"
        )
    forget_series_version(request.app)  # the series listing shows the new records at once
    response.status_code = 201
    response.headers["Location"] = f"/v1/import-batches/{summary.batch_id}"
    return summary


_import_deps = [Depends(require("import"))]


@router.post("/complaints/import", summary="Import complaints (file upload or JSON records)",
             status_code=201, responses=_IMPORT_RESPONSES, openapi_extra={
                 "requestBody": _REQUEST_BODY}, dependencies=_import_deps)
async def import_complaints(request: Request, response: Response) -> BatchSummary:
    """Import complaints (受理记录) from a file (multipart field ``file``: CSV in UTF-8 or
    GB18030, optionally gzipped, XLSX, JSON or JSON Lines), a JSON body of records or a JSON
    Lines body. Headers are matched to fields by alias (e.g. 受理时间) or ``mapping``. Rows
    already imported are counted as duplicates; invalid rows are rejected and listed, the
    rest imported. Needs the ``import`` scope; the body is limited to api.max_body_bytes."""
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
    """The batch's status (running, completed, failed), counts and first row errors. Needs the
    ``read`` scope."""
    summary = get_batch(session=session, batch_id=batch_id)
    # SQLite returns naive UTC datetimes; the document promises RFC 3339 date-times
    return summary.model_copy(update={"started_at": aware(summary.started_at),
                                      "finished_at": aware(summary.finished_at)})


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


"""The OpenAPI documentation of the import endpoints (``POST /v1/complaints/import``,
``POST /v1/enforcement-actions/import``, the batch): response examples and the request body
of the three content types."""

from __future__ import annotations

from typing import Any

from service.api.problems import problem_doc
from service.errors import PROBLEM_JSON, PROBLEM_TYPE_PREFIX

__all__ = ["BATCH_EXAMPLE", "IMPORT_RESPONSES", "REQUEST_BODY", "NOT_FOUND"]


def _problem_doc(description: str, status: int) -> dict[str, Any]:
    return problem_doc(description, status)


BATCH_EXAMPLE: dict[str, Any] = {
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
    **BATCH_EXAMPLE, "status": "queued", "received": 0, "inserted": 0, "duplicates": 0,
    "rejected": 0, "errors": [], "format": None, "finished_at": None,
    "progress": {"rows": 0, "rejected": 0, "bytes_read": 0, "bytes_total": 52428800,
                 "phase": None}}


def _problem(status: int, title: str, detail: str, description: str, code: str,
             **ext: Any) -> dict[str, Any]:
    doc = problem_doc(description)
    doc["content"][PROBLEM_JSON]["example"] = {
        "type": PROBLEM_TYPE_PREFIX + code, "title": title, "status": status, "detail": detail,
        "instance": "/v1/complaints/import", **ext}
    return doc


IMPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    201: {"description": "The batch was imported (see the counts; rejected rows are listed; "
                         "a file with no data rows has a warning)",
          "content": {"application/json": {"example": BATCH_EXAMPLE}},
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
                  "force=true to import it anyway", code="conflict",
                  batch_id="0c4d2e6f8a1b3c5d7e9f0a2b4c6d8e1f",
                  existing_batch_id="9b1e4c2a7d3f4e5a8c6b0d1e2f3a4b5c"),
    413: _problem(413, "Content Too Large", "the file has more than 10,000,000 rows "
                  "(imports.max_rows); nothing of it was published; split the file",
                  "The upload is larger than api.max_body_bytes, or the file crosses an "
                  "import limit (decompressed bytes, compression ratio, line length, rows, "
                  "columns): `limit` names the setting; nothing is stored",
                  code="payload-too-large", limit="imports.max_rows", limit_value=10_000_000,
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
                  "stored, failed or rejected batch", code="unprocessable-content",
                  batch_id="0c4d2e6f8a1b3c5d7e9f0a2b4c6d8e1f", received=3, rejected=3,
                  row_errors=[{"row": 1, "field": "category", "problem": "unknown_category",
                               "detail": "'Garbage in alley' is not a known category (code, "
                                         "name or alias); import with register_new to add it"}],
                  rejected_url="/v1/import-batches/0c4d2e6f8a1b3c5d7e9f0a2b4c6d8e1f/rejected"),
    503: {**_problem(503, "Service Unavailable", "the database is busy with another import; "
                     "nothing of this one was published; retry in a minute",
                     "The database is busy publishing another import, or the background "
                     "queue is full (imports.max_queued): retry after `Retry-After` seconds",
                     code="database-busy"),
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
#: Options both bodies (a multipart form, a JSON object) take as properties
_REGISTER_NEW_PROPERTY = {"type": "boolean", "default": False, "description": _REGISTER_NEW}
_FLAGS: dict[str, Any] = {
    "force": {"type": "boolean", "default": False, "description": _FORCE},
    "coverage": {"type": "string", "description": _COVERAGE,
                 "pattern": r"^\d{4}-\d{2}-\d{2}\.\.\d{4}-\d{2}-\d{2}$"},
    "date_order": {"type": "string", "enum": ["dmy", "mdy", "ymd"], "description": _DATE_ORDER},
}
REQUEST_BODY: dict[str, Any] = {
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
                    "register_new": _REGISTER_NEW_PROPERTY,
                    "mapping": {"type": "string",
                                "description": 'JSON object field -> column, e.g. '
                                               '{"received_at": "受理日期"}'},
                    **_FLAGS,
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
                    "register_new": _REGISTER_NEW_PROPERTY,
                    "mapping": {"type": "object", "additionalProperties": {"type": "string"},
                                "description": "Field -> key of the records, e.g. "
                                               '{"received_at": "受理日期"}'},
                    **_FLAGS,
                },
            }
        },
    },
}

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _problem_doc("No such import batch", 404)}

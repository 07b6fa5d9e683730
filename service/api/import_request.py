"""An import request read into an :class:`~service.ingest.jobs.ImportJob`: the body by its
content type (multipart upload, JSON Lines, JSON records) within the size limits, and the
import options from the form fields, the query string or the JSON keys."""

from __future__ import annotations

import io
import tempfile
from collections.abc import AsyncGenerator
from typing import Any, Literal

import orjson
from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from service.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from service.ingest.jobs import ImportJob, declared_coverage, file_job, records_job
from service.ingest.limits import ImportLimits
from service.ingest.readers import check_encoding_name
from service.ingest.timestamps import DATE_ORDERS

__all__ = ["import_job", "wants_background"]


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


def wants_background(request: Request, size: int) -> bool:
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


async def import_job(request: Request, kind: Literal["complaints", "enforcement"]
                     ) -> tuple[ImportJob, int]:
    """The import job of a request and the size of its body, by content type: a multipart
    upload, a JSON Lines body or a JSON body of records (else 415)."""
    settings = request.app.state.settings
    limit = settings.api.max_body_bytes
    _check_length(request, limit)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        return await _multipart_job(request, kind, settings, limit)
    if ctype in ("application/x-ndjson", "application/jsonl"):
        return await _jsonl_job(request, kind, settings, limit)
    if ctype == "application/json" or ctype.endswith("+json"):
        return await _records_job(request, kind, settings, limit)
    raise UnsupportedMediaType(
        "send multipart/form-data (field 'file'), application/json or application/x-ndjson,"
        f" not '{ctype or '-'}'"
    )


async def _multipart_job(request: Request, kind: str, settings: Any,
                         limit: int) -> tuple[ImportJob, int]:
    """A job over the uploaded file (the job owns the upload)."""
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
    return job, size


async def _jsonl_job(request: Request, kind: str, settings: Any,
                     limit: int) -> tuple[ImportJob, int]:
    """A job over a JSON Lines body, spooled to a temporary file (options in the query)."""
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
    return job, _size(spool)


async def _records_job(request: Request, kind: str, settings: Any,
                       limit: int) -> tuple[ImportJob, int]:
    """A job over the records of a JSON body (held in memory, hence its own limit)."""
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
    return records_job(records=doc["records"], **options), len(body)

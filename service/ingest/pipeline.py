"""Import pipeline: read -> map -> validate -> redact -> write, in one transaction per batch.

Bookkeeping: the :class:`~service.store.tables.ImportBatch` row is created (``running``) and
committed first; then every record and every rejected row of the file is written in ONE
transaction that ends by setting the batch's counts and ``completed``. If anything fails
half-way the transaction rolls back (no record of the batch remains) and the batch is marked
``failed`` with the error in a separate transaction. A process killed mid-way leaves the batch
``running`` with nothing written. The same transaction adds the batch to the series summary
and to its sources' coverage (:func:`service.store.summary.refresh_from_batch`, called once
after the records are written).

Duplicates: records are inserted with ``INSERT ... ON CONFLICT (source, external_id) DO
NOTHING``; ``duplicates = valid rows - inserted rows`` counts both rows already in the
database and repeats within the file (the first occurrence wins). Two importers of the same
file running at once insert each record once: on SQLite the second waits for the first's
write lock, on PostgreSQL for its uncommitted keys.

Keys: a file with an ``external_id`` column must fill it (a blank value rejects the row); a
file without one gets ``sha256:<hash of the normalised record>#<n>``, ``n`` counting identical
records in the file, so two identical complaints stay two and a re-import inserts nothing.

Rows: numbered from 1 over data rows (header excluded; blank CSV lines and empty XLSX rows are
neither counted nor numbered). Each rejected row is stored once, with the first problem found
(see :data:`PROBLEMS`), its field and its non-personal raw values, redacted.

Writers: SQLite gets ``executemany`` on the raw ``sqlite3`` connection (foreign-key checks
off for the transaction because every code was just read from the reference tables under the
write lock; rows sorted by the series index per chunk, except in a bulk load into a
near-empty table: there the series index is dropped and rebuilt inside the transaction and
rows go in file order, which keeps the unique key's inserts local); PostgreSQL gets
``COPY`` into a temporary table and ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``.

Memory: files are read in chunks of ``chunk_rows`` (CSV, JSON Lines, JSON arrays and XLSX all
stream); a JSON request body is held in memory (bounded by ``api.max_body_bytes``). A file
that turns out unreadable after some chunks (e.g. an encoding error half-way) fails the whole
batch.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

import numpy as np
import pandas as pd
import structlog
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine, Table, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from service.errors import BadRequest, NotFound, ServiceError
from service.ingest.mapping import (
    KINDS,
    NULL_TOKENS,
    ColumnPlan,
    KindSpec,
    ReferenceIndex,
    map_actions,
    map_booleans,
    map_channels,
    map_values,
    normalise_header,
    plan_columns,
)
from service.ingest.readers import MALFORMED, Chunk, TableReader, open_reader, records_reader
from service.ingest.redact import is_personal_header, redact_series, redact_text
from service.ingest.timestamps import parse_timestamps
from service.store.summary import (
    BatchDelta,
    Coverage,
    check_declared,
    parse_coverage,
    refresh_from_batch,
)
from service.store.tables import Category, ImportBatch, Region, RejectedRow, new_id, utcnow

__all__ = [
    "MAX_ERRORS",
    "PROBLEMS",
    "RowError",
    "BatchSummary",
    "import_file",
    "import_records",
    "get_batch",
    "iter_rejected",
]

log = structlog.get_logger(__name__)

MAX_ERRORS = 1000
PROBLEMS = (
    "missing_value",      # a required field is empty (or its column absent in a JSON record)
    "unparseable_timestamp",   # not a date/time in any accepted form (or not a real date)
    "timestamp_out_of_range",  # before 1970 or more than a day in the future
    "unknown_category",   # not a code, name or alias of a category (or ambiguous)
    "unknown_region",     # not a code, name or alias of a region (or ambiguous)
    "invalid_value",      # action or violation_found not understood
    "value_too_long",     # longer than the column allows
    "malformed_record",   # a CSV line with too many fields, a JSON record that is not an object
)
_MIN_TIME = pd.Timestamp("1970-01-01", tz="UTC")
_SQLITE_CACHE_KIB = 131_072
_SQLITE_SORT_CACHE_KIB = 2_000
_HIGH_CARDINALITY = frozenset({"external_id", "entity_id"})  # stripped with _strip_nulls


class RowError(BaseModel):
    """One rejected row: 1-based data row number (header excluded), field, problem, detail."""

    row: int
    field: str | None
    problem: str = Field(examples=["unknown_category"])
    detail: str


class BatchSummary(BaseModel):
    """Outcome of one import (also the state of a batch read back later)."""

    batch_id: str
    kind: Literal["complaints", "enforcement"]
    status: Literal["running", "completed", "failed"]
    received: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[RowError] = Field(default_factory=list)
    errors_truncated: bool = False
    source: str | None = None
    filename: str | None = None
    format: str | None = None
    encoding: str | None = None
    registered_categories: list[str] = Field(default_factory=list)
    registered_regions: list[str] = Field(default_factory=list)
    coverage: str | None = Field(None, description="The declared coverage FROM..TO, if any",
                                 examples=["2014-01-01..2014-12-31"])
    error: str | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None


# ------------------------------------------------------------------ chunk processing


@dataclass
class _Processed:
    received: int
    columns: dict[str, list[Any]]          # DB column -> values of the valid rows
    sort_keys: tuple[np.ndarray, ...]       # for a locality-friendly insert order
    rejected: list[dict[str, Any]]          # rows for rejected_rows
    new_categories: dict[str, str] = field(default_factory=dict)
    new_regions: dict[str, str] = field(default_factory=dict)


def _clean(values: pd.Series) -> pd.Series:
    """Strip a low-cardinality column and turn null tokens into missing (per distinct value)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if len(uniques) == 0:
        return pd.Series(None, index=values.index, dtype=object)
    lut = np.empty(len(uniques) + 1, dtype=object)
    for i, u in enumerate(uniques):
        s = str(u).strip()
        lut[i] = None if s in NULL_TOKENS else s
    lut[-1] = None
    return pd.Series(lut[codes], index=values.index, dtype=object)


def _longer_than(values: pd.Series, limit: int) -> np.ndarray:
    """Rows whose value is longer than ``limit`` characters (missing values are not)."""
    if values.dtype == object:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        lut = np.zeros(len(uniques) + 1, dtype=bool)
        lut[: len(uniques)] = [len(str(u)) > limit for u in uniques]
        return lut[codes]
    out: np.ndarray = values.str.len().gt(limit).to_numpy(dtype=bool, na_value=False)
    return out


def _strip_nulls(values: pd.Series) -> pd.Series:
    """Strip a high-cardinality column (ids) and turn null tokens into missing, in one pass;
    an ``object`` column of ``str`` / ``None``."""
    nulls = NULL_TOKENS
    stripped = [v.strip() if isinstance(v, str) else None for v in values.tolist()]
    out = np.empty(len(stripped), dtype=object)
    out[:] = [None if v is None or v in nulls else v for v in stripped]
    return pd.Series(out, index=values.index, dtype=object)


def _longer_than_each(values: pd.Series, limit: int) -> np.ndarray:
    """:func:`_longer_than` for a high-cardinality ``object`` column of ``str`` / ``None``."""
    return np.fromiter((v is not None and len(v) > limit for v in values.tolist()),
                       dtype=bool, count=len(values))


def _per_value(values: pd.Series, fn: Callable[[str], str]) -> pd.Series:
    """Apply ``fn`` once per distinct value of a low-cardinality column."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    lut = np.empty(len(uniques) + 1, dtype=object)
    lut[: len(uniques)] = [fn(str(u)) for u in uniques]
    lut[-1] = None
    return pd.Series(lut[codes], index=values.index, dtype=object)


def _put_digits(out: np.ndarray, col: int, values: np.ndarray, width: int) -> None:
    for k in range(width - 1, -1, -1):
        out[:, col + k] = values % 10 + 48
        values = values // 10


def _format_times(utc: pd.Series, suffix: str = "") -> list[str]:
    """UTC timestamps as ``YYYY-MM-DD HH:MM:SS.ffffff`` + ``suffix`` (SQLAlchemy's SQLite
    storage format), composed digit by digit with numpy."""
    us = utc.dt.tz_localize(None).to_numpy("datetime64[us]")
    n = len(us)
    template = "0000-00-00 00:00:00.000000" + suffix
    out = np.tile(np.frombuffer(template.encode("utf-32-le"), dtype=np.uint32), (n, 1))
    days = us.astype("datetime64[D]")
    months = days.astype("datetime64[M]")
    _put_digits(out, 0, months.astype("datetime64[Y]").astype(np.int64) + 1970, 4)
    _put_digits(out, 5, months.astype(np.int64) % 12 + 1, 2)
    _put_digits(out, 8, (days - months).astype(np.int64) + 1, 2)
    tod = (us - days).astype(np.int64)
    _put_digits(out, 11, tod // 3_600_000_000, 2)
    _put_digits(out, 14, tod // 60_000_000 % 60, 2)
    _put_digits(out, 17, tod // 1_000_000 % 60, 2)
    _put_digits(out, 20, tod % 1_000_000, 6)
    result: list[str] = out.view(f"U{len(template)}").ravel().tolist()
    return result


def _format_days(days: np.ndarray) -> list[str]:
    """``datetime64[D]`` values as ``YYYY-MM-DD``."""
    out = np.tile(np.frombuffer("0000-00-00".encode("utf-32-le"), dtype=np.uint32),
                  (len(days), 1))
    months = days.astype("datetime64[M]")
    _put_digits(out, 0, months.astype("datetime64[Y]").astype(np.int64) + 1970, 4)
    _put_digits(out, 5, months.astype(np.int64) % 12 + 1, 2)
    _put_digits(out, 8, (days - months).astype(np.int64) + 1, 2)
    result: list[str] = out.view("U10").ravel().tolist()
    return result


class _Processor:
    """Turns chunks of raw strings into valid DB rows and rejected rows."""

    def __init__(
        self,
        *,
        spec: KindSpec,
        mapping: Mapping[str, str] | None,
        source: str | None,
        register_new: bool,
        tz: str,
        categories: ReferenceIndex,
        regions: ReferenceIndex,
        headers: list[str],
        ts_suffix: str,
        coverage: Coverage | None = None,
    ) -> None:
        self.spec = spec
        self.coverage = coverage
        self.mapping = dict(mapping or {})
        self.source = source.strip() if source and source.strip() else None
        self.register_new = register_new
        self.tz = tz
        self.categories = categories
        self.regions = regions
        self.ts_suffix = ts_suffix
        self._plans: dict[tuple[str, ...], ColumnPlan] = {}
        self._seen: dict[str, int] = {}
        self.columns: list[str] = []
        self.now = pd.Timestamp(utcnow()) + pd.Timedelta(days=1)
        if headers:
            self._plan(headers, strict=True)

    def _plan(self, headers: list[str], *, strict: bool) -> ColumnPlan:
        key = tuple(headers)
        plan = self._plans.get(key)
        if plan is None:
            plan = plan_columns(headers, self.spec, user_mapping=self.mapping,
                                have_source=self.source is not None,
                                strict=strict and not self._plans)
            self._plans[key] = plan
            self.columns.extend(h for h in plan.kept if h not in self.columns)
        return plan

    def process(self, chunk: Chunk) -> _Processed:
        frame, rows = chunk.frame, chunk.row_numbers
        n = len(frame)
        headers = [str(c) for c in frame.columns if c != MALFORMED]
        plan = self._plan(headers, strict=True) if headers else None
        src_of = {f: c for c, f in plan.rename.items()} if plan else {}
        na = pd.Series(np.nan, index=frame.index, dtype="str")

        def col(name: str) -> pd.Series:
            c = src_of.get(name)
            return frame[c] if c is not None else na

        ok = np.ones(n, dtype=bool)
        problem = np.empty(n, dtype=object)
        pfield = np.empty(n, dtype=object)
        detail = np.empty(n, dtype=object)

        def reject(mask: np.ndarray | pd.Series, fld: str | None, kind: str,
                   why: str | Callable[[np.ndarray], list[str]]) -> None:
            m = np.asarray(mask, dtype=bool) & ok
            if not m.any():
                return
            problem[m] = kind
            pfield[m] = fld
            if isinstance(why, str):
                detail[m] = why
            else:
                idx = np.flatnonzero(m)
                detail[idx] = np.asarray(why(idx), dtype=object)
            ok[m] = False

        def quoted(values: pd.Series, fmt: str) -> Callable[[np.ndarray], list[str]]:
            return lambda idx: [fmt.format(_short(v)) for v in values.iloc[idx].tolist()]

        if MALFORMED in frame.columns:
            bad = frame[MALFORMED]
            reject(bad.notna(), None, "malformed_record",
                   lambda idx: [str(v) for v in bad.iloc[idx].tolist()])

        # source
        source = _clean(col("source")) if "source" in src_of else pd.Series(
            None, index=frame.index, dtype=object)
        if self.source is not None:
            source = source.where(source.notna(), self.source)
        reject(source.isna(), "source", "missing_value",
               "no source: the row has none and none was given for the import")

        # time
        tf = self.spec.time_field
        traw = col(tf)
        tmissing = traw.isna() | traw.isin(NULL_TOKENS)
        reject(tmissing, tf, "missing_value", f"{tf} is empty")
        parsed = parse_timestamps(traw.where(~tmissing & ok), self.tz)
        reject(parsed.isna(), tf, "unparseable_timestamp",
               quoted(traw, "cannot read {} as a date/time"))
        reject((parsed < _MIN_TIME) | (parsed > self.now), tf, "timestamp_out_of_range",
               quoted(traw, "{} is before 1970 or in the future"))

        # category / region
        cats, cprob, new_c = map_values(col("category"), self.categories,
                                        register_new=self.register_new)
        self._reject_mapped(reject, cprob, col("category"), "category")
        regs, rprob, new_r = map_values(col("region"), self.regions,
                                        register_new=self.register_new)
        self._reject_mapped(reject, rprob, col("region"), "region")

        extra: dict[str, pd.Series] = {}
        if self.spec.kind == "enforcement":
            actions, aprob = map_actions(col("action"))
            reject(aprob.eq("missing"), "action", "missing_value", "action is empty")
            reject(aprob.eq("invalid"), "action", "invalid_value", quoted(
                col("action"), "{} is not an action (inspection, warning, correction_order, "
                "penalty, other or a Chinese equivalent)"))
            found, fprob = map_booleans(col("violation_found"))
            reject(fprob.eq("missing"), "violation_found", "missing_value",
                   "violation_found is empty")
            reject(fprob.eq("invalid"), "violation_found", "invalid_value", quoted(
                col("violation_found"), "{} is not true/false/yes/no/1/0/是/否"))
            extra["action"] = actions
            extra["violation_found"] = found

        # external id: a blank value in an external_id column rejects the row; a file
        # without the column gets content-hash ids
        ext = col("external_id")
        if "external_id" in src_of:
            ext = _strip_nulls(ext)
            reject(ext.isna(), "external_id", "missing_value", "external_id is empty")
        optional: dict[str, pd.Series] = {}
        for name in self.spec.optional:
            if name == "text":
                optional[name] = col(name)
            elif name == "entity_id":
                optional[name] = _strip_nulls(col(name))
            else:
                optional[name] = _clean(col(name)) if name in src_of else pd.Series(
                    None, index=frame.index, dtype=object)
        for name, limit in self.spec.max_len.items():
            values = source if name == "source" else ext if name == "external_id" \
                else optional[name]
            if name not in src_of:  # an import's own source is checked once, up front
                continue
            too_long = (_longer_than_each(values, limit) if name in _HIGH_CARDINALITY
                        else _longer_than(values, limit))
            reject(too_long, name, "value_too_long", f"{name} is longer than {limit} characters")

        rejected = self._rejected_rows(frame, rows, ~ok, pfield, problem, detail, plan)
        valid = np.flatnonzero(ok)
        if self.coverage is not None:  # a declared coverage must hold every record
            days = (parsed.iloc[valid].dt.tz_convert(self.tz).dt.tz_localize(None)
                    .to_numpy("datetime64[D]"))
            check_declared(self.coverage, days, np.asarray(rows)[valid],
                           traw.iloc[valid].tolist(), tf)
        used_c = set(cats.iloc[valid].tolist()) if new_c else set()
        used_r = set(regs.iloc[valid].tolist()) if new_r else set()
        out = self._valid_columns(
            valid, source, ext, parsed, cats, regs, optional, extra,
        )
        return _Processed(
            received=n, columns=out[0], sort_keys=out[1], rejected=rejected,
            new_categories={k: v for k, v in new_c.items() if k in used_c},
            new_regions={k: v for k, v in new_r.items() if k in used_r},
        )

    @staticmethod
    def _reject_mapped(reject: Callable[..., None], prob: pd.Series, raw: pd.Series,
                       name: str) -> None:
        kind = f"unknown_{name}"
        reject(prob.eq("missing"), name, "missing_value", f"{name} is empty")
        unknown = prob.eq("unknown")
        reject(unknown, name, kind, lambda idx: [
            f"{_short(v)} is not a known {name} (code, name or alias); "
            "import with register_new to add it" for v in raw.iloc[idx].tolist()])
        amb = prob.str.startswith("ambiguous:").fillna(False).to_numpy(dtype=bool)
        reject(amb, name, kind, lambda idx: [
            f"{_short(v)} matches several {name} codes: {p.split(':', 1)[1]}"
            for v, p in zip(raw.iloc[idx].tolist(), prob.iloc[idx].tolist(), strict=True)])

    def _valid_columns(
        self,
        valid: np.ndarray,
        source: pd.Series,
        ext: pd.Series,
        parsed: pd.Series,
        cats: pd.Series,
        regs: pd.Series,
        optional: dict[str, pd.Series],
        extra: dict[str, pd.Series],
    ) -> tuple[dict[str, list[Any]], tuple[np.ndarray, ...]]:
        spec = self.spec
        ts = parsed.iloc[valid]
        local = ts.dt.tz_convert(self.tz).dt.tz_localize(None).to_numpy("datetime64[D]")
        cols: dict[str, list[Any]] = {
            "source": source.iloc[valid].tolist(),
            "external_id": [],
            spec.time_field: _format_times(ts, self.ts_suffix),
            "day": _format_days(local),
            "category": cats.iloc[valid].tolist(),
            "region": regs.iloc[valid].tolist(),
        }
        for name, values in optional.items():
            v = values.iloc[valid]
            if name == "text":
                v = redact_series(v)
            elif name == "channel":
                v = map_channels(v)
            elif name == "sector":
                v = _per_value(v, redact_text)
            cols[name] = v.astype(object).where(v.notna(), None).tolist()
        for name, values in extra.items():
            cols[name] = values.iloc[valid].tolist()
        ext_valid = ext.iloc[valid]
        ids = ext_valid.astype(object).where(ext_valid.notna(), None).tolist()
        if ext_valid.isna().any():
            ids = self._content_ids(ids, cols)
        cols["external_id"] = ids
        sort_keys = (local.astype("int64"),
                     pd.factorize(regs.iloc[valid])[0], pd.factorize(cats.iloc[valid])[0])
        return cols, sort_keys

    def _content_ids(self, ids: list[str | None], cols: dict[str, list[Any]]) -> list[str]:
        """``sha256:<hash of the normalised record>#<occurrence in the file>`` for rows
        without an external id; identical rows get #1, #2, ..."""
        fields = [f for f in (self.spec.time_field, "category", "region", *self.spec.optional,
                              "action", "violation_found") if f in cols]
        out: list[str] = []
        for i, cur in enumerate(ids):
            if cur is not None:
                out.append(cur)
                continue
            text = "\x1f".join("" if cols[f][i] is None else str(cols[f][i]) for f in fields)
            digest = hashlib.sha256(f"{self.spec.kind}\x1e{text}".encode()).hexdigest()
            k = self._seen.get(digest, 0) + 1
            self._seen[digest] = k
            out.append(f"sha256:{digest}#{k}")
        return out

    @staticmethod
    def _rejected_rows(
        frame: pd.DataFrame,
        rows: np.ndarray,
        mask: np.ndarray,
        pfield: np.ndarray,
        problem: np.ndarray,
        detail: np.ndarray,
        plan: ColumnPlan | None,
    ) -> list[dict[str, Any]]:
        idx = np.flatnonzero(mask)
        if not len(idx):
            return []
        keep = [c for c in (plan.kept if plan else []) if c in frame.columns]
        raws = frame.iloc[idx][keep].astype(object)
        raws = raws.where(raws.notna(), None)
        records = raws.to_dict("records")
        out = []
        for j, i in enumerate(idx):
            raw = {str(k): (redact_text(v) if isinstance(v, str) else v)
                   for k, v in records[j].items()}
            out.append({"row_number": int(rows[i]), "field": pfield[i],
                        "problem": str(problem[i]), "detail": redact_text(str(detail[i])),
                        "raw": raw})
        return out


def _short(value: object, limit: int = 80) -> str:
    text = "" if value is None else str(value)
    return repr(text if len(text) <= limit else text[:limit] + "…")


# ------------------------------------------------------------------ writers


class _Writer:
    def __init__(self, conn: Connection, spec: KindSpec, batch_id: str) -> None:
        self.conn = conn
        self.spec = spec
        self.batch_id = batch_id
        self.raw: Any = conn.connection.driver_connection
        self.columns = ["source", "external_id", spec.time_field, "day", "category", "region",
                        *spec.optional,
                        *(["action", "violation_found"] if spec.kind == "enforcement" else [])]

    def register(self, table: Any, new: dict[str, str]) -> None:
        if not new:
            return
        dialect = self.conn.dialect.name
        ins = postgresql.insert if dialect == "postgresql" else sqlite.insert
        values: list[dict[str, Any]] = []
        for code, raw in new.items():
            row: dict[str, Any] = {"code": code, "name_zh": raw[:200], "name_en": raw[:200],
                                   "aliases": [], "registered_by_import": True}
            if table is Category.__table__:
                row.update(lead_days=14, legal_basis=[], templates={})
            else:
                row.update(level="unknown", parent=None)
            values.append(row)
        self.conn.execute(ins(cast(Table, table)).on_conflict_do_nothing(index_elements=["code"]),
                          values)

    def rejected(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            for r in rows:
                r["batch_id"] = self.batch_id
            self.conn.execute(insert(RejectedRow), rows)

    def start(self, *, first_chunk: int, chunk_rows: int) -> None:
        """Called once before the first chunk is written."""

    def finish(self) -> None:
        """Called after the last chunk, inside the transaction."""

    def prepare(self, p: _Processed) -> Any:
        """Turn processed rows into what :meth:`records` sends (pure, no database)."""
        raise NotImplementedError

    def records(self, payload: Any) -> int:
        """Insert prepared rows; returns how many were new."""
        raise NotImplementedError

    def _ordered(self, p: _Processed, *, sort: bool) -> list[list[Any]]:
        """Columns of the valid rows without in-chunk repeats of a key (first one kept),
        ordered by the series index when ``sort``."""
        ext = p.columns["external_id"]
        src = p.columns["source"]
        n = len(ext)
        single = all(v == src[0] for v in src[:1]) and len(set(src)) == 1 if n else True
        dup = (pd.Series(ext, dtype=object).duplicated() if single
               else pd.DataFrame({"s": src, "e": ext}).duplicated()).to_numpy()
        order = np.lexsort(p.sort_keys) if sort else np.arange(n)
        order = order[~dup[order]]
        if len(order) == n and not sort:
            return [p.columns[c] for c in self.columns]
        out: list[list[Any]] = []
        for c in self.columns:
            arr = np.empty(n, dtype=object)
            arr[:] = p.columns[c]
            out.append(arr[order].tolist())
        return out


class _SqliteWriter(_Writer):
    """``executemany`` on the raw sqlite3 connection, rows ordered by the series index (in
    file order for a bulk load, see :meth:`start`)."""

    def __init__(self, conn: Connection, spec: KindSpec, batch_id: str) -> None:
        super().__init__(conn, spec, batch_id)
        if not batch_id.isalnum():  # it is inlined below (one bound parameter less per row)
            raise ValueError("batch ids are hex strings")
        self.sql = (f"INSERT INTO {spec.table} ({', '.join(self.columns)}, batch_id) "
                    f"VALUES ({', '.join('?' * len(self.columns))}, '{batch_id}') "
                    "ON CONFLICT (source, external_id) DO NOTHING")
        self._deferred: list[str] = []

    def start(self, *, first_chunk: int, chunk_rows: int) -> None:
        """Bulk load: when the file is large (its first chunk is full) and the table holds
        fewer rows than two chunks, drop the table's plain secondary indexes (the series
        index) for the transaction and rebuild them at the end -- one sorted build instead
        of a million random inserts. Readers keep the old snapshot (and index) until commit;
        a rollback restores everything. The unique key stays, so duplicates are still found.
        """
        if first_chunk < chunk_rows:
            return
        existing = self.raw.execute(f"SELECT max(rowid) FROM {self.spec.table}").fetchone()[0]
        if (existing or 0) >= 2 * chunk_rows:
            return
        rows = self.raw.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
            "AND sql IS NOT NULL AND sql NOT LIKE 'CREATE UNIQUE%'", (self.spec.table,),
        ).fetchall()
        for name, sql in rows:
            self.raw.execute(f'DROP INDEX "{name}"')
            self._deferred.append(sql)

    def finish(self) -> None:
        if not self._deferred:
            return
        # The index build's sorter: with a small page cache it sorts in cache-sized runs
        # (merged by 2 threads) instead of one huge in-memory sort -- about twice as fast
        # (measured on 1M rows: 1.35 s -> 0.6 s).
        threads = self.raw.execute("PRAGMA threads").fetchone()[0]
        cache = self.raw.execute("PRAGMA cache_size").fetchone()[0]
        self.raw.execute("PRAGMA threads=2")
        self.raw.execute(f"PRAGMA cache_size=-{_SQLITE_SORT_CACHE_KIB}")
        try:
            for sql in self._deferred:
                self.raw.execute(sql)
        finally:
            self.raw.execute(f"PRAGMA cache_size={int(cache)}")
            self.raw.execute(f"PRAGMA threads={int(threads)}")
        self._deferred.clear()

    def prepare(self, p: _Processed) -> list[tuple[Any, ...]]:
        if not p.columns["source"]:
            return []
        if self._deferred:
            # bulk load (no series index to keep local): file order, and ON CONFLICT DO
            # NOTHING keeps the first of any in-file repeats, so no dedupe pass is needed
            cols = [p.columns[c] for c in self.columns]
        else:
            cols = self._ordered(p, sort=True)
        if "violation_found" in self.columns:
            i = self.columns.index("violation_found")
            cols[i] = [int(v) for v in cols[i]]
        return list(zip(*cols, strict=True))

    def records(self, payload: list[tuple[Any, ...]]) -> int:
        if not payload:
            return 0
        before = self.raw.total_changes
        self.raw.executemany(self.sql, payload)
        inserted: int = self.raw.total_changes - before
        return inserted


def _copy_escape(values: list[Any]) -> list[str]:
    out = []
    for v in values:
        if v is None:
            out.append("\\N")
        elif isinstance(v, bool):
            out.append("t" if v else "f")
        else:
            s = str(v)
            if "\\" in s or "\t" in s or "\n" in s or "\r" in s:
                s = (s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
                     .replace("\r", "\\r"))
            out.append(s)
    return out


class _PostgresWriter(_Writer):
    """``COPY`` into a temporary table, then ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``."""

    _CASTS = {"received_at": "::timestamptz", "occurred_at": "::timestamptz", "day": "::date",
              "violation_found": "::boolean"}

    def __init__(self, conn: Connection, spec: KindSpec, batch_id: str) -> None:
        super().__init__(conn, spec, batch_id)
        self.stage = f"_fw_stage_{spec.table}"
        cols = ", ".join(f"{c} text" for c in self.columns)
        with self.raw.cursor() as cur:
            cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {self.stage} ({cols}) ON COMMIT DROP")
        select_list = ", ".join(f"{c}{self._CASTS.get(c, '')}" for c in self.columns)
        self.sql = (f"INSERT INTO {spec.table} ({', '.join(self.columns)}, batch_id) "
                    f"SELECT {select_list}, %s FROM {self.stage} "
                    "ON CONFLICT (source, external_id) DO NOTHING")

    def prepare(self, p: _Processed) -> bytes:
        if not p.columns["source"]:
            return b""
        cols = [_copy_escape(a) for a in self._ordered(p, sort=False)]
        return ("\n".join("\t".join(r) for r in zip(*cols, strict=True)) + "\n").encode()

    def records(self, payload: bytes) -> int:
        if not payload:
            return 0
        with self.raw.cursor() as cur:
            with cur.copy(f"COPY {self.stage} ({', '.join(self.columns)}) FROM STDIN") as cp:
                cp.write(payload)
            cur.execute(self.sql, (self.batch_id,))
            inserted: int = cur.rowcount
            cur.execute(f"TRUNCATE {self.stage}")
        return inserted


# ------------------------------------------------------------------ the import


def _spec(kind: str) -> KindSpec:
    try:
        return KINDS[kind]
    except KeyError:
        raise BadRequest(f"kind must be one of {', '.join(KINDS)}, not '{kind}'") from None


def _engine_of(session_factory: sessionmaker[Session]) -> Engine:
    with session_factory() as s:
        bind = s.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


@dataclass(frozen=True)
class _BatchRef:
    id: str
    started_at: dt.datetime


def _create_batch(session_factory: sessionmaker[Session], *, kind: str, source: str | None,
                  filename: str | None, options: dict[str, Any]) -> _BatchRef:
    ref = _BatchRef(id=new_id(), started_at=utcnow())
    with session_factory() as s:
        s.add(ImportBatch(id=ref.id, kind=kind, source=source, filename=filename,
                          status="running", options=options, started_at=ref.started_at))
        s.commit()
    return ref


def _mark_failed(session_factory: sessionmaker[Session], batch_id: str, exc: BaseException) -> None:
    message = exc.detail if isinstance(exc, ServiceError) else f"{type(exc).__name__}: {exc}"
    try:
        with session_factory() as s:
            s.execute(update(ImportBatch).where(ImportBatch.id == batch_id).values(
                status="failed", error=message[:2000], finished_at=utcnow(),
                received=0, inserted=0, duplicates=0, rejected=0))
            s.commit()
    except Exception as mark_exc:  # the original error matters more
        log.error("import_mark_failed_error", batch_id=batch_id,
                  error_type=type(mark_exc).__name__)


def _reference(conn: Connection) -> tuple[ReferenceIndex, ReferenceIndex]:
    cats = conn.execute(select(Category.code, Category.name_zh, Category.name_en,
                               Category.aliases)).all()
    regs = conn.execute(select(Region.code, Region.name_zh, Region.name_en,
                               Region.aliases)).all()
    return (ReferenceIndex((r[0], r[1], r[2], r[3]) for r in cats),
            ReferenceIndex(((r[0], r[1], r[2], r[3]) for r in regs), strip_suffixes=True))


@dataclass
class _Totals:
    received: int = 0
    inserted: int = 0
    valid: int = 0
    rejected: int = 0
    errors: list[RowError] = field(default_factory=list)
    registered_categories: list[str] = field(default_factory=list)
    registered_regions: list[str] = field(default_factory=list)


def _sqlite_pragmas(raw: Any) -> dict[str, Any]:
    """Turn FK checks off and enlarge the page cache for this connection's import."""
    before = {"foreign_keys": raw.execute("PRAGMA foreign_keys").fetchone()[0],
              "cache_size": raw.execute("PRAGMA cache_size").fetchone()[0]}
    if not raw.in_transaction:
        raw.execute("PRAGMA foreign_keys=OFF")
    raw.execute(f"PRAGMA cache_size=-{_SQLITE_CACHE_KIB}")
    return before


def _run(
    *,
    session_factory: sessionmaker[Session],
    kind: str,
    opener: Callable[[], TableReader],
    filename: str | None,
    source: str | None,
    mapping: Mapping[str, str] | None,
    register_new: bool,
    tz: str,
    chunk_rows: int,
    coverage: str | Coverage | None = None,
) -> BatchSummary:
    spec = _spec(kind)
    if chunk_rows < 1:
        raise BadRequest("chunk_rows must be positive")
    if source is not None and len(source.strip()) > spec.max_len["source"]:
        raise BadRequest(f"source is longer than {spec.max_len['source']} characters")
    try:
        declared = parse_coverage(coverage)
    except ServiceError as exc:
        raise BadRequest(exc.detail) from None
    options: dict[str, Any] = {"register_new": register_new, "mapping": dict(mapping or {}),
                               "tz": tz, "chunk_rows": chunk_rows}
    if declared is not None:
        options["coverage"] = str(declared)
    batch = _create_batch(session_factory, kind=kind, source=source, filename=filename,
                          options=options)
    log.info("import_started", batch_id=batch.id, kind=kind)
    engine = _engine_of(session_factory)
    try:
        with _gc_paused():
            totals, reader = _transaction(engine, spec=spec, batch=batch, opener=opener,
                                          source=source, mapping=mapping,
                                          register_new=register_new, tz=tz, options=options,
                                          chunk_rows=chunk_rows, coverage=declared)
    except BaseException as exc:
        _mark_failed(session_factory, batch.id, exc)
        log.warning("import_failed", batch_id=batch.id, kind=kind,
                    error_type=type(exc).__name__)
        raise
    log.info("import_finished", batch_id=batch.id, kind=kind, received=totals.received,
             inserted=totals.inserted, duplicates=totals.valid - totals.inserted,
             rejected=totals.rejected)
    errors = sorted(totals.errors, key=lambda e: e.row)
    return BatchSummary(
        batch_id=batch.id, kind=spec.kind, status="completed",
        received=totals.received, inserted=totals.inserted,
        duplicates=totals.valid - totals.inserted, rejected=totals.rejected,
        errors=errors, errors_truncated=totals.rejected > len(errors), source=source,
        filename=filename, format=reader.format, encoding=reader.encoding,
        registered_categories=totals.registered_categories,
        registered_regions=totals.registered_regions, coverage=options.get("coverage"),
        started_at=batch.started_at, finished_at=utcnow(),
    )


def _transaction(
    engine: Engine,
    *,
    spec: KindSpec,
    batch: _BatchRef,
    opener: Callable[[], TableReader],
    source: str | None,
    mapping: Mapping[str, str] | None,
    register_new: bool,
    tz: str,
    options: dict[str, Any],
    chunk_rows: int,
    coverage: Coverage | None = None,
) -> tuple[_Totals, TableReader]:
    totals = _Totals()
    with engine.connect() as conn:
        is_sqlite = conn.dialect.name == "sqlite"
        raw: Any = conn.connection.driver_connection
        saved = _sqlite_pragmas(raw) if is_sqlite else {}
        try:
            # First statement is a write: on SQLite it takes the write lock (waiting on the
            # busy timeout) before anything is read, so the reference data cannot go stale.
            conn.execute(update(ImportBatch).where(ImportBatch.id == batch.id)
                         .values(status="running"))
            categories, regions = _reference(conn)
            reader = opener()
            try:
                processor = _Processor(
                    spec=spec, mapping=mapping, source=source, register_new=register_new,
                    tz=tz, categories=categories, regions=regions, headers=reader.headers,
                    ts_suffix="" if is_sqlite else "+00", coverage=coverage,
                )
                writer: _Writer = (_SqliteWriter if is_sqlite else _PostgresWriter)(
                    conn, spec, batch.id)
                delta = BatchDelta(spec.kind)  # the rows inserted, for the series summary
                for processed, payload in _pipelined(reader, processor, writer, chunk_rows):
                    mark, before = delta.mark(conn), totals.inserted
                    _write_chunk(processed, payload, writer, totals)
                    delta.written(conn, batch_id=batch.id, columns=processed.columns,
                                  inserted=totals.inserted - before, mark=mark)
                writer.finish()
            finally:
                reader.close()
            refresh_from_batch(conn, batch_id=batch.id, delta=delta)  # summary + coverage
            options.update(format=reader.format, encoding=reader.encoding,
                           columns=processor.columns)
            conn.execute(update(ImportBatch).where(ImportBatch.id == batch.id).values(
                status="completed", received=totals.received, inserted=totals.inserted,
                duplicates=totals.valid - totals.inserted, rejected=totals.rejected,
                finished_at=utcnow(), options=options))
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            if is_sqlite:
                raw.execute(f"PRAGMA foreign_keys={'ON' if saved['foreign_keys'] else 'OFF'}")
                raw.execute(f"PRAGMA cache_size={saved['cache_size']}")
    return totals, reader


_gc_lock = threading.Lock()
_gc_state = {"holders": 0, "reenable": 0}


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while imports run.

    An import creates millions of short-lived strings and tuples; with the collector on, its
    generation scans cost more than building the rows (measured ~3x on the row tuples). The
    records hold no reference cycles; reference counting still frees everything. Concurrent
    imports share one pause (a counter); the collector is back on when the last one ends.
    """
    with _gc_lock:
        if _gc_state["holders"] == 0:
            _gc_state["reenable"] = int(gc.isenabled())
            gc.disable()
        _gc_state["holders"] += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_state["holders"] -= 1
            if _gc_state["holders"] == 0 and _gc_state["reenable"]:
                gc.enable()


def _pipelined(reader: TableReader, processor: _Processor, writer: _Writer,
               chunk_rows: int) -> Iterator[tuple[_Processed, Any]]:
    """Read, process and prepare chunks one after the other.

    (A reader thread overlapping parsing with inserting was tried: ``sqlite3`` releases and
    re-takes the GIL around every row it steps, so a busy parser thread makes each row wait
    for the interpreter's switch interval and the import got slower, not faster.)
    """
    started = False
    for chunk in reader.chunks():
        processed = processor.process(chunk)
        if not started:  # before the first prepare: a bulk load changes the row order
            writer.start(first_chunk=processed.received, chunk_rows=chunk_rows)
            started = True
        yield processed, writer.prepare(processed)


def _write_chunk(p: _Processed, payload: Any, writer: _Writer, totals: _Totals) -> None:
    writer.register(Category.__table__, p.new_categories)
    writer.register(Region.__table__, p.new_regions)
    totals.registered_categories.extend(p.new_categories)
    totals.registered_regions.extend(p.new_regions)
    totals.inserted += writer.records(payload)
    writer.rejected(p.rejected)
    totals.received += p.received
    totals.rejected += len(p.rejected)
    totals.valid += p.received - len(p.rejected)
    room = MAX_ERRORS - len(totals.errors)
    for r in p.rejected[:max(room, 0)]:
        totals.errors.append(RowError(row=r["row_number"], field=r["field"],
                                      problem=r["problem"], detail=r["detail"]))


def _personal_unless_mapped(mapping: Mapping[str, str] | None) -> Callable[[str], bool]:
    mapped = {normalise_header(c) for c in (mapping or {}).values()}
    return lambda h: is_personal_header(h) and normalise_header(h) not in mapped


def import_file(
    *,
    session_factory: sessionmaker[Session],
    kind: Literal["complaints", "enforcement"],
    path: Path | BinaryIO,
    filename: str | None = None,
    source: str | None = None,
    mapping: dict[str, str] | None = None,
    register_new: bool = False,
    chunk_rows: int = 50_000,
    tz: str = "Asia/Shanghai",
    coverage: str | Coverage | None = None,
) -> BatchSummary:
    """Import a CSV / CSV.gz / XLSX / JSON / JSON Lines file of complaints or enforcement
    actions in one transaction; returns the batch summary.

    Parameters
    ----------
    session_factory
        Bound to the service's engine (SQLite or PostgreSQL).
    kind
        ``complaints`` (fields source, external_id, received_at, category, region, sector,
        channel, text) or ``enforcement`` (source, external_id, occurred_at, category, region,
        action, violation_found, entity_id, sector).
    path
        A path or a binary stream (consumed); ``filename`` names a stream's format
        (``.csv``, ``.csv.gz``, ``.xlsx``, ``.json``, ``.jsonl``); without a name the format is
        sniffed.
    source
        Source of rows without a ``source`` column value.
    mapping
        Canonical field -> source column; wins over the built-in aliases.
    register_new
        Register unknown categories/regions instead of rejecting their rows.
    chunk_rows
        Rows read and written per chunk (bounds memory).
    tz
        Zone of naive timestamps; ``day`` is the local date in this zone.
    coverage
        The days the file's sources cover, ``FROM..TO`` (ISO dates, both included); every
        record must fall inside. Default: each source covers its first to last record day.
        Recorded in ``source_coverage`` (:mod:`service.store.summary`).

    Raises
    ------
    UnsupportedMediaType
        The file is not a supported format.
    UnprocessableContent
        The file cannot be parsed, or required fields have no column.
    BadRequest
        Invalid arguments (unknown kind, mapping to unknown fields).
    """
    name = filename or (Path(path).name if isinstance(path, str | Path) else None)
    return _run(
        session_factory=session_factory, kind=kind,
        opener=lambda: open_reader(path, filename=name, chunk_rows=chunk_rows,
                                   skip_column=_personal_unless_mapped(mapping)),
        filename=name, source=source, mapping=mapping, register_new=register_new, tz=tz,
        chunk_rows=chunk_rows, coverage=coverage,
    )


def import_records(
    *,
    session_factory: sessionmaker[Session],
    kind: Literal["complaints", "enforcement"],
    records: list[dict[str, Any]],
    source: str | None = None,
    mapping: dict[str, str] | None = None,
    register_new: bool = False,
    chunk_rows: int = 50_000,
    tz: str = "Asia/Shanghai",
    coverage: str | Coverage | None = None,
) -> BatchSummary:
    """Import records given as a list of objects (a JSON request body); see
    :func:`import_file`. A record that is not an object is rejected as ``malformed_record``."""
    if not isinstance(records, list):
        raise BadRequest("records must be a list of objects")
    return _run(
        session_factory=session_factory, kind=kind,
        opener=lambda: records_reader(records, chunk_rows), filename=None, source=source,
        mapping=mapping, register_new=register_new, tz=tz, chunk_rows=chunk_rows,
        coverage=coverage,
    )


# ------------------------------------------------------------------ reading batches back


def get_batch(*, session: Session, batch_id: str, max_errors: int = MAX_ERRORS) -> BatchSummary:
    """The summary of a batch with its first ``max_errors`` rejected rows."""
    batch = session.get(ImportBatch, batch_id)
    if batch is None:
        raise NotFound(f"no import batch '{batch_id}'")
    rows = session.scalars(
        select(RejectedRow).where(RejectedRow.batch_id == batch_id)
        .order_by(RejectedRow.row_number, RejectedRow.id).limit(max_errors)
    ).all()
    opts = batch.options or {}
    return BatchSummary(
        batch_id=batch.id, kind=batch.kind, status=batch.status,
        received=batch.received, inserted=batch.inserted, duplicates=batch.duplicates,
        rejected=batch.rejected,
        errors=[RowError(row=r.row_number, field=r.field, problem=r.problem, detail=r.detail)
                for r in rows],
        errors_truncated=batch.rejected > len(rows), source=batch.source,
        filename=batch.filename, format=opts.get("format"), encoding=opts.get("encoding"),
        coverage=opts.get("coverage"), error=batch.error, started_at=batch.started_at,
        finished_at=batch.finished_at,
    )


def iter_rejected(
    *, session_factory: sessionmaker[Session], batch_id: str, page: int = 5000
) -> Iterator[tuple[list[str], Iterable[dict[str, Any]]]]:
    """Yield ``(raw columns, rows)`` pages of a batch's rejected rows in row order; each row
    is ``{row, field, problem, detail, raw}``. The raw columns are the file's non-personal
    columns in file order."""
    with session_factory() as s:
        batch = s.get(ImportBatch, batch_id)
        if batch is None:
            raise NotFound(f"no import batch '{batch_id}'")
        columns = [str(c) for c in (batch.options or {}).get("columns", [])]
        last = (-1, -1)
        while True:
            rows = s.execute(
                select(RejectedRow.id, RejectedRow.row_number, RejectedRow.field,
                       RejectedRow.problem, RejectedRow.detail, RejectedRow.raw)
                .where(RejectedRow.batch_id == batch_id)
                .where((RejectedRow.row_number > last[0])
                       | ((RejectedRow.row_number == last[0]) & (RejectedRow.id > last[1])))
                .order_by(RejectedRow.row_number, RejectedRow.id).limit(page)
            ).all()
            if not rows:
                return
            last = (rows[-1].row_number, rows[-1].id)
            yield columns, [{"row": r.row_number, "field": r.field, "problem": r.problem,
                             "detail": r.detail, "raw": r.raw or {}} for r in rows]

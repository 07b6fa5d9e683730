"""Validation and normalisation of one chunk of rows: raw strings in, the valid rows'
database columns and the rejected rows (first problem, field, redacted raw values) out.

The problems a row can have are :data:`PROBLEMS`; the import around it is
:mod:`service.ingest.pipeline`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from service.errors import UnprocessableContent
from service.ingest.mapping import (
    NULL_TOKENS,
    ColumnPlan,
    KindSpec,
    ReferenceIndex,
    map_actions,
    map_booleans,
    map_channels,
    map_values,
    plan_columns,
)
from service.ingest.readers import MALFORMED, Chunk
from service.ingest.redact import redact_series, redact_text
from service.ingest.timestamps import _format_days, _format_times, parse_timestamps
from service.store.summary import Coverage, check_declared
from service.store.tables import utcnow

__all__ = ["PROBLEMS"]

PROBLEMS = (
    "missing_value",      # a required field is empty (or its column absent in a JSON record)
    "unparseable_timestamp",   # not a date/time in any accepted form (or not a real date)
    "timestamp_out_of_range",  # before 1970 or more than a day in the future
    "unknown_category",   # not a code, name or alias of a category (or ambiguous)
    "unknown_region",     # not a code, name or alias of a region (or ambiguous)
    "invalid_value",      # action or violation_found not understood; a NUL character
    "value_too_long",     # longer than the column allows
    "malformed_record",   # a CSV line with too many fields, a JSON record that is not an object
)
_MIN_TIME = pd.Timestamp("1970-01-01", tz="UTC")
_HIGH_CARDINALITY = frozenset({"external_id", "entity_id"})  # stripped with _strip_nulls


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
        date_order: str | None = None,
        max_text_chars: int = 20_000,
        coverage: Coverage | None = None,
    ) -> None:
        self.spec = spec
        self.coverage = coverage
        self.date_order = date_order
        self.decided_order: str | None = date_order
        self.max_text_chars = max_text_chars
        self.warnings: list[str] = []
        self.truncated = 0
        self._rows: np.ndarray = np.empty(0, dtype=np.int64)
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

    def _year_last_order(self, values: pd.Series, parts: pd.DataFrame) -> str:
        """The file's order of year-last dates (``01/02/2013``): the user's, or decided once
        from the first chunk that holds such dates (a value above 12 settles it)."""
        if self.decided_order is not None:
            return self.decided_order
        first = parts[0].astype(int)
        second = parts[1].astype(int)
        day_first = first.gt(12).to_numpy()
        month_first = second.gt(12).to_numpy()
        index = self._frame_index

        def example(mask: np.ndarray) -> str:
            i = int(np.flatnonzero(mask)[0])
            row = int(self._rows[index.get_loc(values.index[i])])
            return f"{_short(values.iloc[i])} (data row {row})"

        if day_first.any() and month_first.any():
            raise UnprocessableContent(
                f"the dates mix day-first ({example(day_first)}) and month-first "
                f"({example(month_first)}) values; import with --date-order dmy or "
                "--date-order mdy (API: date_order) and the rows in the other order are "
                "rejected", date_orders=["dmy", "mdy"])
        if day_first.any():
            self.decided_order = "dmy"
            why = example(day_first)
        elif month_first.any():
            self.decided_order = "mdy"
            why = example(month_first)
        elif first.eq(second).all():
            self.decided_order = "mdy"  # 01/01/2013: either order reads the same
            return "mdy"
        else:
            raise UnprocessableContent(
                f"dates like {example(np.ones(len(values), dtype=bool))} could be day/month "
                "or month/day and no value in the file settles it (none has a day above 12); "
                "import with --date-order dmy (day first) or --date-order mdy (month first) "
                "(API: date_order)", date_orders=["dmy", "mdy"])
        order = "day/month/year" if self.decided_order == "dmy" else "month/day/year"
        self.warnings.append(f"dates with the year last were read as {order}, as {why} "
                             "settles it")
        return self.decided_order

    def _truncate(self, values: pd.Series) -> pd.Series:
        """Texts longer than ``max_text_chars`` cut there, without a partial number or
        address at the cut, with a marker saying how long the original was."""
        limit = self.max_text_chars
        lens = values.str.len()
        long = lens.gt(limit).to_numpy(dtype=bool, na_value=False)
        if not long.any():
            return values
        out = values.copy()
        pos = np.flatnonzero(long)
        cut = [_cut(v, limit) for v in values.iloc[pos].tolist()]
        out.iloc[pos] = cut
        self.truncated += len(pos)
        return out

    def process(self, chunk: Chunk) -> _Processed:
        """Every row of ``chunk`` checked field by field (the first problem a row has is the
        one reported), then the valid rows' columns."""
        frame, rows = chunk.frame, chunk.row_numbers
        self._rows = rows
        self._frame_index = frame.index
        headers = [str(c) for c in frame.columns if c != MALFORMED]
        plan = self._plan(headers, strict=True) if headers else None
        src_of = {f: c for c, f in plan.rename.items()} if plan else {}
        na = pd.Series(np.nan, index=frame.index, dtype="str")

        def col(name: str) -> pd.Series:
            c = src_of.get(name)
            return frame[c] if c is not None else na

        verdicts = _Verdicts(len(frame))
        _check_records(frame, plan, verdicts.reject)
        source = self._source(col, "source" in src_of, frame.index, verdicts.reject)
        traw, parsed = self._timestamps(col, verdicts)
        cats, cprob, new_c = map_values(col("category"), self.categories,
                                        register_new=self.register_new)
        self._reject_mapped(verdicts.reject, cprob, col("category"), "category")
        regs, rprob, new_r = map_values(col("region"), self.regions,
                                        register_new=self.register_new)
        self._reject_mapped(verdicts.reject, rprob, col("region"), "region")
        extra = (_enforcement_columns(col, verdicts.reject) if self.spec.kind == "enforcement"
                 else {})
        ext, optional = self._optional_columns(col, src_of, frame.index, verdicts.reject)
        self._check_lengths(src_of, {"source": source, "external_id": ext, **optional},
                            verdicts.reject)

        rejected = self._rejected_rows(frame, rows, verdicts, plan)
        valid = np.flatnonzero(verdicts.ok)
        if self.coverage is not None:  # a declared coverage must hold every record
            days = (parsed.iloc[valid].dt.tz_convert(self.tz).dt.tz_localize(None)
                    .to_numpy("datetime64[D]"))
            check_declared(self.coverage, days, np.asarray(rows)[valid],
                           traw.iloc[valid].tolist(), self.spec.time_field)
        used_c = set(cats.iloc[valid].tolist()) if new_c else set()
        used_r = set(regs.iloc[valid].tolist()) if new_r else set()
        out = self._valid_columns(
            valid, source, ext, parsed, cats, regs, optional, extra,
        )
        return _Processed(
            received=len(frame), columns=out[0], sort_keys=out[1], rejected=rejected,
            new_categories={k: v for k, v in new_c.items() if k in used_c},
            new_regions={k: v for k, v in new_r.items() if k in used_r},
        )

    def _source(self, col: Callable[[str], pd.Series], in_file: bool, index: pd.Index,
                reject: _Reject) -> pd.Series:
        """Each row's source: its own, else the import's; a row with neither is rejected."""
        source = _clean(col("source")) if in_file else pd.Series(None, index=index,
                                                                 dtype=object)
        if self.source is not None:
            source = source.where(source.notna(), self.source)
        reject(source.isna(), "source", "missing_value",
               "no source: the row has none and none was given for the import")
        return source

    def _timestamps(self, col: Callable[[str], pd.Series], v: _Verdicts
                    ) -> tuple[pd.Series, pd.Series]:
        """The raw time field and its parsed UTC timestamps; empty, unreadable and
        out-of-range values are rejected."""
        tf = self.spec.time_field
        traw = col(tf)
        tmissing = traw.isna() | traw.isin(NULL_TOKENS)
        v.reject(tmissing, tf, "missing_value", f"{tf} is empty")
        parsed = parse_timestamps(traw.where(~tmissing & v.ok), self.tz,
                                  on_year_last=self._year_last_order)
        order_note = "" if self.decided_order is None else (
            " (year-last dates are read as " + {"dmy": "day/month/year", "mdy":
                                                 "month/day/year", "ymd": "not accepted"}[
                self.decided_order] + " in this file)")
        v.reject(parsed.isna(), tf, "unparseable_timestamp",
                 _quoted(traw, "cannot read {} as a date/time" + order_note.replace("{", "{{")))
        v.reject((parsed < _MIN_TIME) | (parsed > self.now), tf, "timestamp_out_of_range",
                 _quoted(traw, "{} is before 1970 or in the future"))
        return traw, parsed

    def _optional_columns(self, col: Callable[[str], pd.Series], src_of: Mapping[str, str],
                          index: pd.Index, reject: _Reject
                          ) -> tuple[pd.Series, dict[str, pd.Series]]:
        """The external id and the optional fields, cleaned. A blank value in an
        external_id column rejects the row; a file without the column gets content-hash
        ids later (:meth:`_content_ids`)."""
        ext = col("external_id")
        if "external_id" in src_of:
            ext = _strip_nulls(ext)
            reject(ext.isna(), "external_id", "missing_value", "external_id is empty")
        optional: dict[str, pd.Series] = {}
        for name in self.spec.optional:
            if name == "text":
                optional[name] = self._truncate(col(name)) if name in src_of else col(name)
            elif name == "entity_id":
                optional[name] = _strip_nulls(col(name))
            else:
                optional[name] = _clean(col(name)) if name in src_of else pd.Series(
                    None, index=index, dtype=object)
        return ext, optional

    def _check_lengths(self, src_of: Mapping[str, str], values: Mapping[str, pd.Series],
                       reject: _Reject) -> None:
        """Rows whose values are longer than their columns allow are rejected (an import's
        own source is checked once, up front)."""
        for name, limit in self.spec.max_len.items():
            if name not in src_of:
                continue
            too_long = (_longer_than_each(values[name], limit) if name in _HIGH_CARDINALITY
                        else _longer_than(values[name], limit))
            reject(too_long, name, "value_too_long", f"{name} is longer than {limit} characters")

    @staticmethod
    def _reject_mapped(reject: _Reject, prob: pd.Series, raw: pd.Series,
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
        verdicts: _Verdicts,
        plan: ColumnPlan | None,
    ) -> list[dict[str, Any]]:
        """The rejected rows for ``rejected_rows``: row number, first problem, its field and
        detail, and the row's raw values (redacted, long ones cut)."""
        pfield, problem, detail = verdicts.field, verdicts.problem, verdicts.detail
        idx = np.flatnonzero(~verdicts.ok)
        if not len(idx):
            return []
        keep = [c for c in (plan.kept if plan else []) if c in frame.columns]
        raws = frame.iloc[idx][keep].astype(object)
        raws = raws.where(raws.notna(), None)
        records = raws.to_dict("records")
        out = []
        for j, i in enumerate(idx):
            raw = {str(k): (redact_text(_capped(v)) if isinstance(v, str) else v)
                   for k, v in records[j].items()}
            out.append({"row_number": int(rows[i]), "field": pfield[i],
                        "problem": str(problem[i]), "detail": redact_text(str(detail[i])),
                        "raw": raw})
        return out


_Reject = Callable[[Any, str | None, str, str | Callable[[np.ndarray], list[str]]], None]
"""How a check rejects rows: ``_Verdicts.reject``."""


class _Verdicts:
    """The outcome of each row of a chunk: accepted until a check rejects it; the first
    problem found (its kind, field and detail) is the one a rejected row keeps."""

    def __init__(self, n: int) -> None:
        self.ok = np.ones(n, dtype=bool)
        self.problem = np.empty(n, dtype=object)
        self.field = np.empty(n, dtype=object)
        self.detail = np.empty(n, dtype=object)

    def reject(self, mask: np.ndarray | pd.Series, fld: str | None, kind: str,
               why: str | Callable[[np.ndarray], list[str]]) -> None:
        """Reject the rows of ``mask`` still accepted; ``why`` is one detail or a function
        of the rows' positions giving one each."""
        m = np.asarray(mask, dtype=bool) & self.ok
        if not m.any():
            return
        self.problem[m] = kind
        self.field[m] = fld
        if isinstance(why, str):
            self.detail[m] = why
        else:
            idx = np.flatnonzero(m)
            self.detail[idx] = np.asarray(why(idx), dtype=object)
        self.ok[m] = False


def _quoted(values: pd.Series, fmt: str) -> Callable[[np.ndarray], list[str]]:
    """A detail per row: ``fmt`` with the row's (shortened) value."""
    return lambda idx: [fmt.format(_short(v)) for v in values.iloc[idx].tolist()]


def _check_records(frame: pd.DataFrame, plan: ColumnPlan | None, reject: _Reject) -> None:
    """Malformed records, and values with a NUL character, which PostgreSQL cannot store
    (and which are never meant): the row, not the import, is refused, on every backend."""
    if MALFORMED in frame.columns:
        bad = frame[MALFORMED]
        reject(bad.notna(), None, "malformed_record",
               lambda idx: [str(v) for v in bad.iloc[idx].tolist()])
    for c, name in (plan.rename.items() if plan else ()):
        nul = frame[c].astype("string").str.contains("\x00", regex=False)
        reject(nul.fillna(False).to_numpy(dtype=bool), name, "invalid_value",
               f"{name} contains a NUL character (U+0000)")


def _enforcement_columns(col: Callable[[str], pd.Series], reject: _Reject
                         ) -> dict[str, pd.Series]:
    """An enforcement record's action and violation_found, understood or rejected."""
    actions, aprob = map_actions(col("action"))
    reject(aprob.eq("missing"), "action", "missing_value", "action is empty")
    reject(aprob.eq("invalid"), "action", "invalid_value", _quoted(
        col("action"), "{} is not an action (inspection, warning, correction_order, "
        "penalty, other or a Chinese equivalent)"))
    found, fprob = map_booleans(col("violation_found"))
    reject(fprob.eq("missing"), "violation_found", "missing_value",
           "violation_found is empty")
    reject(fprob.eq("invalid"), "violation_found", "invalid_value", _quoted(
        col("violation_found"), "{} is not true/false/yes/no/1/0/是/否"))
    return {"action": actions, "violation_found": found}


_CUT_TAIL = re.compile(r"[0-9A-Za-z０-９Ａ-Ｚａ-ｚ@＠.%+\-\s()（）]{1,60}$")


def _cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, without the head of a number or an address that
    the cut splits (whose rest would no longer be recognised), and a marker."""
    kept = text[:limit]
    tail = _CUT_TAIL.search(kept)
    if tail and any(c.isdigit() or c in "@＠" for c in tail.group()):
        kept = kept[: tail.start()]
    return kept + f"…[截断: 原文 {len(text):,} 字]"
_RAW_CHARS = 1000  # a value kept in rejected_rows.raw is cut to this many characters


def _capped(value: str) -> str:
    return value if len(value) <= _RAW_CHARS else _cut(value, _RAW_CHARS)


def _short(value: object, limit: int = 80) -> str:
    text = "" if value is None else str(value)
    return repr(text if len(text) <= limit else text[:limit] + "…")

"""The rows an import inserted, aggregated chunk by chunk for the series summary and the
sources' coverage (:func:`service.store.summary.refresh_from_batch`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, func, literal, select

from service.store.coverage import as_date
from service.store.tables import Complaint, EnforcementAction

__all__ = ["BatchDelta", "table_of"]


class BatchDelta:
    """The rows an import inserted, aggregated chunk by chunk, so that
    :func:`refresh_from_batch` need not read a batch back (seconds per million rows): per
    (category, region, source) the first and last day and the count of the rows the series
    summary counts, and per source the first and last day of every inserted row (coverage).

    Use :meth:`mark` before writing a chunk and :meth:`written` after it: a chunk whose rows
    were all inserted is aggregated from the rows handed to the writer; a chunk with rows
    already stored (duplicates) is aggregated in SQL over the records it added: ``id`` above the
    mark and this batch's ``batch_id`` (a range of the primary key, also on PostgreSQL with
    concurrent imports, whose ids come from one sequence).
    """

    def __init__(self, kind: str = "complaints") -> None:
        self.kind = kind
        self.rows = 0
        self.series: dict[tuple[str, str, str], list[Any]] = {}
        self.sources: dict[str, list[Any]] = {}

    def mark(self, conn: Connection) -> int:
        """The highest record id of the kind's table now (before a chunk is written)."""
        table = table_of(self.kind)
        return int(conn.scalar(select(func.max(table.id))) or 0)

    def written(self, conn: Connection, *, batch_id: str, columns: Mapping[str, Sequence[Any]],
                inserted: int, mark: int) -> None:
        """Account for one written chunk: ``columns`` are the valid rows handed to the writer
        (``category``, ``region``, ``source``, ``day`` as ISO strings, and for enforcement
        ``violation_found``), ``inserted`` how many records the chunk added, ``mark`` the
        value of :meth:`mark` before it was written."""
        if inserted <= 0:
            return
        counts_col = "violation_found" if self.kind == "enforcement" else None
        if inserted == len(columns["day"]):  # every row handed was inserted
            self.add(category=columns["category"], region=columns["region"],
                     source=columns["source"], day=columns["day"],
                     counts=columns[counts_col] if counts_col else None)
            return
        # some rows were already stored: aggregate the records this chunk added, in SQL
        self.added(conn, batch_id=batch_id, mark=mark)

    def added(self, conn: Connection, *, batch_id: str, mark: int) -> None:
        """Aggregate, in SQL, the records of ``batch_id`` with an id above ``mark`` (a range
        of the primary key: the records the batch added since :meth:`mark`)."""
        t = table_of(self.kind)
        found = t.violation_found if self.kind == "enforcement" else literal(True)
        stmt = (select(t.category, t.region, t.source, found, func.min(t.day),
                       func.max(t.day), func.count())
                .where(t.id > mark, t.batch_id == batch_id)
                .group_by(t.category, t.region, t.source, found))
        for c, r, src, counted, a, b, n in conn.execute(stmt):
            first, last = as_date(a).isoformat(), as_date(b).isoformat()
            self.rows += int(n)
            self._extend(self.sources, str(src), first, last, 0)
            if counted:
                self._extend(self.series, (str(c), str(r), str(src)), first, last, int(n))

    def add(self, *, category: Sequence[Any], region: Sequence[Any], source: Sequence[Any],
            day: Sequence[str], counts: Sequence[Any] | None = None) -> None:
        """Add one chunk of rows (parallel sequences; ``day`` ISO ``YYYY-MM-DD`` strings;
        ``counts`` a boolean per row for the rows the summary counts, default all)."""
        import numpy as np
        import pandas as pd

        n = len(day)
        if n == 0:
            return
        self.rows += n
        cols = [pd.factorize(np.asarray(v, dtype=object)) for v in (category, region, source)]
        d_codes, d_uniq = pd.factorize(np.asarray(day, dtype=object))
        order = np.argsort(np.asarray(d_uniq, dtype=str))
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        sorted_days = np.asarray(d_uniq, dtype=object)[order]
        dr = rank[d_codes]
        c, r, s = (np.asarray(codes, dtype=np.int64) for codes, _ in cols)
        cu, ru, su = (np.asarray(u, dtype=object) for _, u in cols)
        for si in np.unique(s):  # coverage: every row
            sel = dr[s == si]
            self._extend(self.sources, str(su[si]), sorted_days[sel.min()],
                         sorted_days[sel.max()], 0)
        if counts is not None:
            keep = np.asarray(counts, dtype=bool)
            c, r, s, dr = c[keep], r[keep], s[keep], dr[keep]
            if not len(dr):
                return
        key = (c * len(ru) + r) * len(su) + s
        order = np.argsort(key, kind="stable")
        k, d = key[order], dr[order]
        starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
        lo, hi = np.minimum.reduceat(d, starts), np.maximum.reduceat(d, starts)
        sizes = np.diff(np.r_[starts, len(k)])
        for kk, a, b, m in zip(k[starts], lo, hi, sizes, strict=True):
            ci, rest = divmod(int(kk), len(ru) * len(su))
            ri, si = divmod(rest, len(su))
            self._extend(self.series, (str(cu[ci]), str(ru[ri]), str(su[si])),
                         sorted_days[a], sorted_days[b], int(m))

    @staticmethod
    def _extend(into: dict[Any, list[Any]], key: Any, first: str, last: str, n: int) -> None:
        cur = into.get(key)
        if cur is None:
            into[key] = [first, last, n]
        else:
            cur[0], cur[1], cur[2] = min(cur[0], first), max(cur[1], last), cur[2] + n


def table_of(kind: str) -> Any:
    """The record table of an import kind."""
    return Complaint if kind == "complaints" else EnforcementAction

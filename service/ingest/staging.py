"""Dialect-specific bulk writers of an import: a private staging area per import
(temporary tables of the importing connection), SQLite ``executemany`` or PostgreSQL
``COPY`` per chunk, and the ``INSERT ... SELECT`` that publishes the staged rows
(see "Writers" in :mod:`service.ingest.pipeline`).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection

from service.ingest.mapping import KindSpec
from service.ingest.rows import _Processed

__all__: list[str] = []  # private to service.ingest

_SQLITE_CACHE_KIB = 131_072
_SQLITE_SORT_CACHE_KIB = 2_000

_CAST_PG = {"received_at": "::timestamptz", "occurred_at": "::timestamptz", "day": "::date",
            "violation_found": "::boolean"}


class _Stage:
    """A private staging area of one import: a temporary table of its valid rows and one of
    its rejected rows, each chunk committed as it comes (no lock on the real tables), then
    :meth:`publish` copies them in one transaction."""

    def __init__(self, conn: Connection, spec: KindSpec, batch_id: str) -> None:
        if not batch_id.isalnum():  # it is inlined in SQL and table names
            raise ValueError("batch ids are hex strings")
        self.conn = conn
        self.spec = spec
        self.batch_id = batch_id
        self.raw: Any = conn.connection.driver_connection
        self.columns = ["source", "external_id", spec.time_field, "day", "category", "region",
                        *spec.optional,
                        *(["action", "violation_found"] if spec.kind == "enforcement" else [])]
        self.rows_table = f"_fw_stage_{batch_id}"
        self.rejected_table = f"_fw_rejected_{batch_id}"
        self.bulk = False
        self.staged = 0
        self.checked_up_to: int | None = None  # the table's highest id at the first check

    def start(self, *, first_chunk: int, chunk_rows: int) -> None:
        """Called once before the first chunk is written: a large file (its first chunk is
        full) into a near-empty table is a bulk load (rows kept in file order)."""
        if first_chunk < chunk_rows:
            return
        existing = self.conn.exec_driver_sql(
            f"SELECT max(id) FROM {self.spec.table}").scalar()
        self.bulk = (existing or 0) < 2 * chunk_rows

    def _ordered(self, p: _Processed, *, sort: bool) -> list[list[Any]]:
        """Columns of the valid rows without in-chunk repeats of a key (first one kept),
        ordered by the series index when ``sort``."""
        ext = p.columns["external_id"]
        src = p.columns["source"]
        n = len(ext)
        single = len(set(src)) == 1 if n else True
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

    def create(self) -> None:
        raise NotImplementedError

    def prepare(self, p: _Processed) -> Any:
        """Turn processed rows into what :meth:`write` sends (pure, no database)."""
        raise NotImplementedError

    def write(self, payload: Any, rejected: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def drop_duplicates_of_other_sources(self, *, late: bool = False
                                         ) -> list[tuple[str, str | None, int]]:
        """Remove staged rows that are already stored under another source (same record key:
        external id, time, category, region); ``(source, batch, rows)`` of what was found.
        The first call (after reading, outside any lock) remembers the table's highest id;
        ``late=True`` (inside the publishing transaction, uncommitted, with publishes of the
        kind serialised) looks only at records stored since, i.e. by an import of another
        source that published in between."""
        if late and self.checked_up_to is None:
            return []  # never checked (forced): nothing to repeat
        floor = self.checked_up_to if late else None
        if not late:
            self.checked_up_to = self._max_id()
        found = self._drop_stored_elsewhere(floor) if self.staged else []
        if not late:
            self.raw.commit()
        return [(str(a), b, int(n)) for a, b, n in found]

    def _max_id(self) -> int:
        raise NotImplementedError

    def _drop_stored_elsewhere(self, floor: int | None) -> list[Any]:
        """Delete the staged rows stored under another source (with an id above ``floor``
        when given); the ``(source, batch, count)`` rows found."""
        raise NotImplementedError

    def publish(self) -> int:
        """Copy the staged rows into the real tables (inside the caller's transaction);
        returns how many records were new."""
        raise NotImplementedError

    def drop(self) -> None:
        raise NotImplementedError

    def _key_match(self, s: str, c: str) -> str:
        tf = self.spec.time_field
        return " AND ".join(f"{c}.{f} = {s}.{f}" for f in
                            ("category", "region", "day", "external_id", tf))


class _SqliteStage(_Stage):
    """Temporary tables (the connection's own ``temp`` database: writing them takes no lock
    on the main database file); ``executemany`` per chunk, one ``INSERT ... SELECT`` to
    publish. Rows are sorted by the series index per chunk, except in a bulk load: there the
    series index is dropped and rebuilt inside the publishing transaction (one sorted build
    instead of a million random inserts; a rollback restores it)."""

    def create(self) -> None:
        self._temp_cache = int(self.raw.execute("PRAGMA temp.cache_size").fetchone()[0])
        self.raw.execute(f"PRAGMA temp.cache_size=-{_SQLITE_CACHE_KIB}")
        self.raw.execute(f"CREATE TEMP TABLE {self.rows_table} ({', '.join(self.columns)})")
        self.raw.execute(f"CREATE TEMP TABLE {self.rejected_table} "
                         "(row_number, field, problem, detail, raw)")
        self.insert = (f"INSERT INTO temp.{self.rows_table} VALUES "
                       f"({', '.join('?' * len(self.columns))})")

    def prepare(self, p: _Processed) -> list[tuple[Any, ...]]:
        if not p.columns["source"]:
            return []
        # bulk load: file order; INSERT ... ON CONFLICT DO NOTHING keeps the first of any
        # repeats. Otherwise sorted by the series index, in-chunk repeats removed first.
        cols = [p.columns[c] for c in self.columns] if self.bulk else self._ordered(p, sort=True)
        if "violation_found" in self.columns:
            i = self.columns.index("violation_found")
            cols[i] = [int(v) for v in cols[i]]
        return list(zip(*cols, strict=True))

    def write(self, payload: list[tuple[Any, ...]], rejected: list[dict[str, Any]]) -> None:
        if payload:
            self.raw.executemany(self.insert, payload)
            self.staged += len(payload)
        if rejected:
            self.raw.executemany(
                f"INSERT INTO temp.{self.rejected_table} VALUES (?, ?, ?, ?, ?)",
                [(r["row_number"], r["field"], r["problem"], r["detail"],
                  json.dumps(r["raw"], ensure_ascii=False)) for r in rejected])
        self.raw.commit()

    def _max_id(self) -> int:
        return int(self.raw.execute(
            f"SELECT coalesce(max(id), 0) FROM main.{self.spec.table}").fetchone()[0])

    def _drop_stored_elsewhere(self, floor: int | None) -> list[Any]:
        t = self.spec.table
        if self.raw.execute(f"SELECT 1 FROM main.{t} WHERE id > ? LIMIT 1",
                            (floor or 0,)).fetchone() is None:
            return []
        newer = f" AND c.id > {int(floor)}" if floor is not None else ""
        found: list[Any] = self.raw.execute(
            f"SELECT c.source, c.batch_id, count(*) FROM temp.{self.rows_table} s "
            f"JOIN main.{t} c ON {self._key_match('s', 'c')} AND c.source <> s.source{newer} "
            "GROUP BY c.source, c.batch_id ORDER BY count(*) DESC").fetchall()
        if found:
            self.raw.execute(
                f"DELETE FROM temp.{self.rows_table} WHERE EXISTS (SELECT 1 FROM main.{t} c "
                f"WHERE {self._key_match(self.rows_table, 'c')} "
                f"AND c.source <> {self.rows_table}.source{newer})")
        return found

    def publish(self) -> int:
        t = self.spec.table
        deferred: list[str] = []
        if self.bulk and (self.raw.execute(f"SELECT max(id) FROM main.{t}").fetchone()[0]
                          or 0) < self.staged:
            rows = self.raw.execute(
                "SELECT name, sql FROM main.sqlite_master WHERE type = 'index' AND "
                "tbl_name = ? AND sql IS NOT NULL AND sql NOT LIKE 'CREATE UNIQUE%'",
                (t,)).fetchall()
            for name, sql in rows:
                self.raw.execute(f'DROP INDEX main."{name}"')
                deferred.append(sql)
        cols = ", ".join(self.columns)
        before = self.raw.total_changes
        self.raw.execute(
            f"INSERT INTO main.{t} ({cols}, batch_id) SELECT {cols}, '{self.batch_id}' "
            f"FROM temp.{self.rows_table} WHERE true ORDER BY rowid "
            "ON CONFLICT (source, external_id) DO NOTHING")
        inserted: int = self.raw.total_changes - before
        self.raw.execute(
            "INSERT INTO main.rejected_rows (batch_id, row_number, field, problem, detail, raw) "
            f"SELECT '{self.batch_id}', row_number, field, problem, detail, raw "
            f"FROM temp.{self.rejected_table} ORDER BY rowid")
        if deferred:
            # The index build's sorter: with a small page cache it sorts in cache-sized runs
            # (merged by 2 threads) instead of one huge in-memory sort -- about twice as
            # fast (measured on 1M rows: 1.35 s -> 0.6 s).
            threads = self.raw.execute("PRAGMA threads").fetchone()[0]
            cache = self.raw.execute("PRAGMA cache_size").fetchone()[0]
            self.raw.execute("PRAGMA threads=2")
            self.raw.execute(f"PRAGMA cache_size=-{_SQLITE_SORT_CACHE_KIB}")
            try:
                for sql in deferred:
                    self.raw.execute(sql)
            finally:
                self.raw.execute(f"PRAGMA cache_size={int(cache)}")
                self.raw.execute(f"PRAGMA threads={int(threads)}")
        return inserted

    _temp_cache = -2000

    def drop(self) -> None:
        if self.raw.in_transaction:
            self.raw.rollback()
        self.raw.execute(f"DROP TABLE IF EXISTS temp.{self.rows_table}")
        self.raw.execute(f"DROP TABLE IF EXISTS temp.{self.rejected_table}")
        # the pooled connection gives back the staging cache
        self.raw.execute(f"PRAGMA temp.cache_size={self._temp_cache}")
        self.raw.execute("PRAGMA shrink_memory")


class _PostgresStage(_Stage):
    """Session temporary tables filled with ``COPY`` (committed per chunk); one
    ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` in file order to publish. psycopg's
    ``Copy.write_row`` formats the rows (COPY text escaping of tabs, newlines, backslashes,
    ``None`` as ``\\N``, ``bool`` as ``t``/``f``; its C implementation)."""

    def create(self) -> None:
        cols = ", ".join(f"{c} text" for c in self.columns)
        with self.raw.cursor() as cur:
            cur.execute(f"CREATE TEMP TABLE {self.rows_table} (seq bigserial, {cols})")
            cur.execute(f"CREATE TEMP TABLE {self.rejected_table} (seq bigserial, "
                        "row_number integer, field text, problem text, detail text, raw text)")
        self.raw.commit()

    def prepare(self, p: _Processed) -> list[tuple[Any, ...]]:
        if not p.columns["source"]:
            return []
        return list(zip(*(p.columns[c] for c in self.columns), strict=True))

    def write(self, payload: list[tuple[Any, ...]], rejected: list[dict[str, Any]]) -> None:
        with self.raw.cursor() as cur:
            if payload:
                with cur.copy(f"COPY {self.rows_table} ({', '.join(self.columns)}) "
                              "FROM STDIN") as cp:
                    for row in payload:
                        cp.write_row(row)
                self.staged += len(payload)
            if rejected:
                cur.executemany(
                    f"INSERT INTO {self.rejected_table} (row_number, field, problem, detail, "
                    "raw) VALUES (%s, %s, %s, %s, %s)",
                    [(r["row_number"], r["field"], r["problem"], r["detail"],
                      json.dumps(r["raw"], ensure_ascii=False)) for r in rejected])
        self.raw.commit()

    def _max_id(self) -> int:
        with self.raw.cursor() as cur:
            cur.execute(f"SELECT coalesce(max(id), 0) FROM {self.spec.table}")
            return int(cur.fetchone()[0])

    def _drop_stored_elsewhere(self, floor: int | None) -> list[Any]:
        t = self.spec.table
        with self.raw.cursor() as cur:
            cur.execute(f"SELECT 1 FROM {t} WHERE id > %s LIMIT 1", (floor or 0,))
            if cur.fetchone() is None:
                return []
            tf = self.spec.time_field
            match = (f"c.category = s.category AND c.region = s.region AND c.day = s.day::date "
                     f"AND c.external_id = s.external_id AND c.{tf} = s.{tf}::timestamptz "
                     "AND c.source <> s.source"
                     + (f" AND c.id > {int(floor)}" if floor is not None else ""))
            cur.execute(f"SELECT c.source, c.batch_id, count(*) FROM {self.rows_table} s "
                        f"JOIN {t} c ON {match} GROUP BY c.source, c.batch_id "
                        "ORDER BY count(*) DESC")
            found: list[Any] = cur.fetchall()
            if found:
                cur.execute(f"DELETE FROM {self.rows_table} s USING {t} c WHERE {match}")
        return found

    def publish(self) -> int:
        t = self.spec.table
        select_list = ", ".join(f"{c}{_CAST_PG.get(c, '')}" for c in self.columns)
        with self.raw.cursor() as cur:
            cur.execute(f"INSERT INTO {t} ({', '.join(self.columns)}, batch_id) "
                        f"SELECT {select_list}, %s FROM {self.rows_table} ORDER BY seq "
                        "ON CONFLICT (source, external_id) DO NOTHING", (self.batch_id,))
            inserted: int = cur.rowcount
            cur.execute("INSERT INTO rejected_rows (batch_id, row_number, field, problem, "
                        "detail, raw) SELECT %s, row_number, field, problem, detail, raw::json "
                        f"FROM {self.rejected_table} ORDER BY seq", (self.batch_id,))
        return inserted

    def drop(self) -> None:
        self.raw.rollback()
        with self.raw.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {self.rows_table}")
            cur.execute(f"DROP TABLE IF EXISTS {self.rejected_table}")
        self.raw.commit()

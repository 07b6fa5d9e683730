"""Keyset pagination, one codec for every list (API routes and service functions alike).

A page is ``{"items": [...], "next_cursor": "..." | null}``. The cursor is opaque to clients:
URL-safe base64 (unpadded) of the JSON list of the last item's sort key, e.g.
``["complaints|fireworks|150100", "2026-11-02"]``. The next page holds the items strictly after
that key in the list's (total, stable) order, so pages neither repeat nor skip rows while rows
are added elsewhere in the order. A cursor this service did not issue is
:class:`InvalidCursor`: a 422 problem naming the ``cursor`` query field, like any other
invalid query parameter.

Two ways to apply it:

* :func:`keyset_after` -- a SQL ``WHERE`` for a multi-column order with mixed directions
  (``(a > x) OR (a = x AND b < y) OR ...``), used with ``ORDER BY`` the same columns and
  ``LIMIT limit + 1``; :func:`page_of` then cuts the page and encodes the next cursor.
* :func:`keyset_page` -- both at once for a ``SELECT`` of ORM rows: the ``WHERE`` after the
  cursor, ``ORDER BY`` and ``LIMIT``, the page and its next cursor (the key read off the rows).
* :func:`paginate_sorted` -- for small lists computed in Python (e.g. the series list).

:func:`where_given` adds the optional filters of a list (``column <op> value`` for each value
given) to its statement.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

from sqlalchemy import Select, and_, false, or_
from sqlalchemy.orm import QueryableAttribute, Session
from sqlalchemy.sql.elements import ColumnElement

from service.errors import UnprocessableContent
from service.store.base import as_utc

__all__ = ["S", "KeyValue", "InvalidCursor", "encode_cursor", "decode_cursor", "keyset_after",
           "page_of", "keyset_page", "paginate_sorted", "where_given"]

T = TypeVar("T")
S = TypeVar("S", bound="Select[*tuple[Any, ...]]")  # any select (SQLAlchemy 2.1: variadic)
KeyValue = str | int | float | bool | dt.date | None

_CURSOR_MESSAGE = ("the cursor is not one this API returned (pass `next_cursor` of the "
                   "previous page unchanged)")


class InvalidCursor(UnprocessableContent):
    """A cursor this service did not issue (422, the ``cursor`` query field named)."""

    def __init__(self) -> None:
        super().__init__(f"invalid request: query.cursor: {_CURSOR_MESSAGE}",
                         errors=[{"loc": ["query", "cursor"], "msg": _CURSOR_MESSAGE,
                                  "type": "value_error"}])


def _plain(value: KeyValue) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def encode_cursor(key: Sequence[KeyValue]) -> str:
    """Opaque cursor of one sort key (a sequence of str/int/float/date values)."""
    raw = json.dumps([_plain(v) for v in key], separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


_INT64 = range(-(2**63), 2**63)  # what a key column holds, on SQLite and PostgreSQL alike


def _convert(value: Any, kind: type) -> Any:
    """One key value of a cursor as ``kind``; TypeError / ValueError / OverflowError for a
    value no issued cursor holds (sort keys are never null; integers are 64-bit; instants
    convert to UTC; numbers are finite)."""
    if value is None:
        raise TypeError("a sort key is never null")
    if kind is dt.datetime:
        return as_utc(dt.datetime.fromisoformat(value)).astimezone(dt.UTC)
    if kind is dt.date:
        return dt.date.fromisoformat(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value):
            raise TypeError("not a finite number")
        return float(value)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise TypeError(f"not a {kind.__name__}")
    if kind is int and value not in _INT64:
        raise ValueError("not a 64-bit integer")
    return value


def decode_cursor(cursor: str, types: Sequence[type]) -> list[Any]:
    """The sort key in ``cursor``, converted to ``types``.

    Raises
    ------
    InvalidCursor
        (422) If ``cursor`` is not one :func:`encode_cursor` made for this order.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.b64decode(padded, altchars=b"-_", validate=True))
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError("wrong shape")
        return [_convert(v, t) for v, t in zip(values, types, strict=True)]
    except (ValueError, TypeError, OverflowError, UnicodeDecodeError) as exc:
        raise InvalidCursor() from exc


def keyset_after(order: Sequence[tuple[ColumnElement[Any] | QueryableAttribute[Any], bool]],
                 key: Sequence[Any]) -> ColumnElement[bool]:
    """``WHERE`` clause selecting rows strictly after ``key`` in ``order``.

    ``order`` is ``[(column, descending), ...]`` — the same columns, in the same order, as the
    statement's ``ORDER BY`` (the last one unique, so the order is total).
    """
    clauses: list[ColumnElement[bool]] = []
    for i, (col, desc) in enumerate(order):
        equal = [c == v for (c, _), v in zip(order[:i], key[:i], strict=True)]
        beyond = col < key[i] if desc else col > key[i]
        clauses.append(and_(*equal, beyond))
    return or_(*clauses) if clauses else false()


def page_of(rows: Sequence[T], limit: int, key: Callable[[T], Sequence[KeyValue]]
            ) -> tuple[list[T], str | None]:
    """Cut ``rows`` (fetched with ``LIMIT limit + 1``) to a page and its next cursor."""
    page = list(rows[:limit])
    nxt = encode_cursor(key(page[-1])) if len(rows) > limit and page else None
    return page, nxt


def paginate_sorted(items: Sequence[T], *, key: Callable[[T], Sequence[KeyValue]],
                    types: Sequence[type], cursor: str | None, limit: int
                    ) -> tuple[list[T], str | None]:
    """Page of ``items`` (already sorted ascending by ``key``, unique) after ``cursor``."""
    rest: Sequence[T] = items
    if cursor is not None:
        after = tuple(decode_cursor(cursor, types))
        rest = [it for it in items if tuple(key(it)) > after]
    return page_of(rest[: limit + 1], limit, key)


def keyset_page(session: Session, stmt: Select[T],
                order: Sequence[tuple[QueryableAttribute[Any], bool]], *,
                types: Sequence[type], cursor: str | None, limit: int
                ) -> tuple[list[T], str | None]:
    """Page of the ORM rows ``stmt`` selects, in ``order`` (``[(column, descending), ...]``,
    the last column unique) after ``cursor`` (decoded as ``types``), and the next cursor.

    The next cursor holds the last row's values of the ``order`` columns (datetimes as UTC).
    """
    if cursor:
        stmt = stmt.where(keyset_after(order, decode_cursor(cursor, types)))
    stmt = stmt.order_by(*(col.desc() if desc else col.asc() for col, desc in order))
    rows = list(session.scalars(stmt.limit(limit + 1)))
    return page_of(rows, limit, lambda row: [_key_value(getattr(row, col.key))
                                             for col, _ in order])


def _key_value(value: Any) -> Any:
    return as_utc(value) if isinstance(value, dt.datetime) else value


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}


def where_given(stmt: S, *tests: tuple[QueryableAttribute[Any],
                                       Literal["==", ">", ">=", "<", "<="], Any]) -> S:
    """``stmt`` with ``WHERE column <op> value`` for each ``(column, op, value)`` whose value
    is given, that is true (not None, empty, false or 0): the optional filters of a list. A
    filter whose value may be 0 or false needs its own ``if``."""
    for column, op, value in tests:
        if value:
            stmt = stmt.where(_OPS[op](column, value))
    return stmt

"""Series: daily counts per (signal, category, region), zero-filled.

A series id is ``signal|category|region`` (DESIGN.md), ``signal`` in {complaints, violations}:
``complaints`` counts complaint records, ``violations`` counts enforcement actions that found a
violation. Days are zero-filled between the first and the last record day of the signal.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from models.series import week_start
from service.errors import NotFound, UnprocessableContent
from service.store.tables import Complaint, EnforcementAction

__all__ = ["SIGNALS", "SeriesId", "parse_series_id", "list_series", "series_counts",
           "daily_frame", "signal_range"]

SIGNALS = ("complaints", "violations")


@dataclass(frozen=True)
class SeriesId:
    signal: str
    category: str
    region: str

    def __str__(self) -> str:
        return f"{self.signal}|{self.category}|{self.region}"


def parse_series_id(value: str) -> SeriesId:
    parts = value.split("|")
    if len(parts) != 3 or not all(parts):
        raise UnprocessableContent(
            f"series id '{value}' is not of the form signal|category|region"
        )
    if parts[0] not in SIGNALS:
        raise UnprocessableContent(
            f"series id '{value}': signal must be one of {', '.join(SIGNALS)}"
        )
    return SeriesId(*parts)


def _source(signal: str) -> tuple[Any, ColumnElement[bool] | None]:
    if signal == "complaints":
        return Complaint, None
    return EnforcementAction, EnforcementAction.violation_found.is_(True)


def _filtered(stmt: Select[Any], cond: ColumnElement[bool] | None) -> Select[Any]:
    return stmt if cond is None else stmt.where(cond)


def signal_range(session: Session, signal: str) -> tuple[dt.date, dt.date] | None:
    table, cond = _source(signal)
    lo, hi = session.execute(_filtered(select(func.min(table.day), func.max(table.day)),
                                       cond)).one()
    if lo is None:
        return None
    return _as_date(lo), _as_date(hi)


def _as_date(v: Any) -> dt.date:
    return v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v))


def list_series(*, session: Session) -> list[dict[str, Any]]:
    """One entry per series: id, signal, category, region, first/last day, total count."""
    out: list[dict[str, Any]] = []
    for signal in SIGNALS:
        table, cond = _source(signal)
        stmt = _filtered(
            select(table.category, table.region, func.min(table.day), func.max(table.day),
                   func.count()).group_by(table.category, table.region),
            cond,
        ).order_by(table.category, table.region)
        for category, region, first, last, total in session.execute(stmt):
            out.append({
                "id": str(SeriesId(signal, category, region)), "signal": signal,
                "category": category, "region": region,
                "first_date": _as_date(first), "last_date": _as_date(last), "total": int(total),
            })
    return out


def daily_frame(
    *,
    session: Session,
    signal: str = "complaints",
    until: dt.date | None = None,
    series_ids: list[str] | None = None,
) -> pd.DataFrame:
    """Zero-filled daily counts of every series of ``signal`` as a long frame.

    Returns
    -------
    DataFrame ``unique_id, ds, y`` (``ds`` tz-naive midnight), sorted.
    """
    table, cond = _source(signal)
    rng = signal_range(session, signal)
    if rng is None:
        return pd.DataFrame({"unique_id": pd.Series(dtype=str),
                             "ds": pd.Series(dtype="datetime64[ns]"),
                             "y": pd.Series(dtype=float)})
    first, last = rng
    if until is not None:
        last = min(last, until)
    stmt = _filtered(
        select(table.category, table.region, table.day, func.count())
        .where(table.day <= last)
        .group_by(table.category, table.region, table.day),
        cond,
    )
    rows = session.execute(stmt).all()
    raw = pd.DataFrame(rows, columns=["category", "region", "ds", "y"])
    raw["unique_id"] = signal + "|" + raw["category"] + "|" + raw["region"]
    if series_ids is not None:
        raw = raw[raw["unique_id"].isin(series_ids)]
    raw["ds"] = pd.to_datetime(raw["ds"])
    days = pd.date_range(pd.Timestamp(first), pd.Timestamp(last), freq="D")
    wide = raw.pivot_table(index="ds", columns="unique_id", values="y", aggfunc="sum")
    wide = wide.reindex(days, fill_value=0).fillna(0)
    long = wide.melt(ignore_index=False, var_name="unique_id", value_name="y").reset_index(
        names="ds")
    long["y"] = long["y"].astype(float)
    return long[["unique_id", "ds", "y"]].sort_values(["unique_id", "ds"]).reset_index(drop=True)


def series_counts(
    *,
    session: Session,
    series_id: str,
    freq: Literal["D", "W"] = "D",
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
) -> pd.DataFrame:
    """Zero-filled counts of one series, daily or per ISO week (Monday label).

    Returns
    -------
    DataFrame ``date, count``.
    """
    sid = parse_series_id(series_id)
    table, cond = _source(sid.signal)
    rng = signal_range(session, sid.signal)
    exists = session.scalar(_filtered(
        select(func.count()).select_from(table)
        .where(table.category == sid.category, table.region == sid.region), cond))
    if rng is None or not exists:
        raise NotFound(f"series '{series_id}' has no records")
    first, last = rng
    lo = max(first, date_from) if date_from else first
    hi = min(last, date_to) if date_to else last
    if date_from and date_to and date_from > date_to:
        raise UnprocessableContent("'from' is after 'to'")
    stmt = _filtered(
        select(table.day, func.count())
        .where(table.category == sid.category, table.region == sid.region,
               table.day >= lo, table.day <= hi)
        .group_by(table.day),
        cond,
    )
    raw = pd.DataFrame(session.execute(stmt).all(), columns=["date", "count"])
    days = pd.date_range(pd.Timestamp(lo), pd.Timestamp(hi), freq="D")
    s = pd.Series(raw["count"].to_numpy(), index=pd.DatetimeIndex(pd.to_datetime(raw["date"])),
                  dtype=float)
    s = s.reindex(days, fill_value=0.0)
    if freq == "W":
        s = s.groupby(week_start(days).to_numpy()).sum()
    return pd.DataFrame({"date": pd.DatetimeIndex(s.index).date,
                         "count": s.to_numpy().astype(int)})

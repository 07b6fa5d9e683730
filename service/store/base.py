"""The declarative base every table derives from, its naming convention, ids and UTC time.

Tables live next to the stage that owns them (``service.store.tables`` for records, series,
keys and forecast runs; ``service.campaigns.tables``, ``service.dispatch.tables``,
``service.scheduler.tables``, ``service.audit``) and each imports :class:`Base` from here; the
complete schema is assembled by :mod:`service.schema` (Alembic's environment and the
migration test import it), so no stage imports another to register its tables.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, overload

from sqlalchemy import JSON, DateTime, Dialect, MetaData
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

__all__ = ["NAMING", "Base", "UtcDateTime", "utcnow", "new_id", "as_utc"]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """Now, timezone-aware in UTC (what every timestamp column stores)."""
    return dt.datetime.now(dt.UTC)


def new_id() -> str:
    """A new 32-hex-digit id (UUID4) for the string primary keys."""
    return uuid.uuid4().hex


@overload
def as_utc(value: dt.datetime) -> dt.datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """``value`` with UTC attached when it is naive (SQLite hands timestamps back without
    their zone; every timestamp is stored in UTC); an aware value or None is returned as is."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


class UtcDateTime(TypeDecorator[dt.datetime]):
    """The column type of every timestamp: ``timestamptz`` on PostgreSQL, and on every backend
    a value goes in converted to UTC (a naive one is taken as UTC) and comes back aware in UTC
    (SQLite keeps no zone, so without this it would hand back naive wall times)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect
                           ) -> dt.datetime | None:
        return None if value is None else as_utc(value).astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect
                             ) -> dt.datetime | None:
        return None if value is None else as_utc(value).astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}

"""Field types shared by response models."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator

__all__ = ["UtcDatetime"]


def _utc(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive UTC datetimes; RFC 3339 (OpenAPI ``date-time``) needs an offset."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


#: A datetime serialised with its UTC offset even when the database returned it naive.
UtcDatetime = Annotated[dt.datetime, AfterValidator(_utc)]

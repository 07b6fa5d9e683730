"""Field types shared by response models."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator

from service.store.base import as_utc

__all__ = ["UtcDatetime"]


#: A datetime serialised with its UTC offset even when the database returned it naive (SQLite
#: hands back naive UTC datetimes; RFC 3339, OpenAPI's ``date-time``, needs an offset).
UtcDatetime = Annotated[dt.datetime, AfterValidator(as_utc)]

"""The complete database schema: every stage's tables on :class:`service.store.base.Base`.

Each stage declares its own tables (:mod:`service.store.tables`, :mod:`service.audit`,
:mod:`service.campaigns.tables`, :mod:`service.dispatch.tables`,
:mod:`service.scheduler.tables`); this module, above them all, imports them so that
:data:`metadata` holds every table. Alembic's environment and the migration test import it;
no table module imports another stage to register its tables (a table's foreign keys name
only tables of its own stage or of a stage below, which its module imports).
"""

from __future__ import annotations

from service import audit
from service.campaigns import tables as campaign_tables
from service.dispatch import tables as dispatch_tables
from service.scheduler import tables as scheduler_tables
from service.store import tables as store_tables
from service.store.base import Base

__all__ = ["metadata", "TABLE_MODULES"]

#: The modules that declare tables, low stages first.
TABLE_MODULES = (store_tables, audit, campaign_tables, dispatch_tables, scheduler_tables)
metadata = Base.metadata

"""Apply and inspect Alembic migrations programmatically.

Alembic is imported only when a migration has to run: :func:`upgrade` first compares the
database's ``alembic_version`` with the head revision read from the version files' text
(:func:`script_heads`), so commands on a current database start without loading Alembic.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["alembic_config", "upgrade", "current_revision", "head_revision", "is_current",
           "script_heads", "database_revisions"]

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_ASSIGN = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+)$", re.MULTILINE)
_QUOTED = re.compile(r"""["']([^"']+)["']""")


def alembic_config(url: str | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@cache
def script_heads() -> frozenset[str]:
    """Head revisions of the version files, read as text (no Alembic import): revisions that
    no other file names as its ``down_revision``. Empty if a file cannot be read this way."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (_MIGRATIONS / "versions").glob("*.py"):
        found = {m.group(1): m.group(2) for m in _ASSIGN.finditer(path.read_text())}
        rev = _QUOTED.findall(found.get("revision", ""))
        if len(rev) != 1:
            return frozenset()
        revisions.add(rev[0])
        parents.update(_QUOTED.findall(found.get("down_revision", "")))
    return frozenset(revisions - parents)


def database_revisions(engine: Engine) -> frozenset[str] | None:
    """The revisions in the database's ``alembic_version`` table (None without the table)."""
    try:
        with engine.connect() as conn:
            return frozenset(str(r) for r in conn.execute(
                text("SELECT version_num FROM alembic_version")).scalars())
    except DBAPIError:
        return None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision`` (a no-op, without loading
    Alembic, when it is at the head already)."""
    if revision == "head":
        heads = script_heads()
        if heads and database_revisions(engine) == heads:
            return
    from alembic import command

    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def is_current(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()

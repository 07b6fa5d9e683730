"""Engine and session factory; SQLite gets WAL, foreign keys and a busy timeout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["make_engine", "make_sessionmaker"]


def _sqlite_pragmas(busy_ms: int) -> Any:
    def apply(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={busy_ms}")
        cur.close()
    return apply


def make_engine(url: str, *, lock_timeout: float = 30.0, pool_size: int | None = None,
                max_overflow: int | None = None, pool_timeout: float | None = None
                ) -> Engine:
    """Create the engine for ``url``; creates the SQLite file's folder when needed.

    ``hide_parameters`` keeps record values (personal data) out of SQL error messages and logs.
    ``lock_timeout`` (seconds): how long a statement waits for a lock (SQLite's busy timeout,
    PostgreSQL's ``lock_timeout``) before it fails -- the API answers that with 503. The pool
    arguments bound the connections (``pool_timeout``: how long a request waits for one).
    """
    parsed = make_url(url)
    pool: dict[str, Any] = {k: v for k, v in (("pool_size", pool_size),
                                              ("max_overflow", max_overflow),
                                              ("pool_timeout", pool_timeout)) if v is not None}
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        if not db or db == ":memory:":
            pool = {}  # a single-connection pool takes no sizes
        engine = create_engine(url, connect_args={"timeout": lock_timeout},
                               hide_parameters=True, **pool)
        event.listen(engine, "connect", _sqlite_pragmas(int(lock_timeout * 1000)))
        return engine
    return create_engine(url, pool_pre_ping=True, hide_parameters=True, connect_args={
        "options": f"-c lock_timeout={int(lock_timeout * 1000)}"}, **pool)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)

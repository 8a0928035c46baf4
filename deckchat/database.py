"""Database engine settings: SQLite in WAL mode with a busy timeout, and immediate transactions on demand."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import Connection, Engine, event

from .extensions import db


def configure_engine(engine: Engine) -> None:
    """Apply SQLite pragmas on connect and let callers ask for `BEGIN IMMEDIATE`."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        # Hand transaction control to SQLAlchemy so the "begin" hook below decides how to BEGIN.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=15000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A deferred transaction that reads and then writes fails with SQLITE_BUSY under concurrent
        # writers instead of waiting; IMMEDIATE takes the write lock up front and honours busy_timeout.
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def write_transaction() -> Iterator[Connection]:
    """A Core connection in a transaction that takes the write lock first (SQLite) and commits on exit."""
    with db.engine.connect().execution_options(sqlite_immediate=True) as conn:
        with conn.begin():
            yield conn


def lock_for_writing() -> None:
    """End the ORM session's read snapshot and start its next transaction with the write lock (SQLite), for a
    write that reads first: a deferred transaction whose snapshot predates another writer's commit cannot take
    the lock and fails at once, where an immediate one waits its turn (busy_timeout). Loaded objects expire."""
    db.session.commit()
    db.session.connection(execution_options={"sqlite_immediate": True})

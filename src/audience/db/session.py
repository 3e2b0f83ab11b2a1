"""Transactions: one per request (or CLI command), committed by its owner, never by a helper."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy import exc as sa_exc

from audience.db.engine import SQLITE_NO_WAIT, SQLITE_WRITE
from audience.errors import DatabaseBusy
from audience.kit import metrics


@contextmanager
def transaction(engine: Engine, *, write: bool) -> Iterator[Connection]:
    """A connection whose transaction begins at its first statement (so that nothing is
    locked while the caller is still preparing its work); committed when the block ends,
    rolled back when it raises. A pool without a free connection in time is DatabaseBusy."""
    try:
        connection = engine.connect()
    except sa_exc.TimeoutError:
        metrics.POOL_WAITS.inc()
        raise DatabaseBusy() from None
    with connection as conn:
        if write:
            conn = conn.execution_options(**{SQLITE_WRITE: True})
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


@contextmanager
def busy_skips(engine: Engine) -> Iterator[Connection]:
    """A short write transaction that gives up at once (DatabaseBusy) rather than wait for
    a lock: for bookkeeping that must never make a request wait (SQLite: no busy wait for
    the write lock; PostgreSQL: a lock timeout of a few milliseconds)."""
    with transaction(engine, write=True) as conn:
        conn = conn.execution_options(**{SQLITE_NO_WAIT: True})
        if conn.dialect.name != "sqlite":
            conn.exec_driver_sql("SET LOCAL lock_timeout = '20ms'")
        yield conn


def driver_connection(conn: Connection) -> Any:
    """The DBAPI connection under `conn`, inside conn's transaction (begun now if need be),
    for the bulk statements that bypass SQLAlchemy."""
    if not conn.in_transaction():
        conn.begin()
    driver = conn.connection.driver_connection
    assert driver is not None
    return driver

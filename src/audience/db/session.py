"""Transactions: one per request (or CLI command), committed by its owner, never by a helper."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine

from audience.db.engine import SQLITE_WRITE


@contextmanager
def transaction(engine: Engine, *, write: bool) -> Iterator[Connection]:
    """A connection whose transaction begins at its first statement (so that nothing is
    locked while the caller is still preparing its work); committed when the block ends,
    rolled back when it raises."""
    with engine.connect() as conn:
        if write:
            conn = conn.execution_options(**{SQLITE_WRITE: True})
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


def driver_connection(conn: Connection) -> Any:
    """The DBAPI connection under `conn`, inside conn's transaction (begun now if need be),
    for the bulk statements that bypass SQLAlchemy."""
    if not conn.in_transaction():
        conn.begin()
    driver = conn.connection.driver_connection
    assert driver is not None
    return driver

"""Sessions: one transaction per request (or CLI command), committed by the edge."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from audience.db.engine import SQLITE_WRITE


@contextmanager
def transaction(engine: Engine, *, write: bool) -> Iterator[Connection]:
    """A connection inside one transaction: committed on success, rolled back on error."""
    with engine.connect() as conn:
        if write:
            conn = conn.execution_options(**{SQLITE_WRITE: True})
        with conn.begin():
            yield conn

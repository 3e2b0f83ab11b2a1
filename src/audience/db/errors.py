"""Driver errors translated at the boundary into the application's own (errors.py).

A deadlock or serialization failure may succeed if the whole transaction runs again
(RetryableDatabaseError: the request edge retries once); a lock, statement or pool timeout,
SQLite's busy lock and a lost connection mean "try again later" (DatabaseBusy: 503 with
Retry-After). Everything else is left alone: a bug, answered 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import exc as sa_exc

from audience.errors import DatabaseBusy, RetryableDatabaseError

#: SQLSTATEs worth one more try of the whole transaction.
RETRYABLE = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure
#: SQLSTATEs that mean the database is busy or unreachable for now.
BUSY = frozenset(
    {
        "55P03",  # lock_not_available (lock_timeout)
        "57014",  # query_canceled (statement_timeout)
        "25P03",  # idle_in_transaction_session_timeout
        "53300",  # too_many_connections
        "57P01",  # admin_shutdown
        "57P03",  # cannot_connect_now
    }
)


def translate(error: BaseException) -> DatabaseBusy | None:
    """The application error a driver error stands for, or None to let it through."""
    if isinstance(error, sa_exc.DBAPIError):
        error = error.orig if error.orig is not None else error
    if isinstance(error, sa_exc.TimeoutError):  # the pool had no connection in time
        return DatabaseBusy()
    if isinstance(error, psycopg.Error):
        state = error.sqlstate or ""
        if state in RETRYABLE:
            return RetryableDatabaseError()
        if state in BUSY or state.startswith("08") or isinstance(error, psycopg.OperationalError):
            return DatabaseBusy()
        return None
    if type(error).__name__ == "OperationalError" and "locked" in str(error):  # sqlite3
        return DatabaseBusy()
    return None


@contextmanager
def translated() -> Iterator[None]:
    """Translate what the statements inside raise (for calls that bypass SQLAlchemy)."""
    try:
        yield
    except Exception as exc:
        mapped = translate(exc)
        if mapped is None:
            raise
        raise mapped from exc

"""Engine construction: SQLite tuned for a server, PostgreSQL pooled through psycopg 3.

Every connection carries the configured timeouts, so that no statement, lock or idle
transaction can hold a worker for long, and driver errors leave as the application's own
(db/errors.py). SQL parameters are never written into error messages or logs
(`hide_parameters`): they hold contacts' emails.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext

from audience.config import Settings
from audience.db.distribute import on_citus
from audience.db.errors import translate
from audience.kit import metrics

#: Execution option that asks SQLite for a write transaction (BEGIN IMMEDIATE), so that a
#: writer waits its turn on busy_timeout instead of failing with "database is locked".
SQLITE_WRITE = "audience_sqlite_write"

#: Execution option for a SQLite write that must not wait for the lock (db/session.busy_skips).
SQLITE_NO_WAIT = "audience_sqlite_no_wait"

#: Execution option carrying how PostgreSQL receives a bulk write: "copy" or "unnest"
#: (Settings.bulk_write; read by the contacts repository).
BULK_WRITE = "audience_bulk_write"


def build_engine(settings: Settings) -> Engine:
    """The one engine of a process, configured for its dialect."""
    engine = _sqlite_engine(settings) if settings.is_sqlite else _postgres_engine(settings)
    event.listen(engine, "handle_error", _translate_error)
    event.listen(engine, "checkout", lambda *_: metrics.POOL_IN_USE.inc())
    event.listen(engine, "checkin", lambda *_: metrics.POOL_IN_USE.dec())
    return engine


def postgres_timeouts(settings: Settings) -> dict[str, int]:
    """The server's timeouts every PostgreSQL connection starts with, in milliseconds."""

    def ms(seconds: float) -> int:
        return max(1, round(seconds * 1000))  # 0 would mean no limit at all

    return {
        "statement_timeout": ms(settings.db_statement_timeout_seconds),
        "lock_timeout": ms(settings.db_lock_timeout_seconds),
        "idle_in_transaction_session_timeout": ms(settings.db_idle_in_transaction_timeout_seconds),
    }


def postgres_options(settings: Settings) -> str:
    """The server settings every PostgreSQL connection starts with (libpq `options`)."""
    return " ".join(f"-c {name}={value}" for name, value in postgres_timeouts(settings).items())


def citus_transaction_settings(settings: Settings) -> str:
    """What a transaction on Citus begins with: the statement and lock timeouts again, as
    SET LOCAL, which Citus passes on to the connections it opens to the workers in that
    transaction, where the locks are waited for (a session's own settings stay on the
    coordinator: without this, a request would wait for a worker's row lock for ever)."""
    timeouts = postgres_timeouts(settings)
    return "; ".join(
        [
            "SET LOCAL citus.propagate_set_commands TO 'local'",
            *(
                f"SET LOCAL {name} = {timeouts[name]}"
                for name in ("statement_timeout", "lock_timeout")
            ),
        ]
    )


def _postgres_engine(settings: Settings) -> Engine:
    options = postgres_options(settings)
    engine = create_engine(
        settings.sqlalchemy_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_pre_ping=True,
        hide_parameters=True,
        connect_args={
            "connect_timeout": settings.db_connect_timeout_seconds,
            "options": options,
            "application_name": "audience",
        },
        execution_options={BULK_WRITE: settings.bulk_write},
    )
    on_citus_begin = citus_transaction_settings(settings)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if on_citus(conn):
            conn.exec_driver_sql(on_citus_begin)

    return engine


def _sqlite_engine(settings: Settings) -> Engine:
    path = settings.sqlite_path
    if path is not None:
        create_private_file(path)
    busy_ms = int(settings.sqlite_busy_timeout_seconds * 1000)
    engine = create_engine(
        settings.sqlalchemy_url,
        hide_parameters=True,
        connect_args={"check_same_thread": False, "timeout": busy_ms / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver level so that BEGIN is ours to emit (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if not options.get(SQLITE_NO_WAIT):
            conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(SQLITE_WRITE) else "BEGIN")
            return
        conn.exec_driver_sql("PRAGMA busy_timeout = 0")
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        finally:
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {busy_ms}")

    return engine


def create_private_file(path: str | os.PathLike[str]) -> None:
    """Create a file readable by its owner alone (0600) unless it exists; SQLite gives its
    -wal and -shm files the permissions of the database file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _translate_error(context: ExceptionContext) -> None:
    mapped = translate(context.original_exception)
    if mapped is not None:
        raise mapped from context.original_exception

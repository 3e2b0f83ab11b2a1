"""Engine construction: SQLite tuned for a server, PostgreSQL pooled through psycopg 3."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event

from audience.config import Settings

#: Execution option that asks SQLite for a write transaction (BEGIN IMMEDIATE), so that a
#: writer waits its turn on busy_timeout instead of failing with "database is locked".
SQLITE_WRITE = "audience_sqlite_write"

SQLITE_BUSY_TIMEOUT_MS = 60_000

#: Execution option carrying how PostgreSQL receives a bulk write: "copy" or "unnest"
#: (Settings.bulk_write; read by the contacts repository).
BULK_WRITE = "audience_bulk_write"


def build_engine(settings: Settings) -> Engine:
    """The one engine of a process, configured for its dialect."""
    if settings.is_sqlite:
        return _sqlite_engine(settings)
    return create_engine(
        settings.sqlalchemy_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        execution_options={BULK_WRITE: settings.bulk_write},
    )


def _sqlite_engine(settings: Settings) -> Engine:
    path = settings.sqlite_path
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        settings.sqlalchemy_url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver level so that BEGIN is ours to emit (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get(SQLITE_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine

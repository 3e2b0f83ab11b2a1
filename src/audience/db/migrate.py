"""Bring a database's schema up to date with the one Alembic history.

Any number of processes may start at once (several `audience serve` with auto-migrate, a
`db upgrade` beside them): migrations are serialised, by a transaction-scoped advisory lock on
PostgreSQL and by an exclusive lock on a file beside the database on SQLite, so one process
migrates and the others then find the schema up to date.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

from audience.db.distribute import Progress, distribute, is_citus
from audience.db.engine import create_private_file
from audience.db.session import transaction

MIGRATIONS = Path(__file__).with_name("migrations")
#: The advisory lock key that every Audience process migrating a database agrees on.
MIGRATION_LOCK = 0x61756469656E6365  # "audience"


def alembic_config() -> Config:
    """An Alembic configuration pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine, progress: Progress | None = None) -> list[str]:
    """Apply every pending migration (idempotent; safe to run from several processes). On
    a Citus coordinator the tables are then distributed (db/distribute.py), in the same
    transaction: the names of those it distributed."""
    config = alembic_config()
    with _sqlite_lock(engine), transaction(engine, write=True) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        citus = is_citus(conn)
        if citus:  # DDL next to reference tables' foreign keys: one connection per node
            conn.execute(text("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'"))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        return distribute(conn, progress) if citus else []


@contextmanager
def _sqlite_lock(engine: Engine) -> Iterator[None]:
    """An exclusive lock on `<database>.migrate.lock` (SQLite files only)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    path = f"{database}.migrate.lock"
    create_private_file(path)
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock

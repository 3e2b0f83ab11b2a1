"""The databases: a fresh one for each setup, emptied between groups, described for the report."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from audience.config import Settings
from audience.db.engine import build_engine
from audience.db.migrate import upgrade
from audience.db.models import MembershipStatus, contact_lists, contacts, lists
from bench.datasets import Dataset, batches
from bench.floor_postgres import PostgresFloor
from bench.server import SECRET_KEY, WORKSPACE
from bench.tables import PK_ONLY, PROJECT, create_pk_only

ACTIVE = MembershipStatus.ACTIVE.value
#: The tables every group empties, memberships first (they reference contacts).
_EMPTIED = (contact_lists.name, contacts.name, PK_ONLY.memberships, PK_ONLY.contacts)


class Backend:
    name = ""
    label = ""
    url = ""

    def prepare(self) -> None:
        """A fresh, empty, migrated database, with the PK-only tables."""
        raise NotImplementedError

    def reset(self) -> None:
        """Empty contacts and memberships (lists, workspace and key stay)."""
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def lookup_plan(self) -> str:
        """How the planner would find one contact by (workspace_id, email) right now."""
        raise NotImplementedError

    def settings(self) -> str:
        """The database settings that matter for write throughput."""
        raise NotImplementedError

    def drop(self) -> None:
        """Remove the database once its setup is measured."""

    def migrate(self) -> None:
        engine = build_engine(Settings(database_url=self.url, secret_key=SECRET_KEY))
        try:
            upgrade(engine)
            create_pk_only(engine)
        finally:
            engine.dispose()


class Postgres(Backend):
    name, label = "postgres", "PostgreSQL"

    def __init__(self, admin_url: str, database: str) -> None:
        self.admin_url = admin_url
        self.database = database
        self.url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{database}"))

    def prepare(self) -> None:
        self.drop()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        self.migrate()

    def reset(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"TRUNCATE {', '.join(_EMPTIED)}")
            conn.execute("CHECKPOINT")

    def version(self) -> str:
        with psycopg.connect(self.url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return f"PostgreSQL {row[0] if row else '?'}"

    def lookup_plan(self) -> str:
        # The query of the foreign-key check on contact_lists, and the shape of every lookup
        # by primary key; a plan on ix_contacts_workspace_id_external_id scans the workspace.
        with psycopg.connect(self.url) as conn:
            rows = conn.execute(
                f"EXPLAIN SELECT 1 FROM contacts WHERE workspace_id = '{WORKSPACE}' "
                "AND email = 'probe@example.com' FOR KEY SHARE"
            ).fetchall()
        return access_path(" ".join(r[0] for r in rows))

    def settings(self) -> str:
        names = ("autovacuum", "shared_buffers", "synchronous_commit", "fsync", "max_wal_size")
        with psycopg.connect(self.url) as conn:
            values = [conn.execute(f"SHOW {n}").fetchone() for n in names]
        return ", ".join(f"{n}={v[0] if v else '?'}" for n, v in zip(names, values, strict=True))

    def prime_statistics(self, dataset: Dataset) -> None:
        """Load the data once, ANALYZE, empty the tables: statistics outlive TRUNCATE.

        Autovacuum would do this on a live server (it is off on some machines); without it,
        a table whose statistics do not know the workspace may get plans that scan the whole
        workspace for each lookup by email. The PK-only tables are primed the same way.
        """
        for tables in (PROJECT, PK_ONLY):
            floor = PostgresFloor(self.url, WORKSPACE, "copy", tables)
            try:
                for batch in batches(dataset.creates, 10_000):
                    floor.apply(batch, {})
            finally:
                floor.close()
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute(f"ANALYZE {tables.contacts}")
                conn.execute(
                    f"INSERT INTO {tables.memberships} "
                    f"SELECT c.workspace_id, c.email, l.id, '{ACTIVE}', now(), now() "
                    f"FROM {tables.contacts} AS c JOIN {lists.name} AS l "
                    "ON l.workspace_id = c.workspace_id"
                )
                conn.execute(f"ANALYZE {tables.memberships}")
        self.reset()

    def drop(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


class Sqlite(Backend):
    name, label = "sqlite", "SQLite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"

    def prepare(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm", "-journal", ".secret"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        self.migrate()

    def reset(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=60)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for table in _EMPTIED:
                conn.execute(f"DELETE FROM {table}")
            conn.execute("COMMIT")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def version(self) -> str:
        return f"SQLite {sqlite3.sqlite_version}"

    def lookup_plan(self) -> str:
        conn = sqlite3.connect(self.path)
        try:
            rows = conn.execute(
                "EXPLAIN QUERY PLAN SELECT 1 FROM contacts WHERE workspace_id = ? AND email = ?",
                (WORKSPACE, "probe@example.com"),
            ).fetchall()
        finally:
            conn.close()
        return access_path(" ".join(str(r[-1]) for r in rows))

    def settings(self) -> str:
        return "journal_mode=WAL, synchronous=NORMAL, foreign_keys=ON (the server's pragmas)"


def access_path(plan: str) -> str:
    """The index (or scan) a plan uses, from EXPLAIN's text."""
    match = re.search(
        r"(?:using|USING)(?: COVERING)? INDEX (\S+)|using (\S+)|(Seq Scan|SCAN)", plan
    )
    if match is None:
        return plan
    found = next(g for g in match.groups() if g)
    if found.startswith("ix_contacts_workspace_id_external_id"):
        return f"{found} (only workspace_id bounds it: the whole workspace is read per lookup)"
    if found in ("Seq Scan", "SCAN"):
        return "a scan of the whole table"
    return found

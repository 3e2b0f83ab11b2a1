"""The SQLite floor (`executemany`): one `BEGIN IMMEDIATE` transaction per batch.

The existing emails are found with one query over json_each, then an `executemany` upsert,
an `executemany` UPDATE per distinct set of explicitly-null fields, and an `executemany`
membership insert.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from audience.db.models import DATETIME_FIELDS, FIELDS, JSON_FIELDS
from bench.datasets import Contact
from bench.floor import COLUMNS, keep_absent
from bench.tables import PROJECT, Tables

#: The server's pragmas (audience.db.engine), so that the floor pays what the server pays.
PRAGMAS = ("journal_mode=WAL", "busy_timeout=60000", "foreign_keys=ON", "synchronous=NORMAL")


def sqlite_timestamp(value: datetime) -> str:
    """The text SQLAlchemy's SQLite DateTime stores: UTC wall clock, microseconds."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _sqlite_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in DATETIME_FIELDS:
        return sqlite_timestamp(value)
    if name in JSON_FIELDS:
        return msgspec.json.encode(value).decode()
    return value


class SqliteFloor:
    """One sqlite3 connection with the server's pragmas; one transaction per batch."""

    name = "executemany"

    def __init__(self, path: str, workspace_id: str, tables: Tables = PROJECT) -> None:
        self.ws = workspace_id
        self.tables = tables
        self.existing = (
            f"SELECT email FROM {tables.contacts} "
            "WHERE workspace_id = ? AND email IN (SELECT value FROM json_each(?))"
        )
        self.upsert = f"""
INSERT INTO {tables.contacts} (workspace_id, email, {COLUMNS}, created_at, updated_at)
VALUES (?, ?, {", ".join("?" for _ in FIELDS)}, ?, ?)
ON CONFLICT (workspace_id, email) DO UPDATE SET {keep_absent(tables)},
    updated_at = excluded.updated_at
"""
        self.subscribe = (
            f"INSERT INTO {tables.memberships} "
            "(workspace_id, email, list_id, status, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
        )
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=60)
        for pragma in PRAGMAS:
            self.conn.execute(f"PRAGMA {pragma}")

    def close(self) -> None:
        self.conn.close()

    def apply(self, batch: Sequence[Contact], lists: Mapping[str, str]) -> int:
        rows = sorted(batch, key=lambda c: c.email)
        stamp = sqlite_timestamp(datetime.now(UTC))
        ws = self.ws
        emails = [c.email for c in rows]
        params = [
            (ws, c.email, *[_sqlite_value(n, c.values.get(n)) for n in FIELDS], stamp, stamp)
            for c in rows
        ]
        cleared: dict[tuple[str, ...], list[tuple[str, str]]] = defaultdict(list)
        for c in rows:
            nulls = tuple(n for n, v in c.values.items() if v is None)
            if nulls:
                cleared[nulls].append((ws, c.email))
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            encoded = msgspec.json.encode(emails).decode()
            existing = {e for (e,) in cur.execute(self.existing, (ws, encoded))}
            cur.executemany(self.upsert, params)
            for nulls, keys in cleared.items():
                assignments = ", ".join(f"{n} = NULL" for n in nulls)
                cur.executemany(
                    f"UPDATE {self.tables.contacts} SET {assignments} "
                    "WHERE workspace_id = ? AND email = ?",
                    keys,
                )
            if lists:
                members = [
                    (ws, e, lid, lists[lid], stamp, stamp) for e in emails for lid in sorted(lists)
                ]
                cur.executemany(self.subscribe, members)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        return len(rows) - len(existing)

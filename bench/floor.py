"""The floor: the same batches written straight to the database, no HTTP, no validation.

What a batch must do is what one import request does to the database (DESIGN §1): one
transaction; rows in email order (consistent lock order); given fields replace, absent ones
keep (COALESCE over the stored value), explicit nulls clear; `created_at` kept on update;
`updated_at` set; which emails were *created* known (the import must answer create/update);
and, with lists, a membership per contact and list unless one exists.

PostgreSQL variants (the faster one is the floor):
- `copy`: binary COPY into a temp table, then one INSERT ... SELECT ... ON CONFLICT DO UPDATE
  (COALESCE) RETURNING the created emails, then, for the rows that carry explicit nulls,
  one more INSERT ... ON CONFLICT DO UPDATE fed by `unnest` of their emails and null bit masks
  (a primary-key probe per row whatever the planner's statistics);
- `unnest`: the same two statements fed by `unnest` of binary arrays instead of the COPY;
- `merge`: binary COPY, a SELECT of the emails that are new, then one MERGE that applies
  given values and nulls in one pass, hash and merge joins disabled for the transaction (not
  safe against a concurrent insert in PostgreSQL 15 without a retry; for reference only: it
  is not measured by default and never counts as the floor).
SQLite: one `BEGIN IMMEDIATE` transaction per batch: the existing emails found with one
query over json_each, an `executemany` upsert, an `executemany` UPDATE per distinct set of
explicitly-null fields, an `executemany` membership insert.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec
import psycopg
from psycopg.types.json import set_json_dumps

from audience.db.models import DATETIME_FIELDS, FIELDS, JSON_FIELDS, NUMBER_FIELDS
from bench.data import Contact

PG_VARIANTS = ("copy", "unnest", "merge")

_BIT = {name: 1 << i for i, name in enumerate(FIELDS)}
_COLUMNS = ", ".join(FIELDS)


class Floor(Protocol):
    name: str

    def apply(self, batch: Sequence[Contact], lists: Mapping[str, str]) -> int:
        """Write one batch in one transaction; returns how many contacts were created."""
        ...

    def close(self) -> None: ...


def _pg_type(name: str) -> str:
    if name in NUMBER_FIELDS:
        return "float8"
    if name in DATETIME_FIELDS:
        return "timestamptz"
    if name in JSON_FIELDS:
        return "jsonb"
    return "text"


def _null_mask(values: Mapping[str, Any]) -> int:
    mask = 0
    for name, value in values.items():
        if value is None:
            mask |= _BIT[name]
    return mask


_KEEP_ABSENT = ", ".join(f"{n} = COALESCE(excluded.{n}, contacts.{n})" for n in FIELDS)

PG_STAGE = f"""
CREATE TEMP TABLE bench_stage (
    email text, {", ".join(f"{n} {_pg_type(n)}" for n in FIELDS)}, nulls int8
) ON COMMIT DELETE ROWS
"""
PG_COPY = f"COPY bench_stage (email, {_COLUMNS}, nulls) FROM STDIN (FORMAT BINARY)"
PG_COPY_TYPES = ["text", *(_pg_type(n) for n in FIELDS), "int8"]

PG_UPSERT_FROM_STAGE = f"""
WITH written AS (
    INSERT INTO contacts (workspace_id, email, {_COLUMNS}, created_at, updated_at)
    SELECT %(ws)s, email, {_COLUMNS}, %(now)s, %(now)s FROM bench_stage
    ON CONFLICT (workspace_id, email) DO UPDATE SET {_KEEP_ABSENT}, updated_at = excluded.updated_at
    RETURNING email, created_at
)
SELECT email FROM written WHERE created_at = %(now)s
"""
PG_SUBSCRIBE_FROM_STAGE = """
INSERT INTO contact_lists (workspace_id, email, list_id, status, created_at, updated_at)
SELECT %(ws)s, s.email, l.id, l.status, %(now)s, %(now)s
FROM bench_stage AS s CROSS JOIN unnest(%(list_ids)s::text[], %(statuses)s::text[]) AS l(id, status)
ORDER BY s.email, l.id
ON CONFLICT DO NOTHING
"""

_UNNEST_TYPE = {name: "text" if name in JSON_FIELDS else _pg_type(name) for name in FIELDS}
_UNNEST_SELECT = ", ".join(f"u.{n}::jsonb" if n in JSON_FIELDS else f"u.{n}" for n in FIELDS)
PG_UPSERT_UNNEST = f"""
WITH written AS (
    INSERT INTO contacts (workspace_id, email, {_COLUMNS}, created_at, updated_at)
    SELECT %(ws)s, u.email, {_UNNEST_SELECT}, %(now)s, %(now)s
    FROM unnest(%(email)b::text[], {", ".join(f"%({n})b::{_UNNEST_TYPE[n]}[]" for n in FIELDS)})
         AS u(email, {_COLUMNS})
    ON CONFLICT (workspace_id, email) DO UPDATE SET {_KEEP_ABSENT}, updated_at = excluded.updated_at
    RETURNING email, created_at
)
SELECT email FROM written WHERE created_at = %(now)s
"""
# The rows that carry explicit nulls exist (written above, locked by this transaction), so
# an upsert of them never inserts: its ON CONFLICT matches each by a primary-key probe, which
# no planner estimate can turn into a scan of the workspace (an UPDATE ... FROM could, and did
# at 1k batches on a 100k table). The proposed row carries the mask in custom_number_1.
_MASK = "excluded.custom_number_1::int8"
_CLEAR_ON_CONFLICT = ", ".join(
    f"{n} = CASE WHEN ({_MASK} & {_BIT[n]}) <> 0 THEN NULL ELSE contacts.{n} END" for n in FIELDS
)
PG_CLEAR_UNNEST = f"""
INSERT INTO contacts (workspace_id, email, custom_number_1, created_at, updated_at)
SELECT %(ws)s, s.email, s.nulls, %(now)s, %(now)s
FROM unnest(%(email)b::text[], %(nulls)b::float8[]) AS s(email, nulls)
ON CONFLICT (workspace_id, email) DO UPDATE SET {_CLEAR_ON_CONFLICT}
"""
PG_SUBSCRIBE_UNNEST = """
INSERT INTO contact_lists (workspace_id, email, list_id, status, created_at, updated_at)
SELECT %(ws)s, e.email, l.id, l.status, %(now)s, %(now)s
FROM unnest(%(email)b::text[]) AS e(email)
CROSS JOIN unnest(%(list_ids)s::text[], %(statuses)s::text[]) AS l(id, status)
ORDER BY e.email, l.id
ON CONFLICT DO NOTHING
"""

PG_NEW_FROM_STAGE = """
SELECT s.email FROM bench_stage AS s
WHERE NOT EXISTS (SELECT 1 FROM contacts AS c WHERE c.workspace_id = %(ws)s AND c.email = s.email)
"""
_MERGE_SET = ", ".join(
    f"{n} = CASE WHEN s.nulls & {_BIT[n]} <> 0 THEN NULL ELSE COALESCE(s.{n}, c.{n}) END"
    for n in FIELDS
)
PG_MERGE = f"""
MERGE INTO contacts AS c
USING bench_stage AS s ON c.workspace_id = %(ws)s AND c.email = s.email
WHEN MATCHED THEN UPDATE SET {_MERGE_SET}, updated_at = %(now)s
WHEN NOT MATCHED THEN INSERT (workspace_id, email, {_COLUMNS}, created_at, updated_at)
    VALUES (%(ws)s, s.email, {", ".join(f"s.{n}" for n in FIELDS)}, %(now)s, %(now)s)
"""


class PostgresFloor:
    """One psycopg connection; one transaction per batch."""

    def __init__(self, url: str, workspace_id: str, variant: str) -> None:
        if variant not in PG_VARIANTS:
            raise ValueError(f"unknown PostgreSQL floor variant {variant!r}")
        self.name = variant
        self.ws = workspace_id
        self.conn = psycopg.connect(url)
        set_json_dumps(msgspec.json.encode, context=self.conn)
        with self.conn.transaction():
            self.conn.execute(PG_STAGE)

    def close(self) -> None:
        self.conn.close()

    def apply(self, batch: Sequence[Contact], lists: Mapping[str, str]) -> int:
        rows = sorted(batch, key=lambda c: c.email)
        now = datetime.now(UTC)
        params: dict[str, Any] = {"ws": self.ws, "now": now}
        if lists:
            params["list_ids"] = sorted(lists)
            params["statuses"] = [lists[k] for k in params["list_ids"]]
        with self.conn.transaction(), self.conn.cursor() as cur:
            if self.name == "unnest":
                return self._unnest(cur, rows, params, bool(lists))
            with cur.copy(PG_COPY) as copy:
                copy.set_types(PG_COPY_TYPES)
                for c in rows:
                    v = c.values
                    copy.write_row((c.email, *[v.get(n) for n in FIELDS], _null_mask(v)))
            if self.name == "merge":
                # The planner prices probing the primary key once per staged row above a
                # hash join over the whole table; with everything cached it is the reverse,
                # and the hash join grows with the table.
                cur.execute("SET LOCAL enable_hashjoin = off")
                cur.execute("SET LOCAL enable_mergejoin = off")
                created = len(cur.execute(PG_NEW_FROM_STAGE, params).fetchall())
                cur.execute(PG_MERGE, params)
            else:
                created = len(cur.execute(PG_UPSERT_FROM_STAGE, params).fetchall())
                self._clear(cur, rows)
            if lists:
                cur.execute(PG_SUBSCRIBE_FROM_STAGE, params)
        return created

    def _clear(self, cur: psycopg.Cursor[Any], rows: Sequence[Contact]) -> None:
        """One UPDATE for the rows that carry explicit nulls, joined by primary key."""
        masks = [(c.email, m) for c in rows if (m := _null_mask(c.values))]
        if masks:
            clear = {
                "ws": self.ws,
                "now": datetime.now(UTC),
                "email": [e for e, _ in masks],
                "nulls": [float(m) for _, m in masks],
            }
            cur.execute(PG_CLEAR_UNNEST, clear)

    def _unnest(
        self, cur: psycopg.Cursor[Any], rows: Sequence[Contact], params: dict[str, Any], lists: bool
    ) -> int:
        params["email"] = [c.email for c in rows]
        for name in FIELDS:
            column = [c.values.get(name) for c in rows]
            if name in JSON_FIELDS:
                column = [None if v is None else msgspec.json.encode(v).decode() for v in column]
            params[name] = column
        created = len(cur.execute(PG_UPSERT_UNNEST, params).fetchall())
        self._clear(cur, rows)
        if lists:
            cur.execute(PG_SUBSCRIBE_UNNEST, params)
        return created


# --- SQLite ---------------------------------------------------------------------------------


SQLITE_EXISTING = """
SELECT email FROM contacts
WHERE workspace_id = ? AND email IN (SELECT value FROM json_each(?))
"""
SQLITE_UPSERT = f"""
INSERT INTO contacts (workspace_id, email, {_COLUMNS}, created_at, updated_at)
VALUES (?, ?, {", ".join("?" for _ in FIELDS)}, ?, ?)
ON CONFLICT (workspace_id, email) DO UPDATE SET {_KEEP_ABSENT}, updated_at = excluded.updated_at
"""
SQLITE_SUBSCRIBE = """
INSERT INTO contact_lists (workspace_id, email, list_id, status, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
"""


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

    def __init__(self, path: str, workspace_id: str) -> None:
        self.ws = workspace_id
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=60)
        for pragma in (
            "journal_mode=WAL",
            "busy_timeout=60000",
            "foreign_keys=ON",
            "synchronous=NORMAL",
        ):
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
            existing = {e for (e,) in cur.execute(SQLITE_EXISTING, (ws, encoded))}
            cur.executemany(SQLITE_UPSERT, params)
            for nulls, keys in cleared.items():
                assignments = ", ".join(f"{n} = NULL" for n in nulls)
                cur.executemany(
                    f"UPDATE contacts SET {assignments} WHERE workspace_id = ? AND email = ?",
                    keys,
                )
            if lists:
                members = [
                    (ws, e, lid, lists[lid], stamp, stamp) for e in emails for lid in sorted(lists)
                ]
                cur.executemany(SQLITE_SUBSCRIBE, members)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        return len(rows) - len(existing)

"""PostgreSQL floors (the faster of `copy` and `unnest` is the floor of a case).

- `copy`: binary COPY into a temp table, then one INSERT ... SELECT ... ON CONFLICT DO UPDATE
  (COALESCE) RETURNING the created emails, then, for the rows that carry explicit nulls,
  one more INSERT ... ON CONFLICT DO UPDATE fed by `unnest` of their emails and null bit masks
  (a primary-key probe per row whatever the planner's statistics);
- `unnest`: the same two statements fed by `unnest` of binary arrays instead of the COPY;
- `merge`: binary COPY, a SELECT of the emails that are new, then one MERGE that applies
  given values and nulls in one pass, hash and merge joins disabled for the transaction (not
  safe against a concurrent insert in PostgreSQL 15 without a retry; for reference only: it
  is not measured by default and never counts as the floor).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import msgspec
import psycopg
from psycopg.types.json import set_json_dumps

from audience.db.models import DATETIME_FIELDS, FIELDS, JSON_FIELDS, NUMBER_FIELDS
from bench.datasets import Contact
from bench.floor import BIT, COLUMNS, keep_absent, null_mask
from bench.tables import PROJECT, Tables

VARIANTS = ("copy", "unnest", "merge")


def _pg_type(name: str) -> str:
    if name in NUMBER_FIELDS:
        return "float8"
    if name in DATETIME_FIELDS:
        return "timestamptz"
    if name in JSON_FIELDS:
        return "jsonb"
    return "text"


STAGE = f"""
CREATE TEMP TABLE bench_stage (
    email text, {", ".join(f"{n} {_pg_type(n)}" for n in FIELDS)}, nulls int8
) ON COMMIT DELETE ROWS
"""
COPY = f"COPY bench_stage (email, {COLUMNS}, nulls) FROM STDIN (FORMAT BINARY)"
COPY_TYPES = ["text", *(_pg_type(n) for n in FIELDS), "int8"]
_UNNEST_TYPE = {name: "text" if name in JSON_FIELDS else _pg_type(name) for name in FIELDS}
_UNNEST_SELECT = ", ".join(f"u.{n}::jsonb" if n in JSON_FIELDS else f"u.{n}" for n in FIELDS)
_UNNEST_FROM = (
    f"unnest(%(email)b::text[], {', '.join(f'%({n})b::{_UNNEST_TYPE[n]}[]' for n in FIELDS)})"
    f" AS u(email, {COLUMNS})"
)
_LISTS = "unnest(%(list_ids)s::text[], %(statuses)s::text[]) AS l(id, status)"
# The proposed row of the null-clearing upsert carries the mask in custom_number_1.
_MASK = "excluded.custom_number_1::int8"


@dataclass(frozen=True)
class Statements:
    """Every statement of the PostgreSQL floors, for one set of tables."""

    upsert_from_stage: str
    subscribe_from_stage: str
    upsert_unnest: str
    clear_unnest: str
    subscribe_unnest: str
    new_from_stage: str
    merge: str


def _upsert(t: Tables, source: str, select: str) -> str:
    return f"""
WITH written AS (
    INSERT INTO {t.contacts} (workspace_id, email, {COLUMNS}, created_at, updated_at)
    SELECT %(ws)s, {select}, %(now)s, %(now)s FROM {source}
    ON CONFLICT (workspace_id, email) DO UPDATE SET {keep_absent(t)},
        updated_at = excluded.updated_at
    RETURNING email, created_at
)
SELECT email FROM written WHERE created_at = %(now)s
"""


def _subscribe(t: Tables, emails: str) -> str:
    return f"""
INSERT INTO {t.memberships} (workspace_id, email, list_id, status, created_at, updated_at)
SELECT %(ws)s, e.email, l.id, l.status, %(now)s, %(now)s
FROM {emails} CROSS JOIN {_LISTS}
ORDER BY e.email, l.id
ON CONFLICT DO NOTHING
"""


def _clear(t: Tables) -> str:
    # The rows that carry explicit nulls exist (written above, locked by this transaction),
    # so an upsert of them never inserts: its ON CONFLICT matches each by a primary-key
    # probe, which no planner estimate can turn into a scan of the workspace (an UPDATE ...
    # FROM could, and did at 1k batches on a 100k table).
    clear = ", ".join(
        f"{n} = CASE WHEN ({_MASK} & {BIT[n]}) <> 0 THEN NULL ELSE {t.contacts}.{n} END"
        for n in FIELDS
    )
    return f"""
INSERT INTO {t.contacts} (workspace_id, email, custom_number_1, created_at, updated_at)
SELECT %(ws)s, s.email, s.nulls, %(now)s, %(now)s
FROM unnest(%(email)b::text[], %(nulls)b::float8[]) AS s(email, nulls)
ON CONFLICT (workspace_id, email) DO UPDATE SET {clear}
"""


def _merge(t: Tables) -> str:
    assignments = ", ".join(
        f"{n} = CASE WHEN s.nulls & {BIT[n]} <> 0 THEN NULL ELSE COALESCE(s.{n}, c.{n}) END"
        for n in FIELDS
    )
    return f"""
MERGE INTO {t.contacts} AS c
USING bench_stage AS s ON c.workspace_id = %(ws)s AND c.email = s.email
WHEN MATCHED THEN UPDATE SET {assignments}, updated_at = %(now)s
WHEN NOT MATCHED THEN INSERT (workspace_id, email, {COLUMNS}, created_at, updated_at)
    VALUES (%(ws)s, s.email, {", ".join(f"s.{n}" for n in FIELDS)}, %(now)s, %(now)s)
"""


@cache
def statements(t: Tables) -> Statements:
    """The statements that write the tables `t`."""
    return Statements(
        upsert_from_stage=_upsert(t, "bench_stage", f"email, {COLUMNS}"),
        subscribe_from_stage=_subscribe(t, "bench_stage AS e"),
        upsert_unnest=_upsert(t, _UNNEST_FROM, f"u.email, {_UNNEST_SELECT}"),
        clear_unnest=_clear(t),
        subscribe_unnest=_subscribe(t, "unnest(%(email)b::text[]) AS e(email)"),
        new_from_stage=f"""
SELECT s.email FROM bench_stage AS s WHERE NOT EXISTS (
    SELECT 1 FROM {t.contacts} AS c WHERE c.workspace_id = %(ws)s AND c.email = s.email)
""",
        merge=_merge(t),
    )


class PostgresFloor:
    """One psycopg connection; one transaction per batch."""

    def __init__(self, url: str, workspace_id: str, variant: str, tables: Tables = PROJECT) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown PostgreSQL floor variant {variant!r}")
        self.name = variant
        self.ws = workspace_id
        self.sql = statements(tables)
        self.conn = psycopg.connect(url)
        set_json_dumps(msgspec.json.encode, context=self.conn)
        with self.conn.transaction():
            self.conn.execute(STAGE)

    def close(self) -> None:
        self.conn.close()

    def apply(self, batch: Sequence[Contact], lists: Mapping[str, str]) -> int:
        rows = sorted(batch, key=lambda c: c.email)
        params: dict[str, Any] = {"ws": self.ws, "now": datetime.now(UTC)}
        if lists:
            params["list_ids"] = sorted(lists)
            params["statuses"] = [lists[k] for k in params["list_ids"]]
        with self.conn.transaction(), self.conn.cursor() as cur:
            if self.name == "unnest":
                return self._unnest(cur, rows, params, bool(lists))
            with cur.copy(COPY) as copy:
                copy.set_types(COPY_TYPES)
                for c in rows:
                    v = c.values
                    copy.write_row((c.email, *[v.get(n) for n in FIELDS], null_mask(v)))
            if self.name == "merge":
                # The planner prices probing the primary key once per staged row above a
                # hash join over the whole table; with everything cached it is the reverse,
                # and the hash join grows with the table.
                cur.execute("SET LOCAL enable_hashjoin = off")
                cur.execute("SET LOCAL enable_mergejoin = off")
                created = len(cur.execute(self.sql.new_from_stage, params).fetchall())
                cur.execute(self.sql.merge, params)
            else:
                created = len(cur.execute(self.sql.upsert_from_stage, params).fetchall())
                self._clear(cur, rows)
            if lists:
                cur.execute(self.sql.subscribe_from_stage, params)
        return created

    def _clear(self, cur: psycopg.Cursor[Any], rows: Sequence[Contact]) -> None:
        """One upsert for the rows that carry explicit nulls, matched by primary key."""
        masks = [(c.email, m) for c in rows if (m := null_mask(c.values))]
        if masks:
            clear = {
                "ws": self.ws,
                "now": datetime.now(UTC),
                "email": [e for e, _ in masks],
                "nulls": [float(m) for _, m in masks],
            }
            cur.execute(self.sql.clear_unnest, clear)

    def _unnest(
        self, cur: psycopg.Cursor[Any], rows: Sequence[Contact], params: dict[str, Any], lists: bool
    ) -> int:
        params["email"] = [c.email for c in rows]
        for name in FIELDS:
            column = [c.values.get(name) for c in rows]
            if name in JSON_FIELDS:
                column = [None if v is None else msgspec.json.encode(v).decode() for v in column]
            params[name] = column
        created = len(cur.execute(self.sql.upsert_unnest, params).fetchall())
        self._clear(cur, rows)
        if lists:
            cur.execute(self.sql.subscribe_unnest, params)
        return created

"""The bulk statements of the import, as SQL text: PostgreSQL (COPY or unnest) and SQLite.

They apply the update rule of docs/import.md set-wise: given values replace (COALESCE over the
stored value keeps the absent ones), then one more statement, over the rows that need it,
clears the fields sent as null. Executed by ContactRepository (repository.py).
"""

from __future__ import annotations

from datetime import datetime

from audience.db.models import DATETIME_FIELDS, FIELDS, JSON_FIELDS, NUMBER_FIELDS


def pg_type(name: str) -> str:
    if name in NUMBER_FIELDS:
        return "float8"
    if name in DATETIME_FIELDS:
        return "timestamptz"
    return "text"  # JSON travels as text and is cast to jsonb by the INSERT


_COLUMNS = ", ".join(FIELDS)
_KEEP_ABSENT = ", ".join(f"{n} = COALESCE(excluded.{n}, contacts.{n})" for n in FIELDS)


def _selected(row: str) -> str:
    return ", ".join(f"{row}{n}::jsonb" if n in JSON_FIELDS else f"{row}{n}" for n in FIELDS)


def _clear_columns(mask: str, row: str) -> str:
    return ", ".join(
        f"{n} = CASE WHEN ({mask} & {1 << i}) <> 0 THEN NULL ELSE {row}{n} END"
        for i, n in enumerate(FIELDS)
    )


# --- PostgreSQL, COPY mode: the batch is staged in a temporary table -------------------------

#: Created once per session (IF NOT EXISTS), emptied by every commit.
PG_STAGE = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS import_stage (
    email text NOT NULL, {", ".join(f"{n} {pg_type(n)}" for n in FIELDS)}
) ON COMMIT DELETE ROWS
"""
PG_STAGE_TYPES = ["text", *(pg_type(n) for n in FIELDS)]
PG_COPY = f"COPY import_stage (email, {_COLUMNS}) FROM STDIN (FORMAT BINARY)"

# Rows are written, and so locked, in code point order of the email (COLLATE "C", the order
# the batch is sorted and staged in), the order every import shares. A row the statement
# inserted has no xmax (an updated one carries this transaction's row lock), which tells
# creates from updates even when two requests share a timestamp.
PG_UPSERT_STAGED = f"""
WITH written AS (
    INSERT INTO contacts (workspace_id, email, {_COLUMNS}, created_at, updated_at)
    SELECT %(ws)b, s.email, {_selected("s.")}, %(now)b, %(now)b
    FROM import_stage AS s ORDER BY s.email COLLATE "C"
    ON CONFLICT (workspace_id, email) DO UPDATE SET {_KEEP_ABSENT}, updated_at = excluded.updated_at
    RETURNING email, xmax = 0 AS inserted
)
SELECT email FROM written WHERE inserted
"""

# --- PostgreSQL, unnest mode: the batch travels as binary arrays ------------------------------

# Portable to engines without xmax: a created row is one whose created_at is this request's.
PG_UPSERT_ARRAYS = f"""
WITH written AS (
    INSERT INTO contacts (workspace_id, email, {_COLUMNS}, created_at, updated_at)
    SELECT %(ws)b, u.email, {_selected("u.")}, %(now)b, %(now)b
    FROM unnest(%(email)b::text[], {", ".join(f"%({n})b::{pg_type(n)}[]" for n in FIELDS)})
         AS u(email, {_COLUMNS})
    ON CONFLICT (workspace_id, email) DO UPDATE SET {_KEEP_ABSENT}, updated_at = excluded.updated_at
    RETURNING email, created_at
)
SELECT email FROM written WHERE created_at = %(now)b
"""

# --- PostgreSQL, both modes: clearing the fields sent as null -------------------------------

# An UPDATE … FROM joined to the batch leaves the join to the planner, which on a table
# without statistics (a new database, autovacuum not run yet) may scan the whole workspace
# once per batch row. ON CONFLICT always matches by probing the primary key, so the clear is
# an upsert too: every row here was written and locked by this transaction just above, the
# insert branch never runs, and the proposed row only carries the row's null mask, in
# custom_number_1 (a float8 holds the 33-bit mask exactly).
_MASK = "(excluded.custom_number_1::int8)"
PG_CLEAR = f"""
INSERT INTO contacts (workspace_id, email, custom_number_1, created_at, updated_at)
SELECT %(ws)b, u.email, u.mask, %(now)b, %(now)b
FROM unnest(%(emails)b::text[], %(masks)b::float8[]) AS u(email, mask)
ON CONFLICT (workspace_id, email) DO UPDATE SET {_clear_columns(_MASK, "contacts.")}
"""

# Rows are inserted in (email, list) order, the lock order every import shares.
PG_SUBSCRIBE = """
INSERT INTO contact_lists (workspace_id, email, list_id, status, created_at, updated_at)
SELECT %(ws)b, e.email, l.list_id, l.status, %(now)b, %(now)b
FROM unnest(%(emails)b::text[]) AS e(email)
CROSS JOIN unnest(%(lists)b::text[], %(statuses)b::text[]) AS l(list_id, status)
ORDER BY e.email, l.list_id
ON CONFLICT (workspace_id, email, list_id) DO NOTHING
"""

# --- SQLite -----------------------------------------------------------------------------------

SQLITE_UPSERT = f"""
INSERT INTO contacts (workspace_id, email, {_COLUMNS}, created_at, updated_at)
VALUES (?, ?, {", ".join("?" for _ in FIELDS)}, ?, ?)
ON CONFLICT (workspace_id, email) DO UPDATE SET {_KEEP_ABSENT}, updated_at = excluded.updated_at
"""
SQLITE_CLEAR = f"""
UPDATE contacts SET {_clear_columns("?1", "")} WHERE workspace_id = ?2 AND email = ?3
"""
SQLITE_SUBSCRIBE = """
INSERT INTO contact_lists (workspace_id, email, list_id, status, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (workspace_id, email, list_id) DO NOTHING
"""


def sqlite_timestamp(value: datetime) -> str:
    """The text form SQLAlchemy's SQLite DateTime reads back (UTC wall clock)."""
    # Not strftime: "%Y" does not pad years below 1000, which SQLAlchemy cannot read back.
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}"
    )

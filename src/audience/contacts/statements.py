"""The bulk statements of the import, as SQL text: PostgreSQL (COPY or unnest) and SQLite.

On PostgreSQL one statement merges a batch into the stored rows by the update rules of
docs/import.md (overwrite: absent keeps, null clears, a value replaces; fill_blanks: a value
fills only a blank field) and says, per row, what changed. On SQLite, with one writer at a
time, the repository merges in Python between a read and the writes below. Executed by
ContactRepository (repository.py).
"""

from __future__ import annotations

from datetime import datetime

from audience.db.models import DATETIME_FIELDS, FIELDS, JSON_FIELDS, NUMBER_FIELDS, TEXT_FIELDS


def pg_type(name: str, *, staged: bool = False) -> str:
    """A field's type as the batch carries it: JSON as text in arrays (cast by the
    statement), as jsonb in the COPY stage (its text sent as it is: stage_json_text)."""
    if name in NUMBER_FIELDS:
        return "float8"
    if name in DATETIME_FIELDS:
        return "timestamptz"
    return "jsonb" if staged and name in JSON_FIELDS else "text"


_COLUMNS = ", ".join(FIELDS)
_BIT = {name: 1 << k for k, name in enumerate(FIELDS)}


def _given(name: str, typed: bool = False) -> str:
    """The given value of a field as the column's type: JSON travels as text in arrays
    (`typed` False), as jsonb in the COPY stage (parsed once, by the COPY)."""
    return f"s.{name}::jsonb" if name in JSON_FIELDS and not typed else f"s.{name}"


def _merged(name: str, merge: str, typed: bool) -> str:
    """The field's value after the import (docs/import.md: update semantics, merge)."""
    given, stored = _given(name, typed), f"o.{name}"
    if merge == "overwrite":  # absent keeps, null clears, a value replaces
        cleared = f"(s.nulls & {_BIT[name]}) <> 0"
        return f"CASE WHEN {cleared} THEN NULL ELSE COALESCE({given}, {stored}) END"
    blank = f"{stored} IS NULL" + (f" OR {stored} = ''" if name in TEXT_FIELDS else "")
    return f"CASE WHEN {given} IS NOT NULL AND ({blank}) THEN {given} ELSE {stored} END"


def _mask(test: str, merged: list[tuple[str, str]]) -> str:
    """The int8 mask of the fields for which `test` (on `{n}`, the merged value, and `{o}`,
    the stored one) holds."""
    return " + ".join(
        f"(CASE WHEN {test.format(n=f'({expr})', o=f'o.{name}')} THEN {_BIT[name]} ELSE 0 END)"
        "::int8"
        for name, expr in merged
    )


def _apply(source: str, merge: str, typed: bool) -> str:
    """One statement, run once `_claim` has inserted the batch's new contacts and locked
    its stored ones, that merges the given fields into the stored rows and rewrites only
    the rows that change: an update that changes nothing writes nothing. Per row: the mask
    of the fields changed (a row the claim created changes nothing here). The rows are
    locked already; each is read by its primary key, whatever the planner's statistics
    (`OFFSET 0` keeps the lateral subquery a probe per row: flattened into a join, it could
    be planned as a scan of the whole workspace)."""
    merged = [(name, _merged(name, merge, typed)) for name in FIELDS]
    return f"""
WITH judged AS (
    SELECT s.email, {", ".join(f"{expr} AS {name}" for name, expr in merged)},
           {_mask("{n} IS DISTINCT FROM {o}", merged)} AS changed
    FROM {source} AS s
    CROSS JOIN LATERAL (
        SELECT {", ".join(f"c.{n}" for n in FIELDS)} FROM contacts AS c
        WHERE c.workspace_id = %(ws)b AND c.email = s.email
        OFFSET 0
    ) AS o
), updated AS (
    INSERT INTO contacts (workspace_id, email, {_COLUMNS}, created_at, updated_at)
    SELECT %(ws)b, j.email, {", ".join(f"j.{n}" for n in FIELDS)}, %(now)b, %(now)b
    FROM judged AS j WHERE j.changed <> 0 ORDER BY j.email COLLATE "C"
    ON CONFLICT (workspace_id, email) DO UPDATE
    SET {", ".join(f"{n} = excluded.{n}" for n in FIELDS)}, updated_at = excluded.updated_at
)
SELECT j.email, j.changed FROM judged AS j
"""


def _claim(source: str, typed: bool) -> str:
    """One pass over the batch in email order that inserts its new contacts (as given) and
    locks its stored ones (`DO UPDATE ... WHERE false` locks and writes nothing): new and
    stored rows are locked in one order, email, whichever of them a concurrent import sees
    as new (a lock on the stored ones first, then inserts, would cross another import's
    order). A row another import is inserting is waited for, then locked: none is lost. Per
    created row: its email and the mask of the fields stored non-null."""
    stored = " + ".join(
        f"(CASE WHEN {name} IS NOT NULL THEN {_BIT[name]} ELSE 0 END)::int8" for name in FIELDS
    )
    return f"""
INSERT INTO contacts (workspace_id, email, {_COLUMNS}, created_at, updated_at)
SELECT %(ws)b, s.email, {", ".join(_given(n, typed) for n in FIELDS)}, %(now)b, %(now)b
FROM {source} AS s
ON CONFLICT (workspace_id, email) DO UPDATE SET updated_at = contacts.updated_at WHERE false
RETURNING email, {stored}
"""


# --- PostgreSQL, COPY mode: the batch is staged in a temporary table -------------------------

#: Created once per session (IF NOT EXISTS), emptied by every commit (and between rounds).
PG_STAGE = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS import_stage (
    email text NOT NULL, {", ".join(f"{n} {pg_type(n, staged=True)}" for n in FIELDS)},
    nulls int8 NOT NULL
) ON COMMIT DELETE ROWS
"""
PG_STAGE_TYPES = ["text", *(pg_type(n, staged=True) for n in FIELDS), "int8"]
PG_COPY = f"COPY import_stage (email, {_COLUMNS}, nulls) FROM STDIN (FORMAT BINARY)"
PG_UNSTAGE = "TRUNCATE import_stage"
_STAGED = '(SELECT * FROM import_stage ORDER BY email COLLATE "C")'
PG_APPLY_STAGED = {m: _apply(_STAGED, m, typed=True) for m in ("overwrite", "fill_blanks")}
PG_CLAIM_STAGED = _claim(_STAGED, typed=True)

# --- PostgreSQL, unnest mode: the batch travels as binary arrays ------------------------------

_ARRAY_PARAMS = ", ".join(f"%({n})b::{pg_type(n)}[]" for n in FIELDS)
_ARRAYS = f"""(SELECT * FROM unnest(%(email)b::text[], {_ARRAY_PARAMS}, %(nulls)b::int8[])
    AS u(email, {_COLUMNS}, nulls) ORDER BY email COLLATE "C")"""
PG_APPLY_ARRAYS = {m: _apply(_ARRAYS, m, typed=False) for m in ("overwrite", "fill_blanks")}
PG_CLAIM_ARRAYS = _claim(_ARRAYS, typed=False)

# --- memberships, both databases' statements --------------------------------------------------

# The memberships of (email, list) pairs as they are, locked in the pairs' order: (email,
# list) sorted, the order every import shares (after the contacts). Each pair is looked up by
# its whole primary key, so that no statistics can make the planner prefer the index on
# (workspace_id, list_id, status), which would read every member of the lists.
PG_MEMBERSHIPS = """
SELECT m.email, m.list_id, m.status
FROM unnest(%(emails)b::text[], %(lists)b::text[]) AS p(email, list_id)
CROSS JOIN LATERAL (
    SELECT c.email, c.list_id, c.status FROM contact_lists AS c
    WHERE c.workspace_id = %(ws)b AND c.email = p.email AND c.list_id = p.list_id
    FOR UPDATE
) AS m
"""
# New memberships; fewer inserted than given means a concurrent import inserted one first.
PG_ADD_MEMBERSHIPS = """
WITH added AS (
    INSERT INTO contact_lists (workspace_id, email, list_id, status, created_at, updated_at)
    SELECT %(ws)b, u.email, u.list_id, u.status, %(now)b, %(now)b
    FROM unnest(%(emails)b::text[], %(lists)b::text[], %(statuses)b::text[])
         AS u(email, list_id, status)
    ORDER BY u.email COLLATE "C", u.list_id COLLATE "C"
    ON CONFLICT (workspace_id, email, list_id) DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM added
"""
# Existing memberships whose status changes (they are locked: the insert never runs).
PG_SET_MEMBERSHIPS = """
INSERT INTO contact_lists (workspace_id, email, list_id, status, created_at, updated_at)
SELECT %(ws)b, u.email, u.list_id, u.status, %(now)b, %(now)b
FROM unnest(%(emails)b::text[], %(lists)b::text[], %(statuses)b::text[])
     AS u(email, list_id, status)
ORDER BY u.email COLLATE "C", u.list_id COLLATE "C"
ON CONFLICT (workspace_id, email, list_id) DO UPDATE
SET status = excluded.status, updated_at = excluded.updated_at
"""

# --- SQLite -----------------------------------------------------------------------------------

SQLITE_STORED = f"""
SELECT email, {_COLUMNS} FROM contacts
WHERE workspace_id = ? AND email IN (SELECT value FROM json_each(?))
"""
SQLITE_INSERT = f"""
INSERT INTO contacts (workspace_id, email, {_COLUMNS}, created_at, updated_at)
VALUES (?, ?, {", ".join("?" for _ in FIELDS)}, ?, ?)
"""
SQLITE_REWRITE = f"""
UPDATE contacts SET {", ".join(f"{n} = ?" for n in FIELDS)}, updated_at = ?
WHERE workspace_id = ? AND email = ?
"""
SQLITE_MEMBERSHIPS = """
SELECT email, list_id, status FROM contact_lists
WHERE workspace_id = ? AND list_id IN (SELECT value FROM json_each(?))
  AND email IN (SELECT value FROM json_each(?))
"""
SQLITE_ADD_MEMBERSHIP = """
INSERT INTO contact_lists (workspace_id, email, list_id, status, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?)
"""
SQLITE_SET_MEMBERSHIP = """
UPDATE contact_lists SET status = ?, updated_at = ?
WHERE workspace_id = ? AND email = ? AND list_id = ?
"""


def sqlite_timestamp(value: datetime) -> str:
    """The text form SQLAlchemy's SQLite DateTime reads back (UTC wall clock)."""
    # Not strftime: "%Y" does not pad years below 1000, which SQLAlchemy cannot read back.
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}"
    )

"""The bulk statements of the import, as SQL text: PostgreSQL (COPY or unnest) and SQLite.

On PostgreSQL one statement (pg_upsert) merges a batch into the stored rows by the update
rules of docs/import.md (overwrite: absent keeps, null clears, a value replaces; fill_blanks:
a value fills only a blank field) and says, per row, what changed; it carries only the fields
the batch gives. On SQLite, one statement per contact (sqlite_upsert) does the same, by the
same expressions. Executed by bulk.BulkWriter.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import lru_cache

from audience.db.models import DATETIME_FIELDS, FIELDS, JSON_FIELDS, NUMBER_FIELDS, TEXT_FIELDS


def pg_type(name: str) -> str:
    """A field's type as the batch carries it: JSON as the UTF-8 bytes of its text, as
    validation kept them (bytea: no Python string is made of them; the statement reads them
    as text and casts that to jsonb, pg_json: the server parses each value once)."""
    if name in NUMBER_FIELDS:
        return "float8"
    if name in DATETIME_FIELDS:
        return "timestamptz"
    if name in JSON_FIELDS:
        return "bytea"
    return "text"


def pg_json(column: str) -> str:
    """A JSON field carried as bytea (pg_type) as jsonb: its bytes checked as UTF-8, parsed."""
    return f"convert_from({column}, 'UTF8')::jsonb"


_BIT = {name: 1 << k for k, name in enumerate(FIELDS)}
#: How a dialect writes "a is not the same value as b" for field `name`: (name, a, b) -> SQL.
Distinct = Callable[[str, str, str], str]


#: The flag the upsert adds to `import_mask` of a stored row it rewrites (the changed mask
#: below it); a row it inserts keeps its null bits there, always below the flag.
REWRITTEN = 1 << 62


def _pg_distinct(name: str, a: str, b: str) -> str:
    return f"{a} IS DISTINCT FROM {b}"


def _sqlite_distinct(name: str, a: str, b: str) -> str:
    """SQLite's `IS NOT`: JSON as its text, where the batch never gives a value that only
    the text of the stored one differs from (bulk.BulkWriter drops it)."""
    return f"{a} IS NOT {b}"


def _field(
    name: str, merge: str, given: str, stored: str, nulls: str, distinct: Distinct = _pg_distinct
) -> tuple[str, str]:
    """The field's value after the import and whether that changes it, as SQL (docs/import.md:
    update semantics, merge); `given` is the batch's value, `stored` the row's, `nulls` the
    row's null bits. Both expressions are never NULL-valued where a boolean is wanted."""
    bit = _BIT[name]
    if merge == "overwrite":  # absent keeps, null clears, a value replaces
        merged = (
            f"CASE WHEN {given} IS NOT NULL THEN {given} "
            f"WHEN ({nulls} & {bit}) <> 0 THEN NULL ELSE {stored} END"
        )
        changed = (
            f"CASE WHEN {given} IS NOT NULL THEN {distinct(name, given, stored)} "
            f"ELSE ({nulls} & {bit}) <> 0 AND {stored} IS NOT NULL END"
        )
        return merged, changed
    blank = f"{stored} IS NULL" + (f" OR {stored} = ''" if name in TEXT_FIELDS else "")
    fills = f"{given} IS NOT NULL AND ({blank})"
    merged = f"CASE WHEN {fills} THEN {given} ELSE {stored} END"
    return merged, f"({fills} AND {distinct(name, given, stored)})"


def _any(tests: list[str]) -> str:
    return " OR ".join(f"({t})" for t in tests) or "false"


@lru_cache(maxsize=256)
def pg_upsert(given: tuple[str, ...], merge: str, *, staged: bool, skip_unchanged: bool) -> str:
    """The one statement that writes a batch (of which only the fields `given` are carried):
    in email order it inserts the new contacts and, for the stored ones, merges the given
    fields into the row it has locked and rewrites it only when that changes something.

    New and stored rows are locked in one pass and one order, email, whichever of them a
    concurrent import sees as new; a row another import is inserting is waited for, then
    merged: none is lost. The merge and the changed mask are computed from the row as
    locked, never from an earlier read. With `skip_unchanged`, the rows that the batch
    leaves as they are in the statement's snapshot are not even locked (a re-sync writes
    nothing): an import that does not write a row is ordered before any write of it that
    it did not see.

    The batch reaches ON CONFLICT's `excluded` row with its null bits in `import_mask`; the
    answer is one row per contact written: its email and, for a stored row, REWRITTEN plus
    the mask of the fields changed, for a new one the mask of the fields stored non-null. A
    stored row not answered changed nothing. Each stored row is found by its primary key
    whatever the planner's statistics (`OFFSET 0` keeps the lateral read a probe per row).
    """
    # JSON arrives as bytes and is parsed once, here: `OFFSET 0` keeps the subquery whole
    # (pulled up, each use of a column would repeat its cast).
    typed = "".join(f"{pg_json(n)} AS {n}, " if n in JSON_FIELDS else f"{n}, " for n in given)
    if staged:
        rows = "import_stage"
    else:
        arrays = "".join(f"%({n})b::{pg_type(n)}[], " for n in given)
        names = "".join(f"{n}, " for n in given)
        rows = (
            f"unnest(%(email)b::text[], {arrays}%(nulls)b::int8[], %(digest)b::text[]) "
            f"AS u(email, {names}nulls, digest)"
        )
    source = f'(SELECT email, {typed}nulls, digest FROM {rows} ORDER BY email COLLATE "C" OFFSET 0)'

    columns = "".join(f"{n}, " for n in given)
    fields = [
        (n, _field(n, merge, f"excluded.{n}", f"c.{n}", "excluded.import_mask")) for n in given
    ]
    mask = " + ".join(f"(CASE WHEN {t} THEN {_BIT[n]} ELSE 0 END)::int8" for n, (_, t) in fields)
    stored = " + ".join(
        f"(CASE WHEN c.{n} IS NOT NULL THEN {_BIT[n]} ELSE 0 END)::int8" for n in given
    )
    keep, lateral = "", ""
    if skip_unchanged:
        before = [_field(n, merge, f"s.{n}", f"o.{n}", "s.nulls")[1] for n in given]
        lateral = (
            "LEFT JOIN LATERAL (SELECT true AS stored"
            f"{''.join(f', t.{n}' for n in given)} FROM contacts AS t "
            "WHERE t.workspace_id = %(ws)b AND t.email = s.email OFFSET 0) AS o ON true"
        )
        keep = f"WHERE NOT (o.stored IS NOT NULL AND NOT ({_any(before)}))"
    # The rows to write in a CTE of their own: inlined by PostgreSQL, planned apart by Citus
    # (which cannot plan the join of the coordinator's stage and a distributed table inside
    # an INSERT ... SELECT).
    return f"""
WITH batch AS (
    SELECT s.* FROM {source} AS s {lateral}
    {keep}
)
INSERT INTO contacts AS c
    (workspace_id, email, {columns}import_mask, import_digest, created_at, updated_at)
SELECT %(ws)b, s.email, {"".join(f"s.{n}, " for n in given)}s.nulls, s.digest, %(now)b, %(now)b
FROM batch AS s
ORDER BY s.email COLLATE "C"
ON CONFLICT (workspace_id, email) DO UPDATE
SET {"".join(f"{n} = {m}, " for n, (m, _) in fields)}import_mask = {mask or "0"} + {REWRITTEN},
    import_digest = excluded.import_digest, updated_at = excluded.updated_at
WHERE {_any([t for _, (_, t) in fields])}
RETURNING c.email,
    CASE WHEN c.import_mask >= {REWRITTEN} THEN c.import_mask ELSE {stored or "0"} END
"""


# --- PostgreSQL, COPY mode: the batch is staged in a temporary table -------------------------

#: Created once per session (IF NOT EXISTS), emptied by every commit (and between rounds).
PG_STAGE = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS import_stage (
    email text NOT NULL, {", ".join(f"{n} {pg_type(n)}" for n in FIELDS)},
    nulls int8 NOT NULL, digest text
) ON COMMIT DELETE ROWS
"""
PG_UNSTAGE = "TRUNCATE import_stage"


def pg_copy(given: tuple[str, ...]) -> str:
    """The binary COPY of a batch's emails, given fields, null bits and digests into the
    stage (its data: bulk.BulkWriter.prepare, of the types pg_copy_types)."""
    columns = "".join(f"{n}, " for n in given)
    return f"COPY import_stage (email, {columns}nulls, digest) FROM STDIN (FORMAT BINARY)"


def pg_copy_types(given: tuple[str, ...]) -> list[str]:
    return ["text", *(pg_type(n) for n in given), "int8", "text"]


# Of (email, digest) pairs, the emails stored, each with whether its import_digest is that
# digest (the row the last import of the same input wrote, untouched since).
_STORED_OF_PAIRS = """
FROM unnest(%(emails)b::text[], %(digests)b::text[]) AS u(email, digest)
CROSS JOIN LATERAL (
    SELECT c.email, c.import_digest FROM contacts AS c
    WHERE c.workspace_id = %(ws)b AND c.email = u.email
    OFFSET 0
) AS t"""
PG_STORED_DIGESTS = f"""
SELECT t.email, t.import_digest = u.digest{_STORED_OF_PAIRS}
"""
# A membership is looked up by its contact's prefix of the primary key (workspace_id, email),
# the list compared as `list_id || ''`, which no index can serve: with `list_id = ...`, the
# index on (workspace_id, list_id, status) serves as many conditions as the primary key, and
# where the statistics cannot tell them apart (a table that an import has just grown, not yet
# analysed) the planner may take it and read every member of the list per probe (10k
# contacts in 2 lists: 14 s instead of 20 ms). A contact is in few lists: its prefix is cheap.
_MEMBERSHIP_OF = "{m}.workspace_id = %(ws)b AND {m}.email = {email} AND {m}.list_id || '' = {list}"

# The same, with the memberships of the lists (their ids, %(lists)s) of every contact whose
# digest is the same, read in the same snapshot as the digest: one row per membership (a
# null list_id where it has none); an import with lists leaves alone the contacts it would
# change nothing of (service._stored). (Not a subquery per list: 10k contacts in 2 lists,
# ~75 ms and JIT-compiled, against ~55 as a join.)
PG_STORED_DIGESTS_AND_MEMBERSHIPS = f"""
SELECT t.email, t.import_digest = u.digest, m.list_id, m.status{_STORED_OF_PAIRS}
LEFT JOIN LATERAL (
    SELECT m.list_id, m.status FROM contact_lists AS m
    WHERE {_MEMBERSHIP_OF.format(m="m", email="t.email", list="ANY(%(lists)b::text[])")}
      AND t.import_digest = u.digest
) AS m ON true
"""


# --- memberships, both databases' statements --------------------------------------------------

# The memberships of (email, list) pairs as they are, locked in the pairs' order: (email,
# list) sorted, the order every import shares (after the contacts).
PG_MEMBERSHIPS = f"""
SELECT m.email, m.list_id, m.status
FROM unnest(%(emails)b::text[], %(lists)b::text[]) AS p(email, list_id)
CROSS JOIN LATERAL (
    SELECT c.email, c.list_id, c.status FROM contact_lists AS c
    WHERE {_MEMBERSHIP_OF.format(m="c", email="p.email", list="p.list_id")}
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


@lru_cache(maxsize=256)
def sqlite_upsert(given: tuple[str, ...], merge: str) -> str:
    """One contact (of which only the fields `given` are carried) inserted, or merged into
    its stored row by the rules of pg_upsert and rewritten only when that changes something;
    answering its import_mask: REWRITTEN plus the mask of the fields changed for a stored
    row rewritten, below REWRITTEN for a new one (no row: a stored row left as it was). The
    transaction holds SQLite's one write lock (BEGIN IMMEDIATE): the row merged is the row
    as it is. Run once per contact, in email order (bulk.BulkWriter); JSON is compared as
    text (see _sqlite_distinct). (Not pg_upsert's answer for a new row: SQLite 3.40's
    RETURNING reads `column IS NULL` wrongly on this table.)"""
    fields = [
        (n, _field(n, merge, f"excluded.{n}", f"c.{n}", "excluded.import_mask", _sqlite_distinct))
        for n in given
    ]
    mask = " + ".join(f"(CASE WHEN {t} THEN {_BIT[n]} ELSE 0 END)" for n, (_, t) in fields)
    return f"""
INSERT INTO contacts AS c
    (workspace_id, email, {"".join(f"{n}, " for n in given)}import_mask, import_digest,
     created_at, updated_at)
VALUES (?, ?, {"?, " * len(given)}?, ?, ?, ?)
ON CONFLICT (workspace_id, email) DO UPDATE
SET {"".join(f"{n} = {m}, " for n, (m, _) in fields)}import_mask = {mask or "0"} + {REWRITTEN},
    import_digest = excluded.import_digest, updated_at = excluded.updated_at
WHERE {_any([t for _, (_, t) in fields])}
RETURNING import_mask
"""


@lru_cache(maxsize=256)
def sqlite_insert(given: tuple[str, ...]) -> str:
    """New contacts: sqlite_upsert's insert alone (its parameters)."""
    return f"""
INSERT INTO contacts
    (workspace_id, email, {"".join(f"{n}, " for n in given)}import_mask, import_digest,
     created_at, updated_at)
VALUES (?, ?, {"?, " * len(given)}?, ?, ?, ?)
"""


@lru_cache(maxsize=256)
def sqlite_stored(names: tuple[str, ...]) -> str:
    """Of a JSON array of emails, those stored, each with these fields."""
    return f"""
SELECT email{"".join(f", {n}" for n in names)} FROM contacts
WHERE workspace_id = ? AND email IN (SELECT value FROM json_each(?))
"""


# CROSS JOIN keeps the pairs the outer loop (SQLite's join-order hint): each is then a probe
# of the primary key, never a scan of the workspace for each pair.
SQLITE_STORED_DIGESTS = """
SELECT contacts.email, contacts.import_digest = j.value ->> 1 FROM json_each(?) AS j
CROSS JOIN contacts
WHERE contacts.workspace_id = ? AND contacts.email = j.value ->> 0
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
    """The text form SQLAlchemy's SQLite DateTime reads back (the wall clock of a UTC
    value): `YYYY-MM-DD HH:MM:SS.ffffff`, its offset cut off."""
    # Not strftime: "%Y" does not pad years below 1000, which SQLAlchemy cannot read back;
    # isoformat pads them, and is ~25 % faster than formatting each part (bench/README.md).
    return value.isoformat(" ", "microseconds")[:26]

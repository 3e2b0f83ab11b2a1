"""SQL for contacts and their list memberships.

The bulk upsert is the one place that knows SQLite from PostgreSQL. It applies the update
rule of docs/import.md set-wise: given values replace (COALESCE over the stored value keeps
the absent ones), then one more statement, over the rows that need it, clears the fields
sent as null.

On PostgreSQL the batch reaches the server by binary COPY into a per-connection temporary
table (the default, ~5 times cheaper than sending arrays), or as binary arrays read by
`unnest` (the `unnest` bulk-write mode, for engines without temporary tables or binary COPY,
such as CockroachDB). Either way one INSERT … ON CONFLICT writes the whole batch.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from itertools import repeat
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, exists, func, select, update

from audience.contacts.schemas import Contact, Membership
from audience.contacts.validation import ContactBatch
from audience.db.engine import BULK_WRITE
from audience.db.models import (
    DATETIME_FIELDS,
    FIELDS,
    JSON_FIELDS,
    NUMBER_FIELDS,
    MembershipStatus,
    contact_lists,
    contacts,
)
from audience.db.session import driver_connection
from audience.kit.clock import as_utc

PG_CHUNK = 5_000
SQLITE_IN_CHUNK = 500


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _pg_type(name: str) -> str:
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
    email text NOT NULL, {", ".join(f"{n} {_pg_type(n)}" for n in FIELDS)}
) ON COMMIT DELETE ROWS
"""
PG_STAGE_TYPES = ["text", *(_pg_type(n) for n in FIELDS)]
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
    FROM unnest(%(email)b::text[], {", ".join(f"%({n})b::{_pg_type(n)}[]" for n in FIELDS)})
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


_SQLITE_DATETIME = frozenset(FIELDS.index(n) for n in DATETIME_FIELDS)
_DATETIME_POSITIONS = tuple(FIELDS.index(n) for n in DATETIME_FIELDS)


def _contact(row: Row[Any, *tuple[Any, ...]]) -> Contact:
    values = list(row[1 : 1 + len(FIELDS)])
    for k in _DATETIME_POSITIONS:
        if values[k] is not None:
            values[k] = as_utc(values[k])
    return Contact(
        email=row.email,
        values=tuple(values),
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )


def _membership(row: Row[Any]) -> Membership:
    return Membership(
        list_id=row.list_id,
        status=MembershipStatus(row.status),
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )


_CONTACT_COLUMNS = (contacts.c.email, *(contacts.c[n] for n in FIELDS))
_CONTACT_SELECT = select(*_CONTACT_COLUMNS, contacts.c.created_at, contacts.c.updated_at)


class ContactRepository:
    """Contacts and memberships of one workspace."""

    def __init__(self, conn: Connection, workspace_id: str) -> None:
        self.conn = conn
        self.workspace_id = workspace_id
        self.is_sqlite = conn.dialect.name == "sqlite"

    def _driver(self) -> Any:
        return driver_connection(self.conn)

    # --- bulk writes ----------------------------------------------------------------------------

    def upsert_many(self, batch: ContactBatch, now: datetime) -> list[int]:
        """Write the batch (rule 7); the positions in it of the contacts it created."""
        if not batch:
            return []
        if self.is_sqlite:
            return self._upsert_sqlite(batch, now)
        if self.conn.get_execution_options().get(BULK_WRITE, "copy") == "unnest":
            created = self._upsert_arrays(batch, now)
        else:
            created = self._upsert_staged(batch, now)
        # batch.emails is sorted: each created email's position is a binary search away.
        return sorted(bisect_left(batch.emails, email) for email in created)

    def _upsert_staged(self, batch: ContactBatch, now: datetime) -> list[str]:
        with self._driver().cursor() as cursor:
            cursor.execute(PG_STAGE)
            with cursor.copy(PG_COPY) as copy:
                copy.set_types(PG_STAGE_TYPES)
                for row in zip(batch.emails, *batch.columns, strict=True):
                    copy.write_row(row)
            params = {"ws": self.workspace_id, "now": now}
            created = [email for (email,) in cursor.execute(PG_UPSERT_STAGED, params)]
            self._clear_postgres(cursor, batch, now)
        return created

    def _upsert_arrays(self, batch: ContactBatch, now: datetime) -> list[str]:
        created: list[str] = []
        with self._driver().cursor() as cursor:
            for start in range(0, len(batch), PG_CHUNK):
                part = slice(start, start + PG_CHUNK)
                params: dict[str, Any] = {
                    "ws": self.workspace_id,
                    "now": now,
                    "email": batch.emails[part],
                }
                for name, column in zip(FIELDS, batch.columns, strict=True):
                    params[name] = column[part]
                created.extend(email for (email,) in cursor.execute(PG_UPSERT_ARRAYS, params))
            self._clear_postgres(cursor, batch, now)
        return created

    def _clear_postgres(self, cursor: Any, batch: ContactBatch, now: datetime) -> None:
        cleared = [(e, m) for e, m in zip(batch.emails, batch.nulls, strict=True) if m]
        for chunk in _chunks(cleared, PG_CHUNK):
            params = {
                "ws": self.workspace_id,
                "now": now,
                "emails": [email for email, _ in chunk],
                "masks": [float(mask) for _, mask in chunk],
            }
            cursor.execute(PG_CLEAR, params)

    def _upsert_sqlite(self, batch: ContactBatch, now: datetime) -> list[int]:
        # The transaction holds SQLite's write lock (BEGIN IMMEDIATE), so what exists now is
        # exactly what the upsert will find.
        existing = self.existing_emails(batch.emails)
        stamp = sqlite_timestamp(now)
        columns = [
            [v if v is None else sqlite_timestamp(v) for v in column]
            if k in _SQLITE_DATETIME
            else column
            for k, column in enumerate(batch.columns)
        ]
        cursor = self._driver().cursor()
        ws = repeat(self.workspace_id)
        rows = zip(ws, batch.emails, *columns, repeat(stamp), repeat(stamp))
        cursor.executemany(SQLITE_UPSERT, rows)
        ws_id = self.workspace_id
        cleared = [(m, ws_id, e) for e, m in zip(batch.emails, batch.nulls, strict=True) if m]
        if cleared:
            cursor.executemany(SQLITE_CLEAR, cleared)
        return [i for i, email in enumerate(batch.emails) if email not in existing]

    def existing_emails(self, emails: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(emails, SQLITE_IN_CHUNK):
            query = select(contacts.c.email).where(
                contacts.c.workspace_id == self.workspace_id, contacts.c.email.in_(chunk)
            )
            found.update(self.conn.execute(query).scalars())
        return found

    def subscribe(self, emails: Sequence[str], statuses: Mapping[str, str], now: datetime) -> None:
        """New memberships get their status; existing ones are left exactly as they are.

        `emails` are distinct and sorted, as a ContactBatch holds them.
        """
        list_ids = sorted(statuses)
        if not emails or not list_ids:
            return
        driver = self._driver()
        if self.is_sqlite:
            stamp = sqlite_timestamp(now)
            rows = [
                (self.workspace_id, email, list_id, statuses[list_id], stamp, stamp)
                for email in emails
                for list_id in list_ids
            ]
            driver.cursor().executemany(SQLITE_SUBSCRIBE, rows)
            return
        params = {
            "ws": self.workspace_id,
            "now": now,
            "emails": emails,
            "lists": list_ids,
            "statuses": [statuses[list_id] for list_id in list_ids],
        }
        with driver.cursor() as cursor:
            cursor.execute(PG_SUBSCRIBE, params)

    # --- single contacts --------------------------------------------------------------------------

    def get(self, email: str) -> Contact | None:
        query = _CONTACT_SELECT.where(
            contacts.c.workspace_id == self.workspace_id, contacts.c.email == email
        )
        row = self.conn.execute(query).first()
        return None if row is None else _contact(row)

    def get_by_external_id(self, external_id: str) -> Contact | None:
        query = (
            _CONTACT_SELECT.where(
                contacts.c.workspace_id == self.workspace_id,
                contacts.c.external_id == external_id,
            )
            .order_by(contacts.c.email)
            .limit(1)
        )
        row = self.conn.execute(query).first()
        return None if row is None else _contact(row)

    def delete(self, email: str) -> bool:
        self.conn.execute(
            delete(contact_lists).where(
                contact_lists.c.workspace_id == self.workspace_id,
                contact_lists.c.email == email,
            )
        )
        result = self.conn.execute(
            delete(contacts).where(
                contacts.c.workspace_id == self.workspace_id, contacts.c.email == email
            )
        )
        return bool(result.rowcount)

    def count(self) -> int:
        query = select(func.count()).where(contacts.c.workspace_id == self.workspace_id)
        return int(self.conn.execute(query).scalar_one())

    def page(
        self,
        *,
        after: str | None,
        limit: int,
        contains: Mapping[str, str],
        list_id: str | None,
        status: str | None,
    ) -> list[Contact]:
        """Up to `limit` contacts ordered by email, strictly after the `after` email."""
        query = _CONTACT_SELECT.where(contacts.c.workspace_id == self.workspace_id)
        if after is not None:
            query = query.where(contacts.c.email > after)
        for name, needle in contains.items():
            query = query.where(contacts.c[name].icontains(needle, autoescape=True))
        if list_id is not None or status is not None:
            membership = [
                contact_lists.c.workspace_id == contacts.c.workspace_id,
                contact_lists.c.email == contacts.c.email,
            ]
            if list_id is not None:
                membership.append(contact_lists.c.list_id == list_id)
            if status is not None:
                membership.append(contact_lists.c.status == status)
            query = query.where(exists().where(and_(*membership)))
        rows = self.conn.execute(query.order_by(contacts.c.email).limit(limit))
        return [_contact(row) for row in rows]

    # --- memberships ------------------------------------------------------------------------------

    def memberships(self, emails: Sequence[str]) -> dict[str, list[Membership]]:
        """The memberships of each email (by list id); emails without any are left out."""
        result: dict[str, list[Membership]] = defaultdict(list)
        for chunk in _chunks(emails, SQLITE_IN_CHUNK):
            query = (
                select(contact_lists)
                .where(
                    contact_lists.c.workspace_id == self.workspace_id,
                    contact_lists.c.email.in_(chunk),
                )
                .order_by(contact_lists.c.email, contact_lists.c.list_id)
            )
            for row in self.conn.execute(query):
                result[row.email].append(_membership(row))
        return result

    def membership(self, email: str, list_id: str) -> Membership | None:
        query = select(contact_lists).where(
            contact_lists.c.workspace_id == self.workspace_id,
            contact_lists.c.email == email,
            contact_lists.c.list_id == list_id,
        )
        row = self.conn.execute(query).first()
        return None if row is None else _membership(row)

    def set_status(self, email: str, list_id: str, status: str, now: datetime) -> None:
        self.conn.execute(
            update(contact_lists)
            .where(
                contact_lists.c.workspace_id == self.workspace_id,
                contact_lists.c.email == email,
                contact_lists.c.list_id == list_id,
            )
            .values(status=status, updated_at=now)
        )

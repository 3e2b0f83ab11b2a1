"""SQL for contacts and their list memberships.

The bulk upsert is the one place that knows SQLite from PostgreSQL. It applies rule 7 of
DESIGN §1 set-wise: given values replace (COALESCE over the stored value keeps the absent
ones), then one UPDATE per distinct set of explicitly-null fields clears them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, exists, func, select, update

from audience.contacts.fields import DATETIME_FIELDS, FIELDS, JSON_FIELDS, NUMBER_FIELDS
from audience.contacts.validation import ValidContact
from audience.db.models import contact_lists, contacts

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
    return "text"


_COLUMNS = ", ".join(FIELDS)
_SELECTED = ", ".join(f"u.{n}::jsonb" if n in JSON_FIELDS else f"u.{n}" for n in FIELDS)
_KEEP_ABSENT = ", ".join(f"{n} = COALESCE(excluded.{n}, contacts.{n})" for n in FIELDS)

PG_UPSERT = f"""
INSERT INTO contacts (workspace_id, email, {_COLUMNS}, created_at, updated_at)
SELECT %(ws)b, u.email, {_SELECTED}, %(now)b, %(now)b
FROM unnest(%(email)b::text[], {", ".join(f"%({n})b::{_pg_type(n)}[]" for n in FIELDS)})
     AS u(email, {_COLUMNS})
ON CONFLICT (workspace_id, email) DO UPDATE SET {_KEEP_ABSENT}, updated_at = excluded.updated_at
RETURNING email, created_at = %(now)b
"""

SQLITE_UPSERT = f"""
INSERT INTO contacts (workspace_id, email, {_COLUMNS}, created_at, updated_at)
VALUES (?, ?, {", ".join("?" for _ in FIELDS)}, ?, ?)
ON CONFLICT (workspace_id, email) DO UPDATE SET {_KEEP_ABSENT}, updated_at = excluded.updated_at
"""


_BIT = {name: 1 << i for i, name in enumerate(FIELDS)}


def _null_mask(values: Mapping[str, Any]) -> int:
    """Bit i set when FIELDS[i] was sent as null."""
    mask = 0
    for name, value in values.items():
        if value is None:
            mask |= _BIT[name]
    return mask


def _clear_columns(mask: str, row: str) -> str:
    return ", ".join(
        f"{n} = CASE WHEN ({mask} & {1 << i}) <> 0 THEN NULL ELSE {row}{n} END"
        for i, n in enumerate(FIELDS)
    )


PG_CLEAR = f"""
UPDATE contacts AS c SET {_clear_columns("u.mask", "c.")}
FROM unnest(%(emails)b::text[], %(masks)b::int8[]) AS u(email, mask)
WHERE c.workspace_id = %(ws)b AND c.email = u.email
"""

SQLITE_CLEAR = f"""
UPDATE contacts SET {_clear_columns("?1", "")} WHERE workspace_id = ?2 AND email = ?3
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


class ContactRepository:
    """Contacts and memberships of one workspace."""

    def __init__(self, conn: Connection, workspace_id: str) -> None:
        self.conn = conn
        self.workspace_id = workspace_id
        self.is_sqlite = conn.dialect.name == "sqlite"

    # --- bulk writes ----------------------------------------------------------------------------

    def upsert_many(self, rows: Sequence[ValidContact], now: datetime) -> set[str]:
        """Apply contacts with distinct emails, sorted by email; returns the emails created."""
        if not rows:
            return set()
        if self.is_sqlite:
            created = self._upsert_sqlite(rows, now)
        else:
            created = self._upsert_postgres(rows, now)
        self._clear_explicit_nulls(rows)
        return created

    def _upsert_postgres(self, rows: Sequence[ValidContact], now: datetime) -> set[str]:
        created: set[str] = set()
        driver = self.conn.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor:
            for chunk in _chunks(rows, PG_CHUNK):
                params: dict[str, Any] = {
                    "ws": self.workspace_id,
                    "now": now,
                    "email": [c.email for c in chunk],
                }
                for name in FIELDS:
                    params[name] = [c.values.get(name) for c in chunk]
                cursor.execute(PG_UPSERT, params)
                created.update(email for email, inserted in cursor.fetchall() if inserted)
        return created

    def _upsert_sqlite(self, rows: Sequence[ValidContact], now: datetime) -> set[str]:
        # The transaction holds SQLite's write lock (BEGIN IMMEDIATE), so what exists now is
        # exactly what the upsert will find.
        emails = [c.email for c in rows]
        existing = self.existing_emails(emails)
        stamp = sqlite_timestamp(now)
        ws = self.workspace_id
        params = [
            (ws, c.email, *[_sqlite_value(c.values.get(name)) for name in FIELDS], stamp, stamp)
            for c in rows
        ]
        driver = self.conn.connection.driver_connection
        assert driver is not None
        driver.cursor().executemany(SQLITE_UPSERT, params)
        return set(emails) - existing

    def _clear_explicit_nulls(self, rows: Sequence[ValidContact]) -> None:
        """One statement for every contact that sent explicit nulls, whatever fields they are."""
        cleared = [(c.email, mask) for c in rows if (mask := _null_mask(c.values))]
        if not cleared:
            return
        driver = self.conn.connection.driver_connection
        assert driver is not None
        if self.is_sqlite:
            driver.cursor().executemany(
                SQLITE_CLEAR, [(mask, self.workspace_id, email) for email, mask in cleared]
            )
            return
        with driver.cursor() as cursor:
            for chunk in _chunks(cleared, PG_CHUNK):
                params = {
                    "ws": self.workspace_id,
                    "emails": [email for email, _ in chunk],
                    "masks": [mask for _, mask in chunk],
                }
                cursor.execute(PG_CLEAR, params)

    def existing_emails(self, emails: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(emails, SQLITE_IN_CHUNK):
            query = select(contacts.c.email).where(
                contacts.c.workspace_id == self.workspace_id, contacts.c.email.in_(chunk)
            )
            found.update(self.conn.execute(query).scalars())
        return found

    def subscribe(self, emails: Iterable[str], statuses: Mapping[str, str], now: datetime) -> None:
        """New memberships get their status; existing ones are left exactly as they are."""
        ordered = sorted(emails)
        list_ids = sorted(statuses)
        if not ordered or not list_ids:
            return
        driver = self.conn.connection.driver_connection
        assert driver is not None
        if self.is_sqlite:
            stamp = sqlite_timestamp(now)
            rows = [
                (self.workspace_id, email, list_id, statuses[list_id], stamp, stamp)
                for email in ordered
                for list_id in list_ids
            ]
            driver.cursor().executemany(SQLITE_SUBSCRIBE, rows)
            return
        params = {
            "ws": self.workspace_id,
            "now": now,
            "emails": ordered,
            "lists": list_ids,
            "statuses": [statuses[list_id] for list_id in list_ids],
        }
        with driver.cursor() as cursor:
            cursor.execute(PG_SUBSCRIBE, params)

    # --- single contacts --------------------------------------------------------------------------

    def get(self, email: str) -> Row[Any] | None:
        query = select(contacts).where(
            contacts.c.workspace_id == self.workspace_id, contacts.c.email == email
        )
        return self.conn.execute(query).first()

    def get_by_external_id(self, external_id: str) -> Row[Any] | None:
        query = (
            select(contacts)
            .where(
                contacts.c.workspace_id == self.workspace_id,
                contacts.c.external_id == external_id,
            )
            .order_by(contacts.c.email)
            .limit(1)
        )
        return self.conn.execute(query).first()

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
    ) -> list[Row[Any]]:
        """Up to `limit` contacts ordered by email, strictly after the `after` email."""
        query = select(contacts).where(contacts.c.workspace_id == self.workspace_id)
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
        return list(self.conn.execute(query.order_by(contacts.c.email).limit(limit)))

    # --- memberships ------------------------------------------------------------------------------

    def memberships(self, emails: Sequence[str]) -> dict[str, list[Row[Any]]]:
        result: dict[str, list[Row[Any]]] = defaultdict(list)
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
                result[row.email].append(row)
        return result

    def membership(self, email: str, list_id: str) -> Row[Any] | None:
        query = select(contact_lists).where(
            contact_lists.c.workspace_id == self.workspace_id,
            contact_lists.c.email == email,
            contact_lists.c.list_id == list_id,
        )
        return self.conn.execute(query).first()

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


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return sqlite_timestamp(value)
    return value

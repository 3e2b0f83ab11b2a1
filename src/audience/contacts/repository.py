"""SQL for contacts and their list memberships.

The bulk upsert is the one place that knows SQLite from PostgreSQL; its statements are in
statements.py.

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
from audience.contacts.statements import (
    PG_CLEAR,
    PG_COPY,
    PG_STAGE,
    PG_STAGE_TYPES,
    PG_SUBSCRIBE,
    PG_UPSERT_ARRAYS,
    PG_UPSERT_STAGED,
    SQLITE_CLEAR,
    SQLITE_SUBSCRIBE,
    SQLITE_UPSERT,
    sqlite_timestamp,
)
from audience.contacts.validation import ContactBatch
from audience.db.engine import BULK_WRITE
from audience.db.models import (
    DATETIME_FIELDS,
    FIELDS,
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

    def get(self, email: str, *, lock: bool = False) -> Contact | None:
        """The contact; with `lock`, its row is locked FOR UPDATE until the transaction ends
        (contacts come before memberships in the lock order of every write)."""
        query = _CONTACT_SELECT.where(
            contacts.c.workspace_id == self.workspace_id, contacts.c.email == email
        )
        row = self.conn.execute(query.with_for_update() if lock else query).first()
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
        """Delete a contact and its memberships, locking the contact row first (the lock
        order every write shares: the contact, then its memberships)."""
        if self.get(email, lock=True) is None:
            return False
        self.conn.execute(
            delete(contact_lists).where(
                contact_lists.c.workspace_id == self.workspace_id,
                contact_lists.c.email == email,
            )
        )
        self.conn.execute(
            delete(contacts).where(
                contacts.c.workspace_id == self.workspace_id, contacts.c.email == email
            )
        )
        return True

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

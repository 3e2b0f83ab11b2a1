"""SQL for contacts and their list memberships, one contact or one page at a time.

The import's bulk writes are in bulk.py.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, exists, func, select, update

from audience.contacts.schemas import Contact, Membership
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

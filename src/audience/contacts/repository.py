"""SQL for contacts and their list memberships, one contact or one page at a time.

The import's bulk writes are in bulk.py.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, exists, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from audience.contacts.schemas import Contact, ContactFilter, Membership
from audience.db.models import (
    DATETIME_FIELDS,
    FIELDS,
    MembershipStatus,
    contact_lists,
    contacts,
)
from audience.db.session import driver_connection
from audience.db.sql import among
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

    # --- the console: search with OR, counts, selections, bulk changes ---------------------------

    def _matching(self, selected: ContactFilter) -> list[Any]:
        """The conditions of a filter: the search text in the email, first or last name (OR,
        ignoring case), and a membership of the list and/or in the status when given."""
        conditions: list[Any] = [contacts.c.workspace_id == self.workspace_id]
        if selected.search:
            columns = (contacts.c.email, contacts.c.first_name, contacts.c.last_name)
            conditions.append(
                or_(*(c.icontains(selected.search, autoescape=True) for c in columns))
            )
        if selected.list_id is not None or selected.status is not None:
            membership = [
                contact_lists.c.workspace_id == contacts.c.workspace_id,
                contact_lists.c.email == contacts.c.email,
            ]
            if selected.list_id is not None:
                membership.append(contact_lists.c.list_id == selected.list_id)
            if selected.status is not None:
                membership.append(contact_lists.c.status == selected.status)
            conditions.append(exists().where(and_(*membership)))
        return conditions

    def search_page(
        self, selected: ContactFilter, *, after: str | None, before: str | None, limit: int
    ) -> list[Contact]:
        """Up to `limit` matching contacts by email: the first after `after`, or the last
        before `before` (then in descending email order)."""
        query = _CONTACT_SELECT.where(*self._matching(selected))
        if before is not None:
            query = query.where(contacts.c.email < before).order_by(contacts.c.email.desc())
        else:
            if after is not None:
                query = query.where(contacts.c.email > after)
            query = query.order_by(contacts.c.email)
        return [_contact(row) for row in self.conn.execute(query.limit(limit))]

    def count_matching(self, selected: ContactFilter) -> int:
        query = select(func.count()).select_from(contacts).where(*self._matching(selected))
        return int(self.conn.execute(query).scalar_one())

    def count_among(self, emails: Sequence[str]) -> int:
        """How many of these emails are stored contacts."""
        query = select(func.count()).where(
            contacts.c.workspace_id == self.workspace_id,
            among(contacts.c.email, emails, self.conn.dialect.name),
        )
        return int(self.conn.execute(query).scalar_one())

    def lock_selected(self, emails: Sequence[str] | None, selected: ContactFilter) -> list[str]:
        """The stored contacts among `emails` (or, for None, every one matching the filter),
        locked FOR UPDATE in email order: the lock order every write shares."""
        query = select(contacts.c.email)
        if emails is None:
            query = query.where(*self._matching(selected))
        else:
            query = query.where(
                contacts.c.workspace_id == self.workspace_id,
                among(contacts.c.email, emails, self.conn.dialect.name),
            )
        locked = query.order_by(contacts.c.email).with_for_update()
        return list(self.conn.execute(locked).scalars())

    def add_memberships(
        self, emails: Sequence[str], list_id: str, status: MembershipStatus, now: datetime
    ) -> int:
        """Add the contacts that are not in the list to it, with `status`; the others keep
        theirs. How many were added."""
        dialect = self.conn.dialect.name
        dialect_insert = sqlite_insert if dialect == "sqlite" else pg_insert
        added = 0
        for chunk in _chunks(emails, PG_CHUNK):
            rows = select(
                contacts.c.workspace_id,
                contacts.c.email,
                literal(list_id),
                literal(status.value),
                literal(now, contact_lists.c.created_at.type),
                literal(now, contact_lists.c.updated_at.type),
            ).where(
                contacts.c.workspace_id == self.workspace_id,
                among(contacts.c.email, chunk, dialect),
            )
            statement = (
                dialect_insert(contact_lists)
                .from_select(
                    ["workspace_id", "email", "list_id", "status", "created_at", "updated_at"],
                    rows,
                )
                .on_conflict_do_nothing()
                .returning(contact_lists.c.email)
            )
            added += len(self.conn.execute(statement).all())
        return added

    def remove_memberships(self, emails: Sequence[str], list_id: str) -> int:
        """Remove the contacts from the list; how many memberships there were."""
        removed = 0
        for chunk in _chunks(emails, PG_CHUNK):
            statement = delete(contact_lists).where(
                contact_lists.c.workspace_id == self.workspace_id,
                contact_lists.c.list_id == list_id,
                among(contact_lists.c.email, chunk, self.conn.dialect.name),
            )
            removed += self.conn.execute(statement).rowcount
        return removed

    def unsubscribe_memberships(self, emails: Sequence[str], list_id: str, now: datetime) -> int:
        """Set the active and pending memberships of the list to unsubscribed (bounced and
        complained stay as they are); how many changed."""
        changed = 0
        receiving = (MembershipStatus.ACTIVE.value, MembershipStatus.PENDING.value)
        for chunk in _chunks(emails, PG_CHUNK):
            statement = (
                update(contact_lists)
                .where(
                    contact_lists.c.workspace_id == self.workspace_id,
                    contact_lists.c.list_id == list_id,
                    contact_lists.c.status.in_(receiving),
                    among(contact_lists.c.email, chunk, self.conn.dialect.name),
                )
                .values(status=MembershipStatus.UNSUBSCRIBED.value, updated_at=now)
            )
            changed += self.conn.execute(statement).rowcount
        return changed

    def delete_many(self, emails: Sequence[str]) -> int:
        """Delete these (locked) contacts and their memberships; how many contacts."""
        deleted = 0
        dialect = self.conn.dialect.name
        for chunk in _chunks(emails, PG_CHUNK):
            self.conn.execute(
                delete(contact_lists).where(
                    contact_lists.c.workspace_id == self.workspace_id,
                    among(contact_lists.c.email, chunk, dialect),
                )
            )
            statement = delete(contacts).where(
                contacts.c.workspace_id == self.workspace_id,
                among(contacts.c.email, chunk, dialect),
            )
            deleted += self.conn.execute(statement).rowcount
        return deleted

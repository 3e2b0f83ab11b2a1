"""SQL for lists."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from audience.db.models import contact_lists, lists
from audience.db.sql import among
from audience.kit.clock import as_utc
from audience.lists.schemas import ListRecord


def _record(row: Row[Any]) -> ListRecord:
    return ListRecord(
        id=row.id,
        name=row.name,
        is_double_optin=bool(row.is_double_optin),
        is_public=bool(row.is_public),
        description=row.description,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )


class ListRepository:
    """Lists of one workspace."""

    def __init__(self, conn: Connection, workspace_id: str) -> None:
        self.conn = conn
        self.workspace_id = workspace_id

    def get(self, list_id: str) -> ListRecord | None:
        query = select(lists).where(
            lists.c.workspace_id == self.workspace_id, lists.c.id == list_id
        )
        row = self.conn.execute(query).first()
        return None if row is None else _record(row)

    def lock_for_subscribe(self, list_ids: Sequence[str]) -> dict[str, ListRecord]:
        """The lists among these ids, each locked FOR KEY SHARE until the transaction ends,
        so that none can be deleted while memberships of it are being written (a delete
        waits; SQLite has one writer at a time anyway). Lists come first in the lock order
        of every write (docs/reliability.md)."""
        query = (
            select(lists)
            .where(
                lists.c.workspace_id == self.workspace_id,
                among(lists.c.id, list_ids, self.conn.dialect.name),
            )
            .order_by(lists.c.id)
            .with_for_update(read=True, key_share=True)
        )
        return {row.id: _record(row) for row in self.conn.execute(query)}

    def all(self) -> list[ListRecord]:
        query = select(lists).where(lists.c.workspace_id == self.workspace_id).order_by(lists.c.id)
        return [_record(row) for row in self.conn.execute(query)]

    def insert(self, record: ListRecord) -> ListRecord | None:
        """Insert a list; None when its id exists (also when a concurrent request won)."""
        dialect_insert = sqlite_insert if self.conn.dialect.name == "sqlite" else pg_insert
        values = {name: getattr(record, name) for name in record.__struct_fields__}
        statement = (
            dialect_insert(lists)
            .values(workspace_id=self.workspace_id, **values)
            .on_conflict_do_nothing()
            .returning(*lists.c)
        )
        row = self.conn.execute(statement).first()
        return None if row is None else _record(row)

    def update(self, list_id: str, changes: dict[str, Any], now: datetime) -> ListRecord | None:
        """Apply the changes; the list as it now is, or None when it does not exist."""
        statement = (
            update(lists)
            .where(lists.c.workspace_id == self.workspace_id, lists.c.id == list_id)
            .values(**changes, updated_at=now)
            .returning(*lists.c)
        )
        row = self.conn.execute(statement).first()
        return None if row is None else _record(row)

    def delete(self, list_id: str) -> bool:
        """Delete a list and its memberships; False when it did not exist.

        The list row is locked first (the lock order of every write: lists, then contacts,
        then memberships); an import subscribing to it holds it FOR KEY SHARE, so the delete
        waits for that import to commit and then removes the memberships it wrote.
        """
        locked = select(lists.c.id).where(
            lists.c.workspace_id == self.workspace_id, lists.c.id == list_id
        )
        if self.conn.execute(locked.with_for_update()).first() is None:
            return False
        # Memberships are removed explicitly too, so nothing relies on FK cascades being on.
        self.conn.execute(
            delete(contact_lists).where(
                contact_lists.c.workspace_id == self.workspace_id,
                contact_lists.c.list_id == list_id,
            )
        )
        self.conn.execute(
            delete(lists).where(lists.c.workspace_id == self.workspace_id, lists.c.id == list_id)
        )
        return True

    def membership_counts(self) -> dict[str, dict[str, int]]:
        """{list id: {status: memberships}} for the lists that have any."""
        table = contact_lists.c
        query = (
            select(table.list_id, table.status, func.count())
            .where(table.workspace_id == self.workspace_id)
            .group_by(table.list_id, table.status)
        )
        counts: dict[str, dict[str, int]] = {}
        for list_id, status, count in self.conn.execute(query):
            counts.setdefault(list_id, {})[status] = int(count)
        return counts

"""SQL for lists."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Row, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from audience.db.models import contact_lists, lists


class ListRepository:
    """Lists of one workspace."""

    def __init__(self, conn: Connection, workspace_id: str) -> None:
        self.conn = conn
        self.workspace_id = workspace_id

    def get(self, list_id: str) -> Row[Any] | None:
        query = select(lists).where(
            lists.c.workspace_id == self.workspace_id, lists.c.id == list_id
        )
        return self.conn.execute(query).first()

    def get_many(self, list_ids: Iterable[str]) -> dict[str, Row[Any]]:
        query = select(lists).where(
            lists.c.workspace_id == self.workspace_id, lists.c.id.in_(list(list_ids))
        )
        return {row.id: row for row in self.conn.execute(query)}

    def all(self) -> list[Row[Any]]:
        query = select(lists).where(lists.c.workspace_id == self.workspace_id).order_by(lists.c.id)
        return list(self.conn.execute(query))

    def insert(self, **values: Any) -> Row[Any] | None:
        """Insert a list; None when its id exists (also when a concurrent request won)."""
        dialect_insert = sqlite_insert if self.conn.dialect.name == "sqlite" else pg_insert
        statement = (
            dialect_insert(lists)
            .values(workspace_id=self.workspace_id, **values)
            .on_conflict_do_nothing()
            .returning(*lists.c)
        )
        return self.conn.execute(statement).first()

    def update(self, list_id: str, **values: Any) -> None:
        self.conn.execute(
            update(lists)
            .where(lists.c.workspace_id == self.workspace_id, lists.c.id == list_id)
            .values(**values)
        )

    def delete(self, list_id: str) -> None:
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

"""SQL for workspaces."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Row, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from audience.db.models import workspaces
from audience.kit.clock import as_utc
from audience.workspaces.schemas import Workspace


def _workspace(row: Row[tuple[str, str, datetime]]) -> Workspace:
    return Workspace(id=row.id, name=row.name, created_at=as_utc(row.created_at))


class WorkspaceRepository:
    """One workspace's own row."""

    def __init__(self, conn: Connection, workspace_id: str) -> None:
        self.conn = conn
        self.workspace_id = workspace_id

    def get(self) -> Workspace | None:
        query = select(workspaces).where(workspaces.c.id == self.workspace_id)
        row = self.conn.execute(query).first()
        return None if row is None else _workspace(row)

    def insert(self, *, name: str, now: datetime) -> Workspace | None:
        """Insert the workspace; None when its id exists (also when a concurrent one won)."""
        dialect_insert = sqlite_insert if self.conn.dialect.name == "sqlite" else pg_insert
        statement = (
            dialect_insert(workspaces)
            .values(id=self.workspace_id, name=name, created_at=now)
            .on_conflict_do_nothing()
            .returning(*workspaces.c)
        )
        row = self.conn.execute(statement).first()
        return None if row is None else _workspace(row)

    @staticmethod
    def all(conn: Connection) -> list[Workspace]:
        """Every workspace, by id (administration only: never on a request path)."""
        return [
            _workspace(row) for row in conn.execute(select(workspaces).order_by(workspaces.c.id))
        ]

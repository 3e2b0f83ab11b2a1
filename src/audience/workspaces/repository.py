"""SQL for workspaces."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select

from audience.db.models import workspaces


def get_workspace(conn: Connection, *, workspace_id: str) -> Row[Any] | None:
    return conn.execute(select(workspaces).where(workspaces.c.id == workspace_id)).first()


def insert_workspace(conn: Connection, *, workspace_id: str, name: str, now: datetime) -> None:
    conn.execute(insert(workspaces).values(id=workspace_id, name=name, created_at=now))


def list_workspaces(conn: Connection) -> list[Row[Any]]:
    return list(conn.execute(select(workspaces).order_by(workspaces.c.id)))

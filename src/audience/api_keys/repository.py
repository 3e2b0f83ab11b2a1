"""SQL for API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from audience.db.models import api_keys


def insert_key(conn: Connection, **values: Any) -> None:
    conn.execute(insert(api_keys).values(**values))


def get_key(conn: Connection, *, workspace_id: str, key_id: str) -> Row[Any] | None:
    query = select(api_keys).where(api_keys.c.workspace_id == workspace_id, api_keys.c.id == key_id)
    return conn.execute(query).first()


def find_key_by_id(conn: Connection, *, key_id: str) -> Row[Any] | None:
    """Admin lookup by key id alone (CLI only; never on a request path)."""
    return conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()


def list_keys(conn: Connection, *, workspace_id: str) -> list[Row[Any]]:
    query = (
        select(api_keys)
        .where(api_keys.c.workspace_id == workspace_id)
        .order_by(api_keys.c.created_at, api_keys.c.id)
    )
    return list(conn.execute(query))


def revoke_key(conn: Connection, *, workspace_id: str, key_id: str, now: datetime) -> None:
    conn.execute(
        update(api_keys)
        .where(
            api_keys.c.workspace_id == workspace_id,
            api_keys.c.id == key_id,
            api_keys.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )


def touch_key(conn: Connection, *, workspace_id: str, key_id: str, now: datetime) -> None:
    conn.execute(
        update(api_keys)
        .where(api_keys.c.workspace_id == workspace_id, api_keys.c.id == key_id)
        .values(last_used_at=now)
    )

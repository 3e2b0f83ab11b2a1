"""SQL for API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from audience.api_keys.schemas import ApiKey, Permission
from audience.db.models import api_keys
from audience.kit.clock import as_utc


def _key(row: Row[Any]) -> ApiKey:
    return ApiKey(
        workspace_id=row.workspace_id,
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        hash=row.hash,
        permissions=tuple(Permission(p) for p in row.permissions.split(",") if p),
        created_at=as_utc(row.created_at),
        last_used_at=as_utc(row.last_used_at) if row.last_used_at else None,
        revoked_at=as_utc(row.revoked_at) if row.revoked_at else None,
    )


class KeyRepository:
    """The API keys of one workspace."""

    def __init__(self, conn: Connection, workspace_id: str) -> None:
        self.conn = conn
        self.workspace_id = workspace_id

    def _where(self, key_id: str) -> Any:
        return (api_keys.c.workspace_id == self.workspace_id) & (api_keys.c.id == key_id)

    def insert(self, key: ApiKey) -> None:
        values = {name: getattr(key, name) for name in key.__struct_fields__}
        values["permissions"] = ",".join(key.permissions)
        self.conn.execute(insert(api_keys).values(**values))

    def get(self, key_id: str) -> ApiKey | None:
        row = self.conn.execute(select(api_keys).where(self._where(key_id))).first()
        return None if row is None else _key(row)

    def all(self) -> list[ApiKey]:
        query = (
            select(api_keys)
            .where(api_keys.c.workspace_id == self.workspace_id)
            .order_by(api_keys.c.created_at, api_keys.c.id)
        )
        return [_key(row) for row in self.conn.execute(query)]

    def revoke(self, key_id: str, now: datetime) -> None:
        self.conn.execute(
            update(api_keys)
            .where(self._where(key_id), api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    def touch(self, key_id: str, now: datetime) -> None:
        self.conn.execute(update(api_keys).where(self._where(key_id)).values(last_used_at=now))

    @staticmethod
    def workspace_of(conn: Connection, key_id: str) -> str | None:
        """The workspace of a key known by its id alone (administration, never a request)."""
        query = select(api_keys.c.workspace_id).where(api_keys.c.id == key_id)
        return conn.execute(query).scalar()

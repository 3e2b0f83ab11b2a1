"""SQL for idempotency keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from audience.db.models import idempotency_keys
from audience.idempotency.schemas import StoredAnswer
from audience.kit.clock import as_utc


class IdempotencyRepository:
    """The idempotency keys of one workspace."""

    def __init__(self, conn: Connection, workspace_id: str) -> None:
        self.conn = conn
        self.workspace_id = workspace_id

    def _where(self, key: str) -> Any:
        table = idempotency_keys.c
        return (table.workspace_id == self.workspace_id) & (table.key == key)

    def claim(self, key: str, request_hash: str, now: datetime, expires_at: datetime) -> bool:
        """Record that a request with this key runs; False when the key is taken. A request
        that holds the key uncommitted makes this wait until it ends (its row lock)."""
        dialect_insert = sqlite_insert if self.conn.dialect.name == "sqlite" else pg_insert
        statement = (
            dialect_insert(idempotency_keys)
            .values(
                workspace_id=self.workspace_id,
                key=key,
                request_hash=request_hash,
                created_at=now,
                expires_at=expires_at,
            )
            .on_conflict_do_nothing()
            .returning(idempotency_keys.c.key)
        )
        return self.conn.execute(statement).first() is not None

    def get(self, key: str) -> StoredAnswer | None:
        table = idempotency_keys.c
        query = select(table.request_hash, table.status_code, table.body, table.expires_at)
        row = self.conn.execute(query.where(self._where(key))).first()
        if row is None:
            return None
        body = None if row.body is None else bytes(row.body)
        return StoredAnswer(row.request_hash, row.status_code, body, as_utc(row.expires_at))

    def store(self, key: str, status_code: int, body: bytes) -> None:
        statement = update(idempotency_keys).where(self._where(key))
        self.conn.execute(statement.values(status_code=status_code, body=body))

    def release(self, key: str) -> None:
        self.conn.execute(delete(idempotency_keys).where(self._where(key)))

    def purge(self, now: datetime) -> None:
        """Forget the workspace's expired keys."""
        table = idempotency_keys.c
        expired = (table.workspace_id == self.workspace_id) & (table.expires_at <= now)
        self.conn.execute(delete(idempotency_keys).where(expired))

"""SQL for console sessions and for failed sign-ins."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, case, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from audience.db.models import console_login_attempts, console_sessions
from audience.kit.clock import as_utc
from audience.sessions.schemas import Attempts, StoredSession


def _session(row: Row[Any]) -> StoredSession:
    return StoredSession(
        workspace_id=row.workspace_id,
        id_hash=row.id_hash,
        key_id=row.key_id,
        created_at=as_utc(row.created_at),
        last_seen_at=as_utc(row.last_seen_at),
        expires_at=as_utc(row.expires_at),
    )


class SessionRepository:
    """The console sessions of one workspace."""

    def __init__(self, conn: Connection, workspace_id: str) -> None:
        self.conn = conn
        self.workspace_id = workspace_id

    def _where(self, id_hash: str) -> Any:
        table = console_sessions.c
        return (table.workspace_id == self.workspace_id) & (table.id_hash == id_hash)

    def get(self, id_hash: str) -> StoredSession | None:
        row = self.conn.execute(select(console_sessions).where(self._where(id_hash))).first()
        return None if row is None else _session(row)

    def insert(self, session: StoredSession) -> None:
        values = {name: getattr(session, name) for name in session.__struct_fields__}
        self.conn.execute(insert(console_sessions).values(**values))

    def touch(self, id_hash: str, now: datetime, expires_at: datetime) -> None:
        statement = update(console_sessions).where(self._where(id_hash))
        self.conn.execute(statement.values(last_seen_at=now, expires_at=expires_at))

    def delete(self, id_hash: str) -> None:
        self.conn.execute(delete(console_sessions).where(self._where(id_hash)))

    def delete_expired(self, now: datetime) -> None:
        self.conn.execute(
            delete(console_sessions).where(
                console_sessions.c.workspace_id == self.workspace_id,
                console_sessions.c.expires_at <= now,
            )
        )


class LoginAttemptRepository:
    """Failed sign-ins by client address: shared by every workspace, as a failure may come
    with no workspace at all (a key that is not one)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, address: str) -> Attempts | None:
        table = console_login_attempts.c
        query = select(table.failures, table.window_started_at).where(table.address == address)
        row = self.conn.execute(query).first()
        return None if row is None else Attempts(row.failures, as_utc(row.window_started_at))

    def record_failure(self, address: str, *, now: datetime, window_start: datetime) -> None:
        """Count one failure in the address's window (a new window when the last one ended),
        in one statement, so that concurrent failures from many workers all count; windows
        that ended are dropped."""
        table = console_login_attempts
        expired = table.c.window_started_at <= window_start
        dialect_insert = sqlite_insert if self.conn.dialect.name == "sqlite" else pg_insert
        statement = dialect_insert(table).values(address=address, failures=1, window_started_at=now)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.address],
            set_={
                "failures": case((expired, 1), else_=table.c.failures + 1),
                "window_started_at": case((expired, now), else_=table.c.window_started_at),
            },
        )
        self.conn.execute(statement)
        self.conn.execute(delete(table).where(expired, table.c.address != address))

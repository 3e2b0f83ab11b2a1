"""API keys: creation, listing, revocation and authentication."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, Row

from audience.api_keys import repository
from audience.api_keys.schemas import Caller, KeyInfo, NewKey, Permission
from audience.db.session import transaction
from audience.errors import AppError, BadRequest, Forbidden, NotFound, Unauthorized
from audience.kit import crypto
from audience.kit.clock import as_utc, utcnow
from audience.workspaces import service as workspaces

#: last_used_at is written at most this often per key and process, never once per request.
LAST_USED_RESOLUTION_SECONDS = 60.0


def create_key(
    conn: Connection,
    *,
    workspace_id: str,
    name: str,
    permissions: Iterable[Permission],
    secret_key: str,
) -> NewKey:
    """Create a key for an existing workspace; the plaintext is returned once."""
    workspaces.get_workspace(conn, workspace_id=workspace_id)
    if not name.strip() or len(name.strip()) > 255:
        raise BadRequest("key name must be 1-255 characters")
    key_id = crypto.new_key_id()
    key = crypto.generate_api_key(workspace_id, key_id)
    values = {
        "workspace_id": workspace_id,
        "id": key_id,
        "name": name.strip(),
        "prefix": crypto.display_prefix(workspace_id, key_id),
        "hash": crypto.hash_api_key(key, secret_key),
        "permissions": ",".join(permissions),
        "created_at": utcnow(),
        "last_used_at": None,
        "revoked_at": None,
    }
    repository.insert_key(conn, **values)
    return NewKey(info=_info(values), key=key)


def list_keys(conn: Connection, *, workspace_id: str) -> list[KeyInfo]:
    """Every key of a workspace, oldest first, without secrets."""
    workspaces.get_workspace(conn, workspace_id=workspace_id)
    return [_info(row._mapping) for row in repository.list_keys(conn, workspace_id=workspace_id)]


def revoke_key(conn: Connection, *, key_id: str) -> KeyInfo:
    """Revoke a key at once; revoking twice is harmless."""
    row = repository.find_key_by_id(conn, key_id=key_id)
    if row is None:
        raise NotFound(f"API key not found: {key_id}")
    repository.revoke_key(conn, workspace_id=row.workspace_id, key_id=key_id, now=utcnow())
    refreshed = repository.get_key(conn, workspace_id=row.workspace_id, key_id=key_id)
    assert refreshed is not None
    return _info(refreshed._mapping)


def authenticate(engine: Engine, *, authorization: str | None, secret_key: str) -> Caller:
    """The caller behind an `Authorization: Bearer <key>` header, or Unauthorized."""
    if not authorization:
        raise Unauthorized("missing API key: send Authorization: Bearer <key>")
    scheme, _, key = authorization.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized("malformed Authorization header: expected Bearer <key>")
    parsed = crypto.parse_api_key(key)
    if parsed is None:
        raise Unauthorized("invalid API key")
    with engine.connect() as conn:
        row = repository.get_key(conn, workspace_id=parsed.workspace_id, key_id=parsed.key_id)
        conn.rollback()
    computed = crypto.hash_api_key(key, secret_key)
    if row is None or not crypto.hashes_match(row.hash, computed) or row.revoked_at is not None:
        raise Unauthorized("invalid API key")
    _record_use(engine, row)
    return Caller(
        workspace_id=row.workspace_id,
        key_id=row.id,
        permissions=frozenset(Permission(p) for p in row.permissions.split(",") if p),
    )


def require(
    caller: Caller,
    permission: Permission,
    message: str | None = None,
    error: type[AppError] = Forbidden,
) -> None:
    """Forbidden (or `error`) unless the caller's key carries the permission."""
    if not caller.can(permission):
        resource, _, access = permission.value.partition(":")
        raise error(message or f"{access} access to {resource} required")


def check_workspace(caller: Caller, workspace_id: str) -> None:
    """Unauthorized unless the workspace is the key's own (never says whether it exists)."""
    if workspace_id != caller.workspace_id:
        raise Unauthorized("API key is not valid for this workspace")


_last_written: dict[tuple[str, str], float] = {}
_last_written_lock = threading.Lock()


def _record_use(engine: Engine, row: Row[Any]) -> None:
    """Write last_used_at when it is older than the resolution, in its own short transaction."""
    ident = (row.workspace_id, row.id)
    now = time.monotonic()
    with _last_written_lock:
        if now - _last_written.get(ident, -1e9) < LAST_USED_RESOLUTION_SECONDS:
            return
        _last_written[ident] = now
    stored = row.last_used_at
    wall = utcnow()
    if (
        stored is not None
        and (wall - as_utc(stored)).total_seconds() < LAST_USED_RESOLUTION_SECONDS
    ):
        return
    with transaction(engine, write=True) as conn:
        repository.touch_key(conn, workspace_id=row.workspace_id, key_id=row.id, now=wall)


def _info(values: Any) -> KeyInfo:
    return KeyInfo(
        workspace_id=values["workspace_id"],
        id=values["id"],
        name=values["name"],
        prefix=values["prefix"],
        permissions=tuple(Permission(p) for p in values["permissions"].split(",") if p),
        created_at=as_utc(values["created_at"]),
        last_used_at=as_utc(values["last_used_at"]) if values["last_used_at"] else None,
        revoked_at=as_utc(values["revoked_at"]) if values["revoked_at"] else None,
    )

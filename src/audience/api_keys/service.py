"""API keys: creation, listing, revocation, authentication and permissions."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable

from sqlalchemy import Connection, Engine

from audience.api_keys.repository import KeyRepository
from audience.api_keys.schemas import ApiKey, Caller, NewKey, Permission
from audience.db.session import busy_skips, transaction
from audience.errors import AppError, BadRequest, DatabaseBusy, Forbidden, NotFound, Unauthorized
from audience.kit import crypto
from audience.kit.clock import utcnow
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
    name = name.strip()
    if not name or len(name) > 255:
        raise BadRequest("key name must be 1-255 characters")
    key_id = crypto.new_key_id()
    key = crypto.generate_api_key(workspace_id, key_id)
    info = ApiKey(
        workspace_id=workspace_id,
        id=key_id,
        name=name,
        prefix=crypto.display_prefix(workspace_id, key_id),
        hash=crypto.hash_api_key(key, secret_key),
        permissions=tuple(permissions),
        created_at=utcnow(),
        last_used_at=None,
        revoked_at=None,
    )
    KeyRepository(conn, workspace_id).insert(info)
    return NewKey(info=info, key=key)


def list_keys(conn: Connection, *, workspace_id: str) -> list[ApiKey]:
    """Every key of a workspace, oldest first."""
    workspaces.get_workspace(conn, workspace_id=workspace_id)
    return KeyRepository(conn, workspace_id).all()


def revoke_key(conn: Connection, *, key_id: str) -> ApiKey:
    """Revoke a key at once; revoking twice is harmless."""
    workspace_id = KeyRepository.workspace_of(conn, key_id)
    if workspace_id is None:
        raise NotFound(f"API key not found: {key_id}")
    repo = KeyRepository(conn, workspace_id)
    repo.revoke(key_id, utcnow())
    revoked = repo.get(key_id)
    assert revoked is not None
    return revoked


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
    with transaction(engine, write=False) as conn:
        stored = KeyRepository(conn, parsed.workspace_id).get(parsed.key_id)
    computed = crypto.hash_api_key(key, secret_key)
    if (
        stored is None
        or not crypto.hashes_match(stored.hash, computed)
        or stored.revoked_at is not None
    ):
        raise Unauthorized("invalid API key")
    _record_use(engine, stored)
    return Caller(
        workspace_id=stored.workspace_id,
        key_id=stored.id,
        permissions=frozenset(stored.permissions),
    )


def check_workspace(caller: Caller, workspace_id: str) -> None:
    """Unauthorized unless the workspace is the key's own (never says whether it exists)."""
    if workspace_id != caller.workspace_id:
        raise Unauthorized("API key is not valid for this workspace")


def require(
    caller: Caller,
    permission: Permission,
    message: str | None = None,
    error: type[AppError] = Forbidden,
) -> None:
    """Forbidden (or `error`) unless the caller's key carries the permission."""
    if not caller.can(permission):
        raise error(message or permission.denied_message)


_last_written: dict[tuple[str, str], float] = {}
_last_written_lock = threading.Lock()


def _record_use(engine: Engine, key: ApiKey) -> None:
    """Write last_used_at when it is older than the resolution, in its own short transaction."""
    ident = (key.workspace_id, key.id)
    now = time.monotonic()
    with _last_written_lock:
        if now - _last_written.get(ident, -1e9) < LAST_USED_RESOLUTION_SECONDS:
            return
        _last_written[ident] = now
    wall = utcnow()
    stored = key.last_used_at
    if stored is not None and (wall - stored).total_seconds() < LAST_USED_RESOLUTION_SECONDS:
        return
    # Best effort: skipped, not waited for, while another request holds the write lock.
    with contextlib.suppress(DatabaseBusy), busy_skips(engine) as conn:
        KeyRepository(conn, key.workspace_id).touch(key.id, wall)


def caller_of_key(conn: Connection, *, workspace_id: str, key_id: str) -> Caller:
    """The caller of a stored key that is not revoked (a console session acts with it), or
    Unauthorized: revoking a key ends what was signed in with it."""
    stored = KeyRepository(conn, workspace_id).get(key_id)
    if stored is None or stored.revoked_at is not None:
        raise Unauthorized("invalid API key")
    return Caller(
        workspace_id=stored.workspace_id,
        key_id=stored.id,
        permissions=frozenset(stored.permissions),
    )

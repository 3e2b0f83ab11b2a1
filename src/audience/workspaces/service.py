"""Workspaces: the tenant boundary of every other feature."""

from __future__ import annotations

from sqlalchemy import Connection

from audience.errors import BadRequest, Conflict, NotFound
from audience.kit.clock import as_utc, utcnow
from audience.workspaces import repository
from audience.workspaces.schemas import WORKSPACE_ID_PATTERN, Workspace


def create_workspace(conn: Connection, *, workspace_id: str, name: str) -> Workspace:
    """Create a workspace; its id is 1-32 characters of [a-z0-9_]."""
    if not WORKSPACE_ID_PATTERN.fullmatch(workspace_id):
        raise BadRequest(
            f"invalid workspace id {workspace_id!r}: use 1-32 characters of a-z, 0-9 and _"
        )
    name = name.strip()
    if not name or len(name) > 255:
        raise BadRequest("workspace name must be 1-255 characters")
    if repository.get_workspace(conn, workspace_id=workspace_id) is not None:
        raise Conflict(f"workspace already exists: {workspace_id}")
    now = utcnow()
    repository.insert_workspace(conn, workspace_id=workspace_id, name=name, now=now)
    return Workspace(id=workspace_id, name=name, created_at=now)


def get_workspace(conn: Connection, *, workspace_id: str) -> Workspace:
    """The workspace, or NotFound."""
    row = repository.get_workspace(conn, workspace_id=workspace_id)
    if row is None:
        raise NotFound(f"workspace not found: {workspace_id}")
    return Workspace(id=row.id, name=row.name, created_at=as_utc(row.created_at))


def list_workspaces(conn: Connection) -> list[Workspace]:
    """Every workspace, by id."""
    return [
        Workspace(id=r.id, name=r.name, created_at=as_utc(r.created_at))
        for r in repository.list_workspaces(conn)
    ]

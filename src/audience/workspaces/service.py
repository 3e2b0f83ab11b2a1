"""Workspaces: the tenant boundary of every other feature."""

from __future__ import annotations

from sqlalchemy import Connection

from audience.errors import BadRequest, NotFound
from audience.kit.clock import utcnow
from audience.kit.ids import WORKSPACE_ID
from audience.workspaces.repository import WorkspaceRepository
from audience.workspaces.schemas import Workspace


def create_workspace(conn: Connection, *, workspace_id: str, name: str) -> Workspace:
    """Create a workspace; its id is 1-32 characters of [a-z0-9_]."""
    if not WORKSPACE_ID.fullmatch(workspace_id):
        raise BadRequest(
            f"invalid workspace id {workspace_id!r}: use 1-32 characters of a-z, 0-9 and _"
        )
    name = name.strip()
    if not name or len(name) > 255:
        raise BadRequest("workspace name must be 1-255 characters")
    created = WorkspaceRepository(conn, workspace_id).insert(name=name, now=utcnow())
    if created is None:
        raise BadRequest(f"workspace already exists: {workspace_id}")
    return created


def get_workspace(conn: Connection, *, workspace_id: str) -> Workspace:
    """The workspace, or NotFound."""
    workspace = WorkspaceRepository(conn, workspace_id).get()
    if workspace is None:
        raise NotFound(f"workspace not found: {workspace_id}")
    return workspace


def list_workspaces(conn: Connection) -> list[Workspace]:
    """Every workspace, by id."""
    return WorkspaceRepository.all(conn)

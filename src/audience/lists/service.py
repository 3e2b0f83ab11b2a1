"""Lists: what contacts subscribe to."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Row

from audience.errors import BadRequest, NotFound
from audience.kit.clock import rfc3339, utcnow
from audience.lists.repository import ListRepository
from audience.lists.schemas import CreateListRequest, ListOut, UpdateListRequest


def create_list(conn: Connection, *, workspace_id: str, data: CreateListRequest) -> ListOut:
    """Create a list; its id is unique in the workspace."""
    repo = ListRepository(conn, workspace_id)
    now = utcnow()
    row = repo.insert(
        id=data.id,
        name=data.name,
        is_double_optin=data.is_double_optin,
        is_public=data.is_public,
        description=data.description,
        created_at=now,
        updated_at=now,
    )
    if row is None:
        raise BadRequest(f"list already exists: {data.id}")
    return _out(row)


def get_list(conn: Connection, *, workspace_id: str, list_id: str) -> ListOut:
    """One list, or NotFound."""
    row = ListRepository(conn, workspace_id).get(list_id)
    if row is None:
        raise NotFound(f"list not found: {list_id}")
    return _out(row)


def list_lists(conn: Connection, *, workspace_id: str) -> list[ListOut]:
    """Every list of the workspace, by id."""
    return [_out(row) for row in ListRepository(conn, workspace_id).all()]


def update_list(conn: Connection, *, workspace_id: str, data: UpdateListRequest) -> ListOut:
    """Change the fields given; the others keep their value."""
    repo = ListRepository(conn, workspace_id)
    if repo.get(data.id) is None:
        raise NotFound(f"list not found: {data.id}")
    changes = data.model_dump(exclude_unset=True, exclude={"workspace_id", "id"})
    for field in ("name", "is_double_optin", "is_public"):
        if field in changes and changes[field] is None:
            raise BadRequest(f"{field}: must not be null")
    repo.update(data.id, **changes, updated_at=utcnow())
    return get_list(conn, workspace_id=workspace_id, list_id=data.id)


def delete_list(conn: Connection, *, workspace_id: str, list_id: str) -> None:
    """Delete a list and every membership in it."""
    repo = ListRepository(conn, workspace_id)
    if repo.get(list_id) is None:
        raise NotFound(f"list not found: {list_id}")
    repo.delete(list_id)


def existing_lists(
    conn: Connection, *, workspace_id: str, list_ids: Iterable[str]
) -> dict[str, bool]:
    """{list id: is_double_optin}; `list not found: <id>` for the first unknown id."""
    wanted = list(dict.fromkeys(list_ids))
    found = ListRepository(conn, workspace_id).get_many(wanted)
    for list_id in wanted:
        if list_id not in found:
            raise BadRequest(f"list not found: {list_id}")
    return {list_id: bool(found[list_id].is_double_optin) for list_id in wanted}


def _out(row: Row[Any]) -> ListOut:
    return ListOut(
        id=row.id,
        name=row.name,
        is_double_optin=bool(row.is_double_optin),
        is_public=bool(row.is_public),
        description=row.description,
        created_at=rfc3339(row.created_at) or "",
        updated_at=rfc3339(row.updated_at) or "",
    )

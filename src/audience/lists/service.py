"""Lists: what contacts subscribe to."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection

from audience.db.models import MembershipStatus
from audience.errors import BadRequest, NotFound
from audience.kit.clock import utcnow
from audience.lists.repository import ListRepository
from audience.lists.schemas import CreateListRequest, ListCounts, ListRecord, UpdateListRequest

#: Fields of lists.update that may be left out but never sent as null.
NOT_NULL = ("name", "is_double_optin", "is_public")


def create_list(conn: Connection, *, workspace_id: str, data: CreateListRequest) -> ListRecord:
    """Create a list; its id is unique in the workspace."""
    now = utcnow()
    created = ListRepository(conn, workspace_id).insert(
        ListRecord(
            id=data.id,
            name=data.name,
            is_double_optin=data.is_double_optin,
            is_public=data.is_public,
            description=data.description,
            created_at=now,
            updated_at=now,
        )
    )
    if created is None:
        raise BadRequest(f"list already exists: {data.id}")
    return created


def get_list(conn: Connection, *, workspace_id: str, list_id: str) -> ListRecord:
    """One list, or NotFound."""
    found = ListRepository(conn, workspace_id).get(list_id)
    if found is None:
        raise NotFound(f"list not found: {list_id}")
    return found


def list_lists(conn: Connection, *, workspace_id: str) -> list[ListRecord]:
    """Every list of the workspace, by id."""
    return ListRepository(conn, workspace_id).all()


def update_list(conn: Connection, *, workspace_id: str, data: UpdateListRequest) -> ListRecord:
    """Change the fields given; the others keep their value."""
    changes = data.model_dump(exclude_unset=True, exclude={"workspace_id", "id"})
    repo = ListRepository(conn, workspace_id)
    if repo.get(data.id) is None:
        raise NotFound(f"list not found: {data.id}")
    for field in NOT_NULL:
        if field in changes and changes[field] is None:
            raise BadRequest(f"{field}: must not be null")
    updated = repo.update(data.id, changes, utcnow())
    if updated is None:  # deleted by a concurrent request since
        raise NotFound(f"list not found: {data.id}")
    return updated


def delete_list(conn: Connection, *, workspace_id: str, list_id: str) -> None:
    """Delete a list and every membership in it."""
    if not ListRepository(conn, workspace_id).delete(list_id):
        raise NotFound(f"list not found: {list_id}")


def lock_for_subscribe(
    conn: Connection, *, workspace_id: str, list_ids: Iterable[str]
) -> dict[str, bool]:
    """{list id: is_double_optin}, each list locked against deletion until the transaction
    ends; `list not found: <id>` for the first unknown id, in the order given."""
    wanted = list(dict.fromkeys(list_ids))
    found = ListRepository(conn, workspace_id).lock_for_subscribe(wanted)
    for list_id in wanted:
        if list_id not in found:
            raise BadRequest(f"list not found: {list_id}")
    return {list_id: found[list_id].is_double_optin for list_id in wanted}


def lists_with_counts(conn: Connection, *, workspace_id: str) -> list[ListCounts]:
    """Every list of the workspace, by id, with its memberships counted per status."""
    repo = ListRepository(conn, workspace_id)
    counts = repo.membership_counts()
    return [
        ListCounts(
            record, {s.value: counts.get(record.id, {}).get(s.value, 0) for s in MembershipStatus}
        )
        for record in repo.all()
    ]

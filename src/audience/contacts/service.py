"""Contacts: the import (DESIGN §1 rules 4-10) and the routes around it."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from sqlalchemy import Connection, Row

from audience.contacts.fields import DATETIME_FIELDS, FIELDS
from audience.contacts.repository import ContactRepository
from audience.contacts.validation import ContactError, normalize_email, validate_batch
from audience.errors import BadRequest, NotFound
from audience.kit.clock import rfc3339, utcnow
from audience.lists import service as lists

#: Memberships that an import never touches again (rule 10).
OPTED_OUT = frozenset({"unsubscribed", "bounced", "complained"})


class Operation(msgspec.Struct, gc=False):
    """One line of an import's answer (UpsertContactOperation, plus its input index)."""

    index: int
    email: str
    action: str
    error: str | None = None


def import_contacts(
    conn: Connection,
    *,
    workspace_id: str,
    contacts: Sequence[msgspec.Raw],
    subscribe_to_lists: Sequence[str],
) -> list[Operation]:
    """Create or update every valid contact, in input order, in the caller's transaction."""
    list_statuses = _new_membership_statuses(conn, workspace_id, subscribe_to_lists)
    checked = validate_batch(contacts)
    batch = checked.batch
    operations = [Operation(index, email, "update") for index, email in enumerate(checked.emails)]
    for index, message in checked.errors.items():
        operations[index].action = "error"
        operations[index].error = message
    repo = ContactRepository(conn, workspace_id)
    now = utcnow()
    for position in repo.upsert_many(batch, now):
        operations[batch.first_index[position]].action = "create"
    if list_statuses:
        repo.subscribe(batch.emails, list_statuses, now)
    return operations


def upsert_contact(conn: Connection, *, workspace_id: str, contact: msgspec.Raw) -> Operation:
    """One contact by the same rules as one import row; an invalid one is a 400."""
    checked = validate_batch([contact])
    if checked.errors:
        raise BadRequest(checked.errors[0])
    created = ContactRepository(conn, workspace_id).upsert_many(checked.batch, utcnow())
    return Operation(0, checked.emails[0], "create" if created else "update")


def get_by_email(conn: Connection, *, workspace_id: str, email: str) -> dict[str, Any]:
    """A contact with its memberships, by email normalised as on import."""
    normalized = _lookup_email(email)
    repo = ContactRepository(conn, workspace_id)
    row = repo.get(normalized)
    if row is None:
        raise NotFound(f"contact not found: {normalized}")
    return contact_out(row, repo.memberships([normalized]).get(normalized, []))


def get_by_external_id(conn: Connection, *, workspace_id: str, external_id: str) -> dict[str, Any]:
    """The contact carrying this external_id (the first by email if several do)."""
    repo = ContactRepository(conn, workspace_id)
    row = repo.get_by_external_id(external_id.strip())
    if row is None:
        raise NotFound(f"contact not found with external_id: {external_id}")
    return contact_out(row, repo.memberships([row.email]).get(row.email, []))


def list_contacts(
    conn: Connection,
    *,
    workspace_id: str,
    limit: int,
    cursor: str | None,
    contains: Mapping[str, str],
    list_id: str | None,
    status: str | None,
    with_contact_lists: bool,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of contacts ordered by email, and the cursor of the next page (None at the end)."""
    repo = ContactRepository(conn, workspace_id)
    rows = repo.page(
        after=decode_cursor(cursor) if cursor else None,
        limit=limit + 1,
        contains=contains,
        list_id=list_id,
        status=status,
    )
    page, more = rows[:limit], len(rows) > limit
    memberships = repo.memberships([r.email for r in page]) if with_contact_lists else {}
    items = [
        contact_out(r, memberships.get(r.email, []) if with_contact_lists else None) for r in page
    ]
    return items, encode_cursor(page[-1].email) if more else None


def count_contacts(conn: Connection, *, workspace_id: str) -> int:
    """How many contacts the workspace holds."""
    return ContactRepository(conn, workspace_id).count()


def delete_contact(conn: Connection, *, workspace_id: str, email: str) -> None:
    """Delete a contact and its memberships."""
    normalized = _lookup_email(email)
    if not ContactRepository(conn, workspace_id).delete(normalized):
        raise NotFound(f"contact not found: {normalized}")


def update_membership_status(
    conn: Connection, *, workspace_id: str, email: str, list_id: str, status: str
) -> None:
    """Set the status of an existing membership."""
    normalized = _lookup_email(email)
    repo = ContactRepository(conn, workspace_id)
    if repo.get(normalized) is None:
        raise NotFound(f"contact not found: {normalized}")
    lists.get_list(conn, workspace_id=workspace_id, list_id=list_id)
    if repo.membership(normalized, list_id) is None:
        raise NotFound(f"contact {normalized} is not in list {list_id}")
    repo.set_status(normalized, list_id, status, utcnow())


def encode_cursor(email: str) -> str:
    return base64.urlsafe_b64encode(email.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        email = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        email = ""
    if not email or "\x00" in email or encode_cursor(email) != cursor:
        raise BadRequest("cursor: invalid cursor")
    return email


def contact_out(row: Row[Any], memberships: Sequence[Row[Any]] | None) -> dict[str, Any]:
    """The API shape of a stored contact: RFC 3339 UTC times, memberships when asked."""
    values = row._mapping
    out: dict[str, Any] = {"email": values["email"]}
    for name in FIELDS:
        value = values[name]
        out[name] = rfc3339(value) if name in DATETIME_FIELDS else value
    out["created_at"] = rfc3339(values["created_at"])
    out["updated_at"] = rfc3339(values["updated_at"])
    if memberships is not None:
        out["contact_lists"] = [
            {
                "list_id": m.list_id,
                "status": m.status,
                "created_at": rfc3339(m.created_at),
                "updated_at": rfc3339(m.updated_at),
            }
            for m in memberships
        ]
    return out


def _new_membership_statuses(
    conn: Connection, workspace_id: str, list_ids: Sequence[str]
) -> dict[str, str]:
    """{list id: status of a new membership}; `list not found: <id>` for an unknown list."""
    if not list_ids:
        return {}
    double_optin = lists.existing_lists(conn, workspace_id=workspace_id, list_ids=list_ids)
    return {lid: "pending" if optin else "active" for lid, optin in double_optin.items()}


def _lookup_email(email: str) -> str:
    try:
        return normalize_email(email)
    except ContactError as exc:
        raise BadRequest(exc.message) from None

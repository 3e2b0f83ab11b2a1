"""Contacts: the import (docs/import.md) and the routes around it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import msgspec
from sqlalchemy import Connection

from audience.api_keys import service as api_keys
from audience.api_keys.schemas import Caller, Permission
from audience.contacts.repository import ContactRepository
from audience.contacts.schemas import (
    Contact,
    ContactListQuery,
    ImportLimits,
    ImportRequest,
    Membership,
    Operation,
)
from audience.contacts.validation import ContactError, normalize_email, validate_batch
from audience.db.models import MembershipStatus
from audience.errors import BadRequest, NotFound
from audience.kit import metrics
from audience.kit.clock import utcnow
from audience.kit.pagination import decode_cursor, encode_cursor
from audience.lists import service as lists

LISTS_WRITE_REQUIRED = "write access to lists required when subscribe_to_lists is provided"
TOO_MANY_MEMBERSHIPS = "too many memberships in one request (contacts × lists > {})"  # noqa: RUF001


def import_contacts(
    conn: Connection, *, caller: Caller, request: ImportRequest, limits: ImportLimits
) -> list[Operation]:
    """Create or update every valid contact, in input order, in the caller's transaction.

    The request-level rules run first, in the documented order; the contacts are then
    validated before the first statement, so that nothing is locked while Python works.
    """
    _check_import(caller, request, limits)
    checked = validate_batch(request.contacts)
    list_statuses = _new_membership_statuses(conn, caller.workspace_id, request.subscribe_to_lists)
    batch = checked.batch
    operations = [Operation(index, email, "update") for index, email in enumerate(checked.emails)]
    for index, message in checked.errors.items():
        operations[index].action = "error"
        operations[index].error = message
    repo = ContactRepository(conn, caller.workspace_id)
    now = utcnow()
    for position in repo.upsert_many(batch, now):
        operations[batch.first_index[position]].action = "create"
    if list_statuses:
        repo.subscribe(batch.emails, list_statuses, now)
    _count(operations)
    return operations


def _count(operations: list[Operation]) -> None:
    """The metrics of an import: contacts written by action, contacts rejected."""
    actions = Counter(op.action for op in operations)
    for action in ("create", "update"):
        if actions[action]:
            metrics.CONTACTS_WRITTEN.labels(action).inc(actions[action])
    if actions["error"]:
        metrics.ROWS_REJECTED.inc(actions["error"])


def _check_import(caller: Caller, request: ImportRequest, limits: ImportLimits) -> None:
    """The request-level rules that need no database, in their documented order."""
    contacts, lists_given = len(request.contacts), len(request.subscribe_to_lists)
    if contacts > limits.max_contacts:
        raise BadRequest(f"contacts array exceeds the maximum of {limits.max_contacts}")
    if lists_given > limits.max_lists:
        raise BadRequest(f"subscribe_to_lists exceeds the maximum of {limits.max_lists}")
    if contacts * lists_given > limits.max_memberships:
        raise BadRequest(TOO_MANY_MEMBERSHIPS.format(limits.max_memberships))
    if request.subscribe_to_lists:
        api_keys.require(caller, Permission.LISTS_WRITE, LISTS_WRITE_REQUIRED, error=BadRequest)
    api_keys.require(caller, Permission.CONTACTS_WRITE, error=BadRequest)


def upsert_contact(conn: Connection, *, workspace_id: str, contact: msgspec.Raw) -> Operation:
    """One contact by the same rules as one import row; an invalid one is a 400."""
    checked = validate_batch([contact])
    if checked.errors:
        raise BadRequest(checked.errors[0])
    created = ContactRepository(conn, workspace_id).upsert_many(checked.batch, utcnow())
    operation = Operation(0, checked.emails[0], "create" if created else "update")
    _count([operation])
    return operation


def get_by_email(
    conn: Connection, *, workspace_id: str, email: str
) -> tuple[Contact, list[Membership]]:
    """A contact with its memberships, by email normalised as on import."""
    normalized = _lookup_email(email)
    repo = ContactRepository(conn, workspace_id)
    found = repo.get(normalized)
    if found is None:
        raise NotFound(f"contact not found: {normalized}")
    return found, repo.memberships([normalized]).get(normalized, [])


def get_by_external_id(
    conn: Connection, *, workspace_id: str, external_id: str
) -> tuple[Contact, list[Membership]]:
    """The contact carrying this external_id (the first by email if several do)."""
    repo = ContactRepository(conn, workspace_id)
    found = repo.get_by_external_id(external_id.strip())
    if found is None:
        raise NotFound(f"contact not found with external_id: {external_id}")
    return found, repo.memberships([found.email]).get(found.email, [])


def list_contacts(
    conn: Connection, *, workspace_id: str, query: ContactListQuery
) -> tuple[list[tuple[Contact, list[Membership] | None]], str | None]:
    """A page of contacts ordered by email, each with its memberships when asked, and the
    cursor of the next page (None at the end)."""
    repo = ContactRepository(conn, workspace_id)
    rows = repo.page(
        after=_after(query.cursor),
        limit=query.limit + 1,
        contains=query.contains(),
        list_id=query.list_id or None,
        status=query.contact_list_status,
    )
    page, more = rows[: query.limit], len(rows) > query.limit
    if not query.with_contact_lists:
        return [(c, None) for c in page], encode_cursor(page[-1].email) if more else None
    memberships = repo.memberships([c.email for c in page])
    items: list[tuple[Contact, list[Membership] | None]] = [
        (c, memberships.get(c.email, [])) for c in page
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
    conn: Connection, *, workspace_id: str, email: str, list_id: str, status: MembershipStatus
) -> None:
    """Set the status of an existing membership."""
    normalized = _lookup_email(email)
    repo = ContactRepository(conn, workspace_id)
    if repo.get(normalized, lock=True) is None:
        raise NotFound(f"contact not found: {normalized}")
    lists.get_list(conn, workspace_id=workspace_id, list_id=list_id)
    if repo.membership(normalized, list_id) is None:
        raise NotFound(f"contact {normalized} is not in list {list_id}")
    repo.set_status(normalized, list_id, status, utcnow())


def _after(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        return decode_cursor(cursor)
    except ValueError:
        raise BadRequest("cursor: invalid cursor") from None


def _new_membership_statuses(
    conn: Connection, workspace_id: str, list_ids: Sequence[str]
) -> dict[str, str]:
    """{list id: status of a new membership}; `list not found: <id>` for an unknown list."""
    if not list_ids:
        return {}
    double_optin = lists.lock_for_subscribe(conn, workspace_id=workspace_id, list_ids=list_ids)
    return {
        list_id: MembershipStatus.PENDING if optin else MembershipStatus.ACTIVE
        for list_id, optin in double_optin.items()
    }


def _lookup_email(email: str) -> str:
    try:
        return normalize_email(email)
    except ContactError as exc:
        raise BadRequest(exc.message) from None

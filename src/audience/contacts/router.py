"""HTTP routes of the contacts API (Notifuse names): parse, authorise, call one service.

The import body is decoded here part by part (msgspec), so that its errors come in the
documented order and the contacts stay undecoded JSON until the service validates them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

import msgspec
from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import Connection

from audience.api_keys.auth import ContactsRead, ContactsWrite, CurrentCaller, ListsWrite
from audience.api_keys.schemas import Caller
from audience.config import Settings
from audience.contacts import service
from audience.contacts.schemas import (
    LIST_STATUSES,
    MERGE_POLICIES,
    NULL,
    BatchImportContactsRequest,
    BatchImportContactsResponse,
    ContactListQuery,
    ContactOut,
    ContactResponse,
    ContactsPage,
    CountResponse,
    DeleteContactRequest,
    ImportEnvelope,
    ImportLimits,
    ImportRequest,
    UpdateStatusRequest,
    UpsertContactRequest,
    UpsertContactResponse,
    UpsertEnvelope,
    UpsertRequest,
)
from audience.errors import AppError, BadRequest, ServiceUnavailable
from audience.idempotency import service as idempotency
from audience.idempotency.schemas import Handled
from audience.kit import metrics
from audience.schemas import SuccessResponse
from audience.web.bodies import (
    DocumentedBody,
    JsonBody,
    RawBody,
    decode_json,
    scope_to_workspace,
)
from audience.web.deps import IdempotencyKey, ReadDb, SettingsDep, WriteDb
from audience.web.routing import ApiRoute

T = TypeVar("T")
router = APIRouter(prefix="/api", tags=["contacts"], route_class=ApiRoute)


# --- parsing the import and upsert bodies (docs/import.md, request errors, in their order) ------


def _import_slot(request: Request, _caller: CurrentCaller, settings: SettingsDep) -> Iterator[None]:
    """One of this worker's import slots: at most AUDIENCE_MAX_CONCURRENT_IMPORTS bodies are
    read and decoded at once (their memory is the worker's), the others wait a little, then
    503. Taken after authentication, so that no anonymous request holds one."""
    slots: threading.BoundedSemaphore = request.app.state.import_slots
    if not slots.acquire(timeout=settings.import_wait_seconds):
        metrics.REFUSED.labels("concurrent_imports").inc()
        raise ServiceUnavailable("too many imports in progress, retry later")
    try:
        yield
    finally:
        slots.release()


ImportSlot = Annotated[None, Depends(_import_slot, scope="function")]


class ImportBody(DocumentedBody):
    """The import's body as bytes, read once an import slot is free; parse_import reads it."""

    model = BatchImportContactsRequest

    def __call__(self, _slot: ImportSlot, body: RawBody) -> bytes:
        return body


def parse_import(caller: Caller, body: bytes) -> ImportRequest:
    """JSON, workspace_id (400, then 401), contacts (required, an array, not empty),
    subscribe_to_lists (an array of strings), then the options."""
    envelope, contacts = _import_envelope(body)
    workspace_id = scope_to_workspace(caller, msgspec.json.decode(envelope.workspace_id))
    if contacts is None:
        contacts = _contacts_array(envelope.contacts)
    elif not contacts:
        raise BadRequest("contacts array cannot be empty")
    return ImportRequest(
        workspace_id=workspace_id,
        contacts=contacts,
        subscribe_to_lists=_list_ids(envelope.subscribe_to_lists),
        dry_run=_option(envelope.dry_run, "dry_run", bool, False),
        merge=_choice(envelope.merge, "merge", MERGE_POLICIES),
        list_status=_choice(envelope.list_status, "list_status", LIST_STATUSES),
    )


class UpsertBody(DocumentedBody):
    """The upsert's body as bytes; parse_upsert reads it."""

    model = UpsertContactRequest

    def __call__(self, body: RawBody) -> bytes:
        return body


def parse_upsert(caller: Caller, body: bytes) -> UpsertRequest:
    """JSON, workspace_id (400, then 401), `contact is required`, then merge."""
    envelope = decode_json(body, UpsertEnvelope)
    scope_to_workspace(caller, msgspec.json.decode(envelope.workspace_id))
    if _is_null(envelope.contact):
        raise BadRequest("contact is required")
    return UpsertRequest(envelope.contact, _choice(envelope.merge, "merge", MERGE_POLICIES))


class _ImportWithArray(ImportEnvelope):
    """The import body with its contacts split into raw contacts as it is read."""

    contacts: list[msgspec.Raw] | None = None  # type: ignore[assignment]


def _import_envelope(body: bytes) -> tuple[ImportEnvelope, list[msgspec.Raw] | None]:
    """The body's top level and, when it is an array, its contacts, read in one pass over
    the body (the common case); any other body is read field by field, so that its errors
    keep their documented order."""
    try:
        fast = msgspec.json.decode(body, type=_ImportWithArray)
    except (msgspec.DecodeError, RecursionError):
        fast = None
    if fast is not None and fast.contacts is not None:
        return fast, fast.contacts
    return decode_json(body, ImportEnvelope), None


def _is_null(raw: msgspec.Raw) -> bool:
    """Absent or null, without copying a large part (the contacts array) to find out."""
    return len(raw) == 4 and bytes(raw) == bytes(NULL)


def _contacts_array(raw: msgspec.Raw) -> list[msgspec.Raw]:
    if _is_null(raw):
        raise BadRequest("contacts is required")
    try:
        contacts = msgspec.json.decode(raw, type=list[msgspec.Raw])
    except msgspec.ValidationError:
        raise BadRequest("contacts must be an array") from None
    if not contacts:
        raise BadRequest("contacts array cannot be empty")
    return contacts


def _option(raw: msgspec.Raw, name: str, kind: type[T], default: T) -> T:
    """An optional value of one JSON type (absent: the default)."""
    if raw is NULL:
        return default
    value = msgspec.json.decode(raw)
    if type(value) is not kind:
        raise BadRequest(f"{name} must be a {_TYPE_NAMES[kind]}")
    return value


def _choice(raw: msgspec.Raw, name: str, choices: tuple[str, ...]) -> Any:
    """One of `choices` (absent: the first, the default)."""
    if raw is NULL:
        return choices[0]
    value = msgspec.json.decode(raw)
    if not isinstance(value, str) or value not in choices:
        raise BadRequest(f"{name} must be one of {', '.join(choices)}")
    return value


_TYPE_NAMES = {bool: "boolean", str: "string"}


def _list_ids(raw: msgspec.Raw) -> list[str]:
    try:
        ids = msgspec.json.decode(raw, type=list[str] | None)
    except msgspec.ValidationError:
        raise BadRequest("subscribe_to_lists must be an array of list ids (strings)") from None
    if any("\x00" in list_id for list_id in ids or []):
        raise BadRequest("subscribe_to_lists must not contain NUL characters")
    return list(dict.fromkeys(ids or []))


ImportBytes = Annotated[bytes, Depends(ImportBody())]
UpsertBytes = Annotated[bytes, Depends(UpsertBody())]
DeleteBody = Annotated[DeleteContactRequest, Depends(JsonBody(DeleteContactRequest))]
StatusBody = Annotated[UpdateStatusRequest, Depends(JsonBody(UpdateStatusRequest))]
RequiredQuery = Annotated[str, Query(min_length=1)]

# --- routes ---------------------------------------------------------------------------------------


@router.post(
    "/contacts.import",
    operation_id="batchImportContacts",
    response_model=BatchImportContactsResponse,
)
def import_contacts(
    caller: CurrentCaller, key: IdempotencyKey, body: ImportBytes, db: WriteDb, cfg: SettingsDep
) -> Response:
    """Create or update up to MAX_CONTACTS_PER_IMPORT contacts in one transaction.

    One operation per input contact, in order; invalid contacts are reported and skipped.
    """
    return _once(db, caller, key, body, cfg, lambda: _import(db, caller, body, cfg))


def _import(db: Connection, caller: Caller, body: bytes, settings: Settings) -> Handled:
    request = parse_import(caller, body)
    try:
        answer = service.import_contacts(
            db, caller=caller, request=request, limits=_limits(settings)
        )
    except AppError as exc:
        if request.dry_run:  # a dry run stores nothing, not even its refusal
            return idempotency.refused(exc, keep=False)
        raise
    return Handled(200, msgspec.json.encode(answer), keep=not request.dry_run)


@router.post("/contacts.upsert", operation_id="upsertContact", response_model=UpsertContactResponse)
def upsert_contact(
    caller: ContactsWrite, key: IdempotencyKey, body: UpsertBytes, db: WriteDb, cfg: SettingsDep
) -> Response:
    """Create or update one contact by the same rules as one import row."""
    return _once(db, caller, key, body, cfg, lambda: _upsert(db, caller, body))


def _upsert(db: Connection, caller: Caller, body: bytes) -> Handled:
    upsert = parse_upsert(caller, body)
    op = service.upsert_contact(
        db, workspace_id=caller.workspace_id, contact=upsert.contact, merge=upsert.merge
    )
    return Handled(200, UpsertContactResponse.of(op).model_dump_json().encode())


def _once(
    db: Connection,
    caller: Caller,
    key: str | None,
    body: bytes,
    settings: Settings,
    handle: Callable[[], Handled],
) -> Response:
    """The handler's answer, or, for a key already used with this body, the stored one."""
    answer = idempotency.run_once(
        db,
        workspace_id=caller.workspace_id,
        key=key,
        body=body,
        ttl_seconds=settings.idempotency_ttl_seconds,
        handle=handle,
    )
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else None
    return Response(answer.body, answer.status_code, headers, media_type="application/json")


def _limits(settings: Settings) -> ImportLimits:
    return ImportLimits(
        max_contacts=settings.max_contacts_per_import,
        max_lists=settings.max_lists_per_import,
        max_memberships=settings.max_memberships_per_import,
    )


@router.get("/contacts.getByEmail", operation_id="getContactByEmail")
def get_by_email(caller: ContactsRead, db: ReadDb, email: RequiredQuery) -> ContactResponse:
    """One contact with its list memberships; the email is normalised as on import."""
    found = service.get_by_email(db, workspace_id=caller.workspace_id, email=email)
    return ContactResponse(contact=ContactOut.of(*found))


@router.get("/contacts.getByExternalID", operation_id="getContactByExternalID")
def get_by_external_id(
    caller: ContactsRead, db: ReadDb, external_id: RequiredQuery
) -> ContactResponse:
    """One contact by its external_id, with its list memberships."""
    found = service.get_by_external_id(
        db, workspace_id=caller.workspace_id, external_id=external_id
    )
    return ContactResponse(contact=ContactOut.of(*found))


@router.get("/contacts.list", operation_id="listContacts")
def list_contacts(
    caller: ContactsRead, db: ReadDb, query: Annotated[ContactListQuery, Query()]
) -> ContactsPage:
    """Contacts ordered by email, with stable cursor pagination and substring filters."""
    page, next_cursor = service.list_contacts(db, workspace_id=caller.workspace_id, query=query)
    return ContactsPage(contacts=[ContactOut.of(*item) for item in page], next_cursor=next_cursor)


@router.get("/contacts.count", operation_id="countContacts")
def count_contacts(caller: ContactsRead, db: ReadDb) -> CountResponse:
    """How many contacts the workspace holds."""
    return CountResponse(
        total_contacts=service.count_contacts(db, workspace_id=caller.workspace_id)
    )


@router.post("/contacts.delete", operation_id="deleteContact")
def delete_contact(data: DeleteBody, caller: ContactsWrite, db: WriteDb) -> SuccessResponse:
    """Delete a contact and its list memberships."""
    service.delete_contact(db, workspace_id=caller.workspace_id, email=data.email)
    return SuccessResponse()


@router.post("/contactLists.updateStatus", operation_id="updateContactListStatus")
def update_status(data: StatusBody, caller: ListsWrite, db: WriteDb) -> SuccessResponse:
    """Set the status of a contact's membership in a list."""
    service.update_membership_status(
        db,
        workspace_id=caller.workspace_id,
        email=data.email,
        list_id=data.list_id,
        status=data.status,
    )
    return SuccessResponse()

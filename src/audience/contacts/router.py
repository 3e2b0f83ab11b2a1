"""HTTP routes of the contacts API (Notifuse names). Request bodies are parsed here."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import msgspec
from fastapi import APIRouter, Query, Request, Response

from audience.api_keys import service as api_keys
from audience.api_keys.auth import CurrentCaller
from audience.api_keys.schemas import Caller, Permission
from audience.contacts import service
from audience.contacts.schemas import (
    BatchImportContactsRequest,
    BatchImportContactsResponse,
    ContactResponse,
    ContactsPage,
    CountResponse,
    DeleteContactRequest,
    ImportEnvelope,
    SuccessResponse,
    UpdateStatusRequest,
    UpsertContactRequest,
    UpsertContactResponse,
    UpsertEnvelope,
)
from audience.db.session import transaction
from audience.errors import BadRequest
from audience.web import (
    RawBody,
    ReadDb,
    WriteDb,
    body_schema,
    json_error_reason,
    parse_body,
    required,
    scope_to_workspace,
)

router = APIRouter(prefix="/api", tags=["contacts"])
S = TypeVar("S", bound=msgspec.Struct)


@router.post(
    "/contacts.import",
    operation_id="batchImportContacts",
    response_model=BatchImportContactsResponse,
    openapi_extra=body_schema(BatchImportContactsRequest),
)
def import_contacts(request: Request, caller: CurrentCaller, body: RawBody) -> Response:
    """Create or update up to MAX_CONTACTS_PER_IMPORT contacts in one transaction.

    One operation per input contact, in order; invalid contacts are reported and skipped.
    """
    settings = request.app.state.settings
    envelope = _decode(body, ImportEnvelope)
    workspace_id = scope_to_workspace(caller, _decode_part(envelope.workspace_id))
    contacts = _contacts_array(envelope.contacts, settings.max_contacts_per_import)
    lists = _list_ids(envelope.subscribe_to_lists)
    if lists:
        api_keys.require(
            caller,
            Permission.LISTS_WRITE,
            "write access to lists required when subscribe_to_lists is provided",
            error=BadRequest,
        )
    api_keys.require(caller, Permission.CONTACTS_WRITE, error=BadRequest)
    with transaction(request.app.state.engine, write=True) as conn:
        operations = service.import_contacts(
            conn, workspace_id=workspace_id, contacts=contacts, subscribe_to_lists=lists
        )
    payload = msgspec.json.encode({"operations": operations, "error": None})
    return Response(payload, media_type="application/json")


@router.post(
    "/contacts.upsert",
    response_model=UpsertContactResponse,
    openapi_extra=body_schema(UpsertContactRequest),
)
def upsert_contact(caller: CurrentCaller, body: RawBody, db: WriteDb) -> UpsertContactResponse:
    """Create or update one contact by the same rules as one import row."""
    envelope = _decode(body, UpsertEnvelope)
    workspace_id = scope_to_workspace(caller, _decode_part(envelope.workspace_id))
    if _is_null(envelope.contact):
        raise BadRequest("contact is required")
    api_keys.require(caller, Permission.CONTACTS_WRITE)
    op = service.upsert_contact(db, workspace_id=workspace_id, contact=envelope.contact)
    return UpsertContactResponse(
        email=op.email, action="create" if op.action == "create" else "update"
    )


@router.get("/contacts.getByEmail", response_model=ContactResponse)
def get_by_email(
    caller: CurrentCaller, db: ReadDb, workspace_id: str | None = None, email: str | None = None
) -> dict[str, Any]:
    """One contact with its list memberships; the email is normalised as on import."""
    workspace = _readable(caller, workspace_id)
    contact = service.get_by_email(db, workspace_id=workspace, email=required(email, "email"))
    return {"contact": contact}


@router.get("/contacts.getByExternalID", response_model=ContactResponse)
def get_by_external_id(
    caller: CurrentCaller,
    db: ReadDb,
    workspace_id: str | None = None,
    external_id: str | None = None,
) -> dict[str, Any]:
    """One contact by its external_id, with its list memberships."""
    workspace = _readable(caller, workspace_id)
    contact = service.get_by_external_id(
        db, workspace_id=workspace, external_id=required(external_id, "external_id")
    )
    return {"contact": contact}


@router.get("/contacts.list", response_model=ContactsPage)
def list_contacts(
    caller: CurrentCaller,
    db: ReadDb,
    workspace_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
    email: str | None = None,
    external_id: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    phone: str | None = None,
    country: str | None = None,
    language: str | None = None,
    list_id: str | None = None,
    contact_list_status: Literal["active", "pending", "unsubscribed", "bounced", "complained"]
    | None = None,
    with_contact_lists: bool = False,
) -> dict[str, Any]:
    """Contacts ordered by email, with stable cursor pagination and substring filters."""
    workspace = _readable(caller, workspace_id)
    filters = {
        "email": email,
        "external_id": external_id,
        "first_name": first_name,
        "last_name": last_name,
        "phone": phone,
        "country": country,
        "language": language,
    }
    items, next_cursor = service.list_contacts(
        db,
        workspace_id=workspace,
        limit=limit,
        cursor=cursor,
        contains={k: v for k, v in filters.items() if v},
        list_id=list_id or None,
        status=contact_list_status,
        with_contact_lists=with_contact_lists,
    )
    return {"contacts": items, "next_cursor": next_cursor}


@router.get("/contacts.count", response_model=CountResponse)
def count_contacts(
    caller: CurrentCaller, db: ReadDb, workspace_id: str | None = None
) -> CountResponse:
    """How many contacts the workspace holds."""
    workspace = _readable(caller, workspace_id)
    return CountResponse(total_contacts=service.count_contacts(db, workspace_id=workspace))


@router.post(
    "/contacts.delete",
    response_model=SuccessResponse,
    openapi_extra=body_schema(DeleteContactRequest),
)
def delete_contact(caller: CurrentCaller, body: RawBody, db: WriteDb) -> SuccessResponse:
    """Delete a contact and its list memberships."""
    data = parse_body(body, DeleteContactRequest, caller)
    api_keys.require(caller, Permission.CONTACTS_WRITE)
    service.delete_contact(db, workspace_id=data.workspace_id, email=data.email)
    return SuccessResponse(success=True)


@router.post(
    "/contactLists.updateStatus",
    response_model=SuccessResponse,
    openapi_extra=body_schema(UpdateStatusRequest),
)
def update_status(caller: CurrentCaller, body: RawBody, db: WriteDb) -> SuccessResponse:
    """Set the status of a contact's membership in a list."""
    data = parse_body(body, UpdateStatusRequest, caller)
    api_keys.require(caller, Permission.LISTS_WRITE)
    service.update_membership_status(
        db,
        workspace_id=data.workspace_id,
        email=data.email,
        list_id=data.list_id,
        status=data.status,
    )
    return SuccessResponse(success=True)


# --- parsing the import body (DESIGN §1 rule 2, in its order) ---------------------------------


def _decode(body: bytes, struct: type[S]) -> S:
    try:
        return msgspec.json.decode(body, type=struct)
    except msgspec.ValidationError:
        raise BadRequest("invalid JSON body: expected a JSON object") from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"invalid JSON body: {json_error_reason(exc)}") from None
    except RecursionError:
        raise BadRequest("invalid JSON body: nesting too deep") from None


def _is_null(raw: msgspec.Raw) -> bool:
    """Absent or null, without copying a large part (the contacts array) to find out."""
    return len(raw) == 4 and bytes(raw) == b"null"


def _decode_part(raw: msgspec.Raw) -> Any:
    return msgspec.json.decode(raw)


def _contacts_array(raw: msgspec.Raw, maximum: int) -> list[msgspec.Raw]:
    if _is_null(raw):
        raise BadRequest("contacts is required")
    try:
        contacts = msgspec.json.decode(raw, type=list[msgspec.Raw])
    except msgspec.ValidationError:
        raise BadRequest("contacts must be an array") from None
    if not contacts:
        raise BadRequest("contacts array cannot be empty")
    if len(contacts) > maximum:
        raise BadRequest(f"contacts array exceeds the maximum of {maximum}")
    return contacts


def _list_ids(raw: msgspec.Raw) -> list[str]:
    try:
        ids = msgspec.json.decode(raw, type=list[str] | None)
    except msgspec.ValidationError:
        raise BadRequest("subscribe_to_lists must be an array of list ids (strings)") from None
    if any("\x00" in list_id for list_id in ids or []):
        raise BadRequest("subscribe_to_lists must not contain NUL characters")
    return list(dict.fromkeys(ids or []))


def _readable(caller: Caller, workspace_id: str | None) -> str:
    workspace = scope_to_workspace(caller, workspace_id)
    api_keys.require(caller, Permission.CONTACTS_READ)
    return workspace

"""HTTP routes of the lists API (Notifuse names)."""

from __future__ import annotations

from fastapi import APIRouter

from audience.api_keys import service as api_keys
from audience.api_keys.auth import CurrentCaller
from audience.api_keys.schemas import Permission
from audience.lists import service
from audience.lists.schemas import (
    CreateListRequest,
    DeleteListRequest,
    ListResponse,
    ListsResponse,
    SuccessResponse,
    UpdateListRequest,
)
from audience.web import (
    RawBody,
    ReadDb,
    WriteDb,
    body_schema,
    parse_body,
    required,
    scope_to_workspace,
)

router = APIRouter(prefix="/api", tags=["lists"])


@router.post(
    "/lists.create",
    status_code=201,
    response_model=ListResponse,
    openapi_extra=body_schema(CreateListRequest),
)
def create_list(caller: CurrentCaller, body: RawBody, db: WriteDb) -> ListResponse:
    """Create a list."""
    data = parse_body(body, CreateListRequest, caller)
    api_keys.require(caller, Permission.LISTS_WRITE)
    return ListResponse(list=service.create_list(db, workspace_id=data.workspace_id, data=data))


@router.get("/lists.list", response_model=ListsResponse)
def list_lists(caller: CurrentCaller, db: ReadDb, workspace_id: str | None = None) -> ListsResponse:
    """Every list of the workspace."""
    workspace = scope_to_workspace(caller, workspace_id)
    api_keys.require(caller, Permission.LISTS_READ)
    return ListsResponse(lists=service.list_lists(db, workspace_id=workspace))


@router.get("/lists.get", response_model=ListResponse)
def get_list(
    caller: CurrentCaller, db: ReadDb, workspace_id: str | None = None, id: str | None = None
) -> ListResponse:
    """One list by id."""
    workspace = scope_to_workspace(caller, workspace_id)
    api_keys.require(caller, Permission.LISTS_READ)
    list_id = required(id, "id")
    return ListResponse(list=service.get_list(db, workspace_id=workspace, list_id=list_id))


@router.post(
    "/lists.update", response_model=ListResponse, openapi_extra=body_schema(UpdateListRequest)
)
def update_list(caller: CurrentCaller, body: RawBody, db: WriteDb) -> ListResponse:
    """Change a list's name, description or flags."""
    data = parse_body(body, UpdateListRequest, caller)
    api_keys.require(caller, Permission.LISTS_WRITE)
    return ListResponse(list=service.update_list(db, workspace_id=data.workspace_id, data=data))


@router.post(
    "/lists.delete", response_model=SuccessResponse, openapi_extra=body_schema(DeleteListRequest)
)
def delete_list(caller: CurrentCaller, body: RawBody, db: WriteDb) -> SuccessResponse:
    """Delete a list and its memberships."""
    data = parse_body(body, DeleteListRequest, caller)
    api_keys.require(caller, Permission.LISTS_WRITE)
    service.delete_list(db, workspace_id=data.workspace_id, list_id=data.id)
    return SuccessResponse(success=True)

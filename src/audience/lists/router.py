"""HTTP routes of the lists API (Notifuse names): parse, authorise, call one service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from audience.api_keys.auth import ListsRead, ListsWrite
from audience.lists import service
from audience.lists.schemas import (
    CreateListRequest,
    DeleteListRequest,
    ListOut,
    ListResponse,
    ListsResponse,
    UpdateListRequest,
)
from audience.schemas import SuccessResponse
from audience.web.bodies import JsonBody
from audience.web.deps import ReadDb, WriteDb
from audience.web.routing import ApiRoute

router = APIRouter(prefix="/api", tags=["lists"], route_class=ApiRoute)

CreateBody = Annotated[CreateListRequest, Depends(JsonBody(CreateListRequest))]
UpdateBody = Annotated[UpdateListRequest, Depends(JsonBody(UpdateListRequest))]
DeleteBody = Annotated[DeleteListRequest, Depends(JsonBody(DeleteListRequest))]


@router.post("/lists.create", status_code=201, operation_id="createList")
def create_list(data: CreateBody, caller: ListsWrite, db: WriteDb) -> ListResponse:
    """Create a list."""
    created = service.create_list(db, workspace_id=caller.workspace_id, data=data)
    return ListResponse(list=ListOut.of(created))


@router.get("/lists.list", operation_id="listLists")
def list_lists(caller: ListsRead, db: ReadDb) -> ListsResponse:
    """Every list of the workspace."""
    found = service.list_lists(db, workspace_id=caller.workspace_id)
    return ListsResponse(lists=[ListOut.of(record) for record in found])


@router.get("/lists.get", operation_id="getList")
def get_list(
    caller: ListsRead, db: ReadDb, id: Annotated[str, Query(min_length=1)]
) -> ListResponse:
    """One list by id."""
    found = service.get_list(db, workspace_id=caller.workspace_id, list_id=id)
    return ListResponse(list=ListOut.of(found))


@router.post("/lists.update", operation_id="updateList")
def update_list(data: UpdateBody, caller: ListsWrite, db: WriteDb) -> ListResponse:
    """Change a list's name, description or flags."""
    updated = service.update_list(db, workspace_id=caller.workspace_id, data=data)
    return ListResponse(list=ListOut.of(updated))


@router.post("/lists.delete", operation_id="deleteList")
def delete_list(data: DeleteBody, caller: ListsWrite, db: WriteDb) -> SuccessResponse:
    """Delete a list and its memberships."""
    service.delete_list(db, workspace_id=caller.workspace_id, list_id=data.id)
    return SuccessResponse()

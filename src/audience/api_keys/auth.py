"""The authentication and permission dependencies that routes take by name.

`CurrentCaller` turns the bearer key into a Caller (401 otherwise). Each permission is then
declared once, as a named dependency (Polar's Authorizer pattern):

- `ContactsRead`, `ListsRead` serve the GET routes: they take the `workspace_id` query
  parameter, scope it to the key's workspace (400 when missing, 401 when another), then
  check the permission (403);
- `ContactsWrite`, `ListsWrite` serve the POST routes, whose JSON body was already scoped by
  its own dependency (web/bodies.py), declared before them in the route's signature.

The workspace a route acts on is then always `caller.workspace_id`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from audience.api_keys import service
from audience.api_keys.schemas import Caller, Permission

# Declared for the OpenAPI document only; the header is parsed by the service so that a
# missing, malformed and unknown key each get their own 401 message.
_bearer = HTTPBearer(auto_error=False, scheme_name="BearerAuth", description="API key")


def current_caller(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    state = request.app.state
    caller = service.authenticate(
        state.engine,
        authorization=request.headers.get("authorization"),
        secret_key=state.secret_key,
    )
    request.state.workspace_id = caller.workspace_id  # for the access log
    request.state.key_id = caller.key_id
    return caller


CurrentCaller = Annotated[Caller, Depends(current_caller)]

WorkspaceQuery = Annotated[str, Query(min_length=1, description="The workspace: the API key's own")]


class Authorizer:
    """The caller, once its key is known to carry `permission` (403 otherwise)."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    def __call__(self, caller: CurrentCaller) -> Caller:
        service.require(caller, self.permission)
        return caller


class ScopedAuthorizer(Authorizer):
    """The same, for a route whose `workspace_id` is a query parameter: scoped first."""

    def __call__(  # type: ignore[override]
        self, caller: CurrentCaller, workspace_id: WorkspaceQuery
    ) -> Caller:
        service.check_workspace(caller, workspace_id)
        return super().__call__(caller)


ContactsRead = Annotated[Caller, Depends(ScopedAuthorizer(Permission.CONTACTS_READ))]
ContactsWrite = Annotated[Caller, Depends(Authorizer(Permission.CONTACTS_WRITE))]
ListsRead = Annotated[Caller, Depends(ScopedAuthorizer(Permission.LISTS_READ))]
ListsWrite = Annotated[Caller, Depends(Authorizer(Permission.LISTS_WRITE))]
